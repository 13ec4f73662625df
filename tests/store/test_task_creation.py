"""Task creation: the right steps, edges and transitions per template shape; identity; bad input writes nothing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from tasker.engine.task_requests import create_task
from tasker.errors import DuplicateTaskError, InvalidContextError, InvalidTaskRequestError, TemplateNotFoundError
from tasker.messaging.pgmq import PgmqTransport
from tasker.model.requests import TaskRequest
from tasker.model.template import load_template_text
from tasker.store.db import Connection
from tasker.store.tasks import task_edges, task_get, task_steps
from tasker.store.templates import template_register
from tests.e2e.runtime import register_fixture_templates

ORDER = {
    "customer": {"id": "c1", "email": "c@example.com"},
    "items": [{"sku": "A", "quantity": 1, "price": 2.5}],
    "payment": {"method": "card", "token": "t"},
    "shipping": {"address": "x", "method": "ground"},
}

SHAPES: dict[str, tuple[str, str, dict[str, Any], set[str], set[tuple[str, str]]]] = {
    "linear": (
        "linear_workflow",
        "mathematical_sequence",
        {"even_number": 2},
        {"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"},
        {("linear_step_1", "linear_step_2"), ("linear_step_2", "linear_step_3"), ("linear_step_3", "linear_step_4")},
    ),
    "diamond": (
        "diamond_workflow",
        "diamond_pattern",
        {"even_number": 2},
        {"diamond_start", "diamond_branch_b", "diamond_branch_c", "diamond_end"},
        {
            ("diamond_start", "diamond_branch_b"),
            ("diamond_start", "diamond_branch_c"),
            ("diamond_branch_b", "diamond_end"),
            ("diamond_branch_c", "diamond_end"),
        },
    ),
    "tree": (
        "tree_workflow",
        "hierarchical_tree",
        {"even_number": 2},
        {
            "tree_root",
            "tree_branch_left",
            "tree_branch_right",
            "tree_leaf_d",
            "tree_leaf_e",
            "tree_leaf_f",
            "tree_leaf_g",
            "tree_final_convergence",
        },
        {
            ("tree_root", "tree_branch_left"),
            ("tree_root", "tree_branch_right"),
            ("tree_branch_left", "tree_leaf_d"),
            ("tree_branch_left", "tree_leaf_e"),
            ("tree_branch_right", "tree_leaf_f"),
            ("tree_branch_right", "tree_leaf_g"),
            ("tree_leaf_d", "tree_final_convergence"),
            ("tree_leaf_e", "tree_final_convergence"),
            ("tree_leaf_f", "tree_final_convergence"),
            ("tree_leaf_g", "tree_final_convergence"),
        },
    ),
    "mixed_dag": (
        "mixed_dag_workflow",
        "complex_dag",
        {"even_number": 2},
        {
            "dag_init",
            "dag_process_left",
            "dag_process_right",
            "dag_validate",
            "dag_transform",
            "dag_analyze",
            "dag_finalize",
        },
        {
            ("dag_init", "dag_process_left"),
            ("dag_init", "dag_process_right"),
            ("dag_process_left", "dag_validate"),
            ("dag_process_right", "dag_validate"),
            ("dag_process_left", "dag_transform"),
            ("dag_process_right", "dag_analyze"),
            ("dag_validate", "dag_finalize"),
            ("dag_transform", "dag_finalize"),
            ("dag_analyze", "dag_finalize"),
        },
    ),
    "order_fulfillment": (
        "order_fulfillment",
        "business_workflow",
        ORDER,
        {"validate_order", "reserve_inventory", "process_payment", "ship_order"},
        {
            ("validate_order", "reserve_inventory"),
            ("validate_order", "process_payment"),
            ("reserve_inventory", "process_payment"),
            ("validate_order", "ship_order"),
            ("reserve_inventory", "ship_order"),
            ("process_payment", "ship_order"),
        },
    ),
    "conditional_approval": (
        "conditional_approval",
        "approval_routing",
        {"amount": 10, "requester": "r"},
        {"validate_request", "routing_decision"},
        {("validate_request", "routing_decision")},
    ),
    "csv_batch": (
        "csv_processing",
        "csv_product_inventory_analyzer",
        {"csv_file_path": "/tmp/products.csv"},
        {"analyze_csv"},
        set(),
    ),
}


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def _graph(conn: Connection, task_uuid: UUID) -> tuple[dict[UUID, dict[str, Any]], set[tuple[str, str]]]:
    steps = {s["workflow_step_uuid"]: s for s in await task_steps(conn, task_uuid)}
    edges = {
        (steps[e["from_step_uuid"]]["name"], steps[e["to_step_uuid"]]["name"])
        for e in await task_edges(conn, task_uuid)
    }
    return steps, edges


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_each_shape_creates_its_steps_and_edges(registered: Connection, shape: str) -> None:
    namespace, name, context, names, edges = SHAPES[shape]
    created = await create_task(
        registered, PgmqTransport(), TaskRequest(namespace=namespace, name=name, context=context), env="test"
    )
    steps, found_edges = await _graph(registered, created.task_uuid)
    assert {s["name"] for s in steps.values()} == names
    assert found_edges == edges
    roots = {n for n in names if not any(child == n for _, child in edges)}
    assert {s["name"] for s in steps.values() if s["state"] == "enqueued"} == roots
    assert {s["name"] for s in steps.values() if s["state"] == "pending"} == names - roots
    task = await task_get(registered, created.task_uuid)
    assert task["state"] == "steps_in_process" and task["context"] == context
    queued = await (await registered.execute(f"SELECT count(*) AS n FROM pgmq.q_worker_{namespace}_queue")).fetchone()
    assert queued is not None and queued["n"] == len(roots)


async def test_retry_settings_and_inputs_come_from_the_template(registered: Connection) -> None:
    created = await create_task(
        registered,
        PgmqTransport(),
        TaskRequest(namespace="order_fulfillment", name="business_workflow", context=ORDER),
        env="test",
    )
    steps = {s["name"]: s for s in (await _graph(registered, created.task_uuid))[0].values()}
    assert steps["process_payment"]["max_attempts"] == 2 and steps["process_payment"]["retryable"] is True
    assert steps["reserve_inventory"]["inputs"] == {"reservation_minutes": 15}
    assert steps["validate_order"]["inputs"] is None


async def _counts(conn: Connection) -> tuple[int, ...]:
    row = await (
        await conn.execute(
            "SELECT (SELECT count(*) FROM tasker.tasks) AS t, (SELECT count(*) FROM tasker.workflow_steps) AS s,"
            " (SELECT count(*) FROM tasker.workflow_step_edges) AS e,"
            " (SELECT count(*) FROM tasker.task_transitions) AS tt"
        )
    ).fetchone()
    assert row is not None
    return tuple(row.values())


async def test_same_context_twice_is_a_duplicate_naming_the_first_task(registered: Connection) -> None:
    request = TaskRequest(namespace="linear_workflow", name="mathematical_sequence", context={"even_number": 2, "a": 1})
    first = await create_task(registered, PgmqTransport(), request, env="test")
    before = await _counts(registered)
    reordered = TaskRequest(
        namespace="linear_workflow", name="mathematical_sequence", context={"a": 1, "even_number": 2}
    )
    with pytest.raises(DuplicateTaskError, match=str(first.task_uuid)) as raised:
        await create_task(registered, PgmqTransport(), reordered, env="test")
    assert raised.value.details["existing_task_uuid"] == str(first.task_uuid)
    assert await _counts(registered) == before
    other = TaskRequest(namespace="linear_workflow", name="mathematical_sequence", context={"even_number": 4})
    assert (await create_task(registered, PgmqTransport(), other, env="test")).task_uuid != first.task_uuid


async def test_always_unique_and_caller_provided_strategies(registered: Connection) -> None:
    base = load_template_text(
        "name: unique_t\nnamespace_name: identity_checks\nversion: 1.0.0\nidentity_strategy: always_unique\n"
        "steps:\n  - name: identity_only_step\n    handler: { callable: tests.handlers.scenarios.Succeed }\n",
        "inline",
    )
    await template_register(registered, base)
    keyed = load_template_text(
        "name: keyed_t\nnamespace_name: identity_checks\nversion: 1.0.0\nidentity_strategy: caller_provided\n"
        "steps:\n  - name: identity_keyed_step\n    handler: { callable: tests.handlers.scenarios.Succeed }\n",
        "inline",
    )
    await template_register(registered, keyed)
    same = TaskRequest(namespace="identity_checks", name="unique_t", context={"x": 1})
    a = await create_task(registered, PgmqTransport(), same, env="test")
    b = await create_task(registered, PgmqTransport(), same, env="test")
    assert a.task_uuid != b.task_uuid
    before = await _counts(registered)
    with pytest.raises(InvalidTaskRequestError, match="idempotency_key"):
        await create_task(
            registered, PgmqTransport(), TaskRequest(namespace="identity_checks", name="keyed_t"), env="test"
        )
    assert await _counts(registered) == before
    with_key = TaskRequest(namespace="identity_checks", name="keyed_t", idempotency_key="k-1", context={"x": 1})
    await create_task(registered, PgmqTransport(), with_key, env="test")
    with pytest.raises(DuplicateTaskError):
        await create_task(registered, PgmqTransport(), with_key.model_copy(update={"context": {"x": 2}}), env="test")


async def test_bad_context_lists_every_failing_field_and_writes_nothing(registered: Connection) -> None:
    before = await _counts(registered)
    bad = dict(ORDER, customer={"id": "c1"}, items=[])
    del bad["payment"]
    with pytest.raises(InvalidContextError) as raised:
        await create_task(
            registered,
            PgmqTransport(),
            TaskRequest(namespace="order_fulfillment", name="business_workflow", context=bad),
            env="test",
        )
    fields = {e["field"] for e in raised.value.details["errors"]}
    assert fields == {"/customer/email", "/items", "/payment"}
    assert await _counts(registered) == before


async def test_unknown_template_and_oversized_context_are_refused(registered: Connection) -> None:
    before = await _counts(registered)
    with pytest.raises(TemplateNotFoundError, match="nope"):
        await create_task(registered, PgmqTransport(), TaskRequest(namespace="nope", name="x"), env="test")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(12):
        node["d"] = {}
        node = node["d"]
    with pytest.raises(InvalidTaskRequestError, match="context"):
        await create_task(
            registered,
            PgmqTransport(),
            TaskRequest(namespace="linear_workflow", name="mathematical_sequence", context={"even_number": 2, **deep}),
            env="test",
        )
    assert await _counts(registered) == before


async def test_a_template_re_registered_by_another_process_is_read_again(registered: Connection) -> None:
    """create_task builds a task from this process's last copy of its template without reading it; the create
    statement checks the copy's digest, so after a forced re-registration (as another process would make, which
    this process's copy knows nothing of) the task is built from the new template, and the refused first try
    wrote nothing."""

    def template(steps: str) -> Any:
        head = "name: reread_t\nnamespace_name: reread_checks\nversion: 1.0.0\nidentity_strategy: always_unique\n"
        return load_template_text(head + "steps:\n" + steps, "inline")

    first_step = "  - name: reread_first\n    handler: { callable: tests.handlers.scenarios.Succeed }\n"
    second_step = (
        "  - name: reread_second\n    handler: { callable: tests.handlers.scenarios.Succeed }\n"
        "    dependencies: [reread_first]\n"
    )
    await template_register(registered, template(first_step))
    request = TaskRequest(namespace="reread_checks", name="reread_t", context={})
    before = await create_task(registered, PgmqTransport(), request, env="test")
    assert set(before.step_uuids) == {"reread_first"}
    await template_register(registered, template(first_step + second_step), force=True)
    counts = await _counts(registered)
    after = await create_task(registered, PgmqTransport(), request, env="test")
    assert set(after.step_uuids) == {"reread_first", "reread_second"}
    _, edges = await _graph(registered, after.task_uuid)
    assert edges == {("reread_first", "reread_second")}
    tasks, steps_count, edges_count, _ = await _counts(registered)
    assert (tasks, steps_count, edges_count) == (counts[0] + 1, counts[1] + 2, counts[2] + 1)
