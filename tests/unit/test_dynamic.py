"""The pure side of dynamic workflows: cursor ranges, decision segments, growth plans and their refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasker.model.dynamic import (
    EDGE_BATCH,
    EDGE_WORKER_TO_CONVERGENCE,
    BatchWorkerInputs,
    InvalidOutcome,
    NewEdge,
    aggregate_workers,
    batches_result,
    create_cursor_ranges,
    decision_result,
    decision_segment,
    no_batches_result,
    plan_growth,
)
from tasker.model.template import TaskTemplate, load_template_file, load_template_text

TEMPLATES = Path(__file__).resolve().parent.parent / "fixtures" / "templates"


@pytest.fixture(scope="module")
def approval() -> TaskTemplate:
    return load_template_file(TEMPLATES / "workflows" / "conditional_approval.yaml")


@pytest.fixture(scope="module")
def csv_batch() -> TaskTemplate:
    return load_template_file(TEMPLATES / "workflows" / "csv_batch.yaml")


@pytest.fixture(scope="module")
def nested() -> TaskTemplate:
    return load_template_file(TEMPLATES / "dynamic" / "nested_decision.yaml")


def _stored(result: dict[str, object]) -> dict[str, object]:
    return {"success": True, "status": "completed", "result": result}


def test_cursor_ranges_cover_every_item_once() -> None:
    ranges = create_cursor_ranges(1000, 200)
    assert [(r.batch_id, r.start_cursor, r.end_cursor, r.batch_size) for r in ranges] == [
        ("001", 0, 200, 200), ("002", 200, 400, 200), ("003", 400, 600, 200), ("004", 600, 800, 200),
        ("005", 800, 1000, 200),
    ]  # fmt: skip
    last = create_cursor_ranges(1001, 200)[-1]
    assert (last.batch_id, last.start_cursor, last.end_cursor, last.batch_size) == ("006", 1000, 1001, 1)
    assert create_cursor_ranges(0, 200) == []
    capped = create_cursor_ranges(1000, 10, max_batches=4)
    assert len(capped) == 4 and capped[-1].end_cursor == 1000
    assert create_cursor_ranges(5000, 1)[0].batch_id == "0001"
    with pytest.raises(ValueError):
        create_cursor_ranges(10, 0)


def test_segment_stops_at_other_decisions(nested: TaskTemplate) -> None:
    assert decision_segment(nested, "nd_outer") == {
        "nd_branch_a", "nd_branch_b", "nd_inner", "nd_converge", "nd_after"
    }  # fmt: skip
    assert decision_segment(nested, "nd_inner") == {"nd_inner_x", "nd_inner_y", "nd_converge", "nd_after"}


def test_decision_plan_creates_branch_and_convergence_with_edges_from_created_parents(approval: TaskTemplate) -> None:
    growth = plan_growth(approval, "routing_decision", _stored(decision_result(["manager_approval"])))
    assert growth is not None
    assert [s.name for s in growth.steps] == ["manager_approval", "finalize_approval"]
    assert NewEdge("routing_decision", "manager_approval", "provides", "routing_decision") in growth.edges
    to_final = [e for e in growth.edges if e.to_name == "finalize_approval"]
    assert {e.from_name for e in to_final} == {"auto_approve", "manager_approval", "finance_review"}
    assert all(e.fallback_from is None for e in to_final)  # missing branches are not waited for


def test_no_branches_plans_nothing(approval: TaskTemplate) -> None:
    growth = plan_growth(approval, "routing_decision", _stored(decision_result([])))
    assert growth is not None and growth.empty


@pytest.mark.parametrize(
    ("result", "named"),
    [
        (decision_result(["nope"]), "'nope'"),
        (decision_result(["validate_request"]), "'validate_request'"),
        ({"route": "x"}, "decision_point_outcome"),
        ({"decision_point_outcome": {"type": "maybe"}}, "type"),
    ],
)
def test_decision_refusals_name_the_problem(approval: TaskTemplate, result: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidOutcome, match=named):
        plan_growth(approval, "routing_decision", _stored(result))


def test_decision_limit(approval: TaskTemplate) -> None:
    data = approval.to_configuration()
    for step in data["steps"]:
        if step["name"] == "routing_decision":
            step["max_steps_per_decision"] = 1
    limited = TaskTemplate.model_validate(data)
    with pytest.raises(InvalidOutcome, match="over its limit of 1"):
        plan_growth(limited, "routing_decision", _stored(decision_result(["auto_approve"])))


def test_nested_convergence_waits_for_the_inner_decision(nested: TaskTemplate) -> None:
    growth = plan_growth(nested, "nd_outer", _stored(decision_result(["nd_branch_a", "nd_branch_b"])))
    assert growth is not None
    assert [s.name for s in growth.steps] == ["nd_branch_a", "nd_branch_b", "nd_inner", "nd_converge", "nd_after"]
    inner = {e for e in growth.edges if e.to_name == "nd_converge" and e.from_name.startswith("nd_inner_")}
    assert {e.fallback_from for e in inner} == {"nd_inner"}


def test_batch_plan(csv_batch: TaskTemplate) -> None:
    result = batches_result("process_csv_batch", create_cursor_ranges(1000, 200), 1000)
    growth = plan_growth(csv_batch, "analyze_csv", _stored(result))
    assert growth is not None
    workers = [s for s in growth.steps if s.name.startswith("process_csv_batch_")]
    assert [w.name for w in workers] == [f"process_csv_batch_{i:03d}" for i in range(1, 6)]
    inputs = BatchWorkerInputs.from_inputs(workers[1].inputs or {})
    assert (inputs.start_cursor, inputs.end_cursor, inputs.cursor_field, inputs.is_no_op) == (
        200,
        400,
        "row_number",
        False,
    )
    assert [s.name for s in growth.steps if s not in workers] == ["aggregate_csv_results"]
    assert sum(e.name == EDGE_BATCH for e in growth.edges) == 5
    assert sum(e.name == EDGE_WORKER_TO_CONVERGENCE for e in growth.edges) == 5


def test_no_batches_plans_one_no_op_worker(csv_batch: TaskTemplate) -> None:
    growth = plan_growth(csv_batch, "analyze_csv", _stored({"batch_processing_outcome": {"type": "no_batches"}}))
    assert growth is not None
    assert [s.name for s in growth.steps] == ["process_csv_batch_000", "aggregate_csv_results"]
    assert (growth.steps[0].inputs or {})["is_no_op"] is True


@pytest.mark.parametrize(
    ("outcome", "named"),
    [
        ({"type": "create_batches", "worker_template_name": "aggregate_csv_results"}, "not a batch_worker"),
        ({"type": "create_batches", "worker_template_name": "ghost"}, "'ghost'"),
        (
            {
                "type": "create_batches",
                "worker_template_name": "process_csv_batch",
                "cursor_configs": [{"batch_id": "1"}, {"batch_id": "1"}],
            },
            "twice",
        ),
    ],
)
def test_batch_refusals(csv_batch: TaskTemplate, outcome: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidOutcome, match=named):
        plan_growth(csv_batch, "analyze_csv", _stored({"batch_processing_outcome": outcome}))


def test_aggregate_counts_failures_and_skips_no_ops() -> None:
    results = {
        "w_001": {"success": True, "result": {"items_processed": 10, "items_failed": 1}},
        "w_002": {"success": False, "result": None},
        "other": {"success": True, "result": {"items_processed": 99}},
    }
    agg = aggregate_workers(results, "w")
    assert (agg.worker_count, agg.items_processed, agg.items_succeeded, agg.failed_workers) == (2, 10, 10, ["w_002"])
    assert aggregate_workers({"w_000": {"success": True, "result": {"no_op": True}}}, "w").no_op is True


# tasker-core's format: a batchable step whose handler names no worker, with and without a batch_worker step
_ANONYMOUS_BATCH = """
name: anonymous_batch
namespace_name: compat
version: 1.0.0
steps:
  - name: split
    type: batchable
    handler: {{ callable: tests.handlers.dynamic.NoBatchesAnonymous }}
{worker}
"""
_WORKER = """
  - name: work
    type: batch_worker
    depends_on: [split]
    handler: { callable: tests.handlers.dynamic.NoBatchesAnonymous }
"""


def test_no_batches_result_puts_the_worker_name_in_the_outcome() -> None:
    result = no_batches_result("empty", worker_template_name="work", total_items=0)
    assert result["batch_processing_outcome"] == {"type": "no_batches", "worker_template_name": "work"}
    assert result["reason"] == "empty" and result["total_items"] == 0


def test_no_batches_without_a_named_worker_uses_the_templates_batch_worker() -> None:
    template = load_template_text(_ANONYMOUS_BATCH.format(worker=_WORKER))
    growth = plan_growth(template, "split", _stored({"batch_processing_outcome": {"type": "no_batches"}}))
    assert growth is not None and [s.name for s in growth.steps] == ["work_000"]


def test_no_batches_with_no_worker_at_all_completes_creating_nothing() -> None:
    template = load_template_text(_ANONYMOUS_BATCH.format(worker=""))
    growth = plan_growth(template, "split", _stored({"batch_processing_outcome": {"type": "no_batches"}}))
    assert growth is not None and growth.empty
