"""Workflows that grow while they run, as pure functions: outcome shapes, graph segments, cursor ranges, and the
plan of steps and edges a decision or a batch fan-out adds to a task.

A decision step's result carries ``decision_point_outcome`` (``create_steps`` with step names, or
``no_branches``); a batchable step's result carries ``batch_processing_outcome`` (``create_batches`` with cursor
ranges, or ``no_batches``). :func:`plan_growth` checks an outcome against the template and says what to create;
the store creates it idempotently (steps are unique per task and named step, edges per (from, to, name)), so a
plan may be applied twice. Problems raise :class:`InvalidOutcome`, whose message names the offending step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasker.model.template import BatchConfig, FailureStrategy, StepDefinition, TaskTemplate

DECISION_KEY = "decision_point_outcome"
BATCH_KEY = "batch_processing_outcome"
DEFAULT_MAX_STEPS_PER_DECISION = 100
DEFAULT_MAX_WORKERS_PER_BATCH = 10_000
TEMPLATE_STEP_KEY = "__template_step_name"
NO_OP_BATCH_ID = "000"
NAME_LIMIT = 128  # named_steps.name is varchar(128)

EDGE_PROVIDES = "provides"
EDGE_BATCH = "batch_dependency"
EDGE_WORKER_TO_CONVERGENCE = "worker_to_convergence"


class InvalidOutcome(Exception):
    """A decision or batch outcome the template does not allow; the message names the offending step."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Outcome(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CursorConfig(_Outcome):
    """One batch: items from ``start_cursor`` (inclusive) to ``end_cursor`` (exclusive); cursors may be any JSON."""

    batch_id: str = Field(min_length=1, max_length=64)
    start_cursor: Any = 0
    end_cursor: Any = 0
    batch_size: int = Field(default=0, ge=0)

    @field_validator("batch_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class DecisionOutcome(_Outcome):
    type: Literal["create_steps", "no_branches"]
    step_names: list[str] = Field(default_factory=list)


class BatchOutcome(_Outcome):
    type: Literal["create_batches", "no_batches"]
    worker_template_name: str | None = None
    worker_count: int | None = Field(default=None, ge=0)
    cursor_configs: list[CursorConfig] = Field(default_factory=list)
    total_items: int | None = Field(default=None, ge=0)


# --- helpers for handlers (pure) --------------------------------------------------------------------------------


def create_cursor_ranges(
    total_items: int, batch_size: int, *, start: int = 0, max_batches: int | None = None
) -> list[CursorConfig]:
    """Split ``total_items`` into ranges of ``batch_size`` (0-based, end exclusive), ids ``001``, ``002``, ...

    With ``max_batches``, the batch size grows so that no more than that many ranges are made.
    """
    if total_items < 0:
        raise ValueError("total_items must be >= 0")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if max_batches is not None:
        if max_batches < 1:
            raise ValueError("max_batches must be >= 1")
        batch_size = max(batch_size, math.ceil(total_items / max_batches))
    count = math.ceil(total_items / batch_size)
    width = max(3, len(str(count)))
    return [
        CursorConfig(
            batch_id=str(i + 1).zfill(width),
            start_cursor=start + i * batch_size,
            end_cursor=start + min((i + 1) * batch_size, total_items),
            batch_size=min(batch_size, total_items - i * batch_size),
        )
        for i in range(count)
    ]


def decision_result(
    step_names: Sequence[str], routing_context: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A decision step's ``result``: create these steps (an empty list creates none)."""
    outcome: dict[str, Any] = (
        {"type": "create_steps", "step_names": list(step_names)} if step_names else {"type": "no_branches"}
    )
    result: dict[str, Any] = {**extra, DECISION_KEY: outcome}
    if routing_context is not None:
        result["routing_context"] = dict(routing_context)
    return result


def no_branches_result(reason: str | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {**extra, DECISION_KEY: {"type": "no_branches"}}
    if reason is not None:
        result["reason"] = reason
    return result


def batches_result(
    worker_template_name: str,
    cursor_configs: Sequence[CursorConfig | Mapping[str, Any]],
    total_items: int,
    **extra: Any,
) -> dict[str, Any]:
    """A batchable step's ``result``: one worker per cursor range (no ranges: the no-batches outcome)."""
    configs = [c if isinstance(c, CursorConfig) else CursorConfig.model_validate(c) for c in cursor_configs]
    if not configs:
        return no_batches_result(worker_template_name=worker_template_name, total_items=total_items, **extra)
    return {
        **extra,
        BATCH_KEY: {
            "type": "create_batches",
            "worker_template_name": worker_template_name,
            "worker_count": len(configs),
            "cursor_configs": [c.model_dump(mode="json") for c in configs],
            "total_items": total_items,
        },
    }


def no_batches_result(
    reason: str | None = None, *, worker_template_name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A batchable step's ``result`` when there is nothing to split: the worker's name goes in the outcome, where
    the engine reads it (one no-op worker is created so convergence still runs)."""
    outcome: dict[str, Any] = {"type": "no_batches"}
    if worker_template_name is not None:
        outcome["worker_template_name"] = worker_template_name
    result: dict[str, Any] = {**extra, BATCH_KEY: outcome}
    if reason is not None:
        result["reason"] = reason
    return result


@dataclass(frozen=True)
class BatchWorkerInputs:
    """What a batch worker step was created with (its ``inputs``)."""

    batch_id: str
    start_cursor: Any
    end_cursor: Any
    batch_size: int
    cursor_field: str
    failure_strategy: str
    is_no_op: bool
    worker_template_name: str | None

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> BatchWorkerInputs:
        cursor = inputs.get("cursor") or {}
        meta = inputs.get("batch_metadata") or {}
        return cls(
            batch_id=str(cursor.get("batch_id", NO_OP_BATCH_ID)),
            start_cursor=cursor.get("start_cursor", 0),
            end_cursor=cursor.get("end_cursor", 0),
            batch_size=int(cursor.get("batch_size", 0) or 0),
            cursor_field=str(meta.get("cursor_field", "id")),
            failure_strategy=str(meta.get("failure_strategy", "continue_on_failure")),
            is_no_op=bool(inputs.get("is_no_op", False)),
            worker_template_name=inputs.get(TEMPLATE_STEP_KEY),
        )


def worker_result(
    items_processed: int,
    *,
    items_succeeded: int | None = None,
    items_failed: int = 0,
    last_cursor: Any = None,
    batch_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A batch worker's ``result`` in the shape :func:`aggregate_workers` reads."""
    return {
        **extra,
        "batch_id": batch_id,
        "items_processed": items_processed,
        "items_succeeded": items_processed - items_failed if items_succeeded is None else items_succeeded,
        "items_failed": items_failed,
        "last_cursor": last_cursor,
    }


@dataclass(frozen=True)
class BatchAggregate:
    """The workers of one batch fan-out as a convergence step sees them."""

    worker_count: int
    no_op: bool
    items_processed: int
    items_succeeded: int
    items_failed: int
    failed_workers: list[str]
    results: dict[str, Any] = field(default_factory=dict)


def aggregate_workers(dependency_results: Mapping[str, Any], worker_template_name: str) -> BatchAggregate:
    """Sum the results of every ``{worker_template_name}_{batch_id}`` ancestor (stored results, success or not).

    No-op workers (the empty-batch placeholder) are not counted as workers.
    """
    prefix = f"{worker_template_name}_"
    results: dict[str, Any] = {}
    failed: list[str] = []
    processed = succeeded = failed_items = workers = 0
    no_op = False
    for name in sorted(dependency_results):
        stored = dependency_results[name]
        if not name.startswith(prefix) or not isinstance(stored, Mapping):
            continue
        result = stored.get("result")
        if isinstance(result, Mapping) and result.get("no_op"):
            no_op = True
            continue
        workers += 1
        results[name] = result
        if not stored.get("success", True):
            failed.append(name)
            continue
        if isinstance(result, Mapping):
            processed += int(result.get("items_processed", 0) or 0)
            succeeded += int(result.get("items_succeeded", result.get("items_processed", 0)) or 0)
            failed_items += int(result.get("items_failed", 0) or 0)
    return BatchAggregate(workers, no_op and workers == 0, processed, succeeded, failed_items, failed, results)


# --- planning (orchestration side) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDynamicStep:
    name: str
    retryable: bool
    max_attempts: int
    inputs: dict[str, Any] | None


@dataclass(frozen=True)
class NewEdge:
    """An edge by step names. When ``from_name`` does not exist in the task, ``fallback_from`` (if any) is used;
    with no fallback the edge is skipped (a convergence step waits only for the parents that exist)."""

    from_name: str
    to_name: str
    name: str = EDGE_PROVIDES
    fallback_from: str | None = None


@dataclass(frozen=True)
class Growth:
    """Steps and edges to add to a task; applying it twice adds nothing the second time."""

    source_step: str
    steps: list[NewDynamicStep] = field(default_factory=list)
    edges: list[NewEdge] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps


def decision_segment(template: TaskTemplate, decision: str) -> set[str]:
    """The steps a decision may create: its descendants, walking down until (and including) other decisions."""
    found: set[str] = set()
    pending = template.children(decision)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        if template.step(name).type != "decision":
            pending.extend(template.children(name))
    return found


def _closure(template: TaskTemplate, seeds: Iterable[str]) -> list[str]:
    """Seeds plus their dependents, in template order: batch workers are skipped (their batchable step creates
    them), and the walk does not go past a decision step (that decision creates its own branches)."""
    chosen: set[str] = set()
    pending = list(seeds)
    while pending:
        name = pending.pop()
        if name in chosen:
            continue
        chosen.add(name)
        if template.step(name).type == "decision":
            continue
        pending.extend(c for c in template.children(name) if template.step(c).type != "batch_worker")
    return [name for name in template.step_names() if name in chosen]


def _standard_step(definition: StepDefinition) -> NewDynamicStep:
    return NewDynamicStep(
        name=definition.name,
        retryable=definition.retry.retryable,
        max_attempts=definition.retry.max_attempts,
        inputs=dict(definition.handler.initialization) or None,
    )


def _pending_decision(template: TaskTemplate, step: str, anchor: str) -> str | None:
    """Another decision step (not ``anchor``) that may still create ``step``: a convergence step waits for it to
    decide (the decision creates the branch and its edge to the convergence step in the same transaction)."""
    for name in template.step_names():
        if name != anchor and template.step(name).type == "decision" and step in decision_segment(template, name):
            return name
    return None


def _dependency_edges(template: TaskTemplate, name: str, anchor: str, skip: str | None = None) -> list[NewEdge]:
    """``provides`` edges from each declared dependency. A missing dependency of a standard step is replaced by
    ``anchor`` (the step that created it); a convergence step does not wait for a missing dependency, unless another
    decision that has yet to decide may create it: then it waits for that decision (when it exists)."""
    definition = template.step(name)
    edges = []
    for parent in definition.dependencies:
        if parent == skip:
            continue
        if definition.type == "deferred_convergence":
            edges.append(NewEdge(parent, name, EDGE_PROVIDES, _pending_decision(template, parent, anchor)))
        else:
            edges.append(NewEdge(parent, name, EDGE_PROVIDES, anchor))
    return edges


def _limit(definition: StepDefinition, key: str, default: int) -> int:
    value = (definition.model_extra or {}).get(key)
    return int(value) if isinstance(value, int) and value > 0 else default


def _outcome_of(results: Mapping[str, Any] | None, key: str, step: str, kind: str) -> dict[str, Any]:
    result = (results or {}).get("result")
    outcome = result.get(key) if isinstance(result, Mapping) else None
    if not isinstance(outcome, Mapping):
        raise InvalidOutcome(f"{kind} step {step!r} returned no {key} in its result")
    return dict(outcome)


def plan_decision(template: TaskTemplate, decision: str, results: Mapping[str, Any] | None) -> Growth:
    raw = _outcome_of(results, DECISION_KEY, decision, "decision")
    try:
        outcome = DecisionOutcome.model_validate(raw)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'outcome'}: {e['msg']}" for e in exc.errors())
        raise InvalidOutcome(f"decision step {decision!r}: invalid {DECISION_KEY}: {problem}") from None
    if outcome.type == "no_branches" or not outcome.step_names:
        return Growth(decision)
    segment = decision_segment(template, decision)
    known = set(template.step_names())
    requested = list(dict.fromkeys(outcome.step_names))
    for name in requested:
        if name not in known:
            raise InvalidOutcome(f"decision step {decision!r} named unknown step {name!r}")
        if name not in segment:
            raise InvalidOutcome(f"decision step {decision!r} named step {name!r}, which is outside its segment")
        if template.step(name).type == "batch_worker":
            raise InvalidOutcome(
                f"decision step {decision!r} named batch worker {name!r}; its batchable step creates its workers"
            )
    created = _closure(template, requested)
    limit = _limit(template.step(decision), "max_steps_per_decision", DEFAULT_MAX_STEPS_PER_DECISION)
    if len(created) > limit:
        raise InvalidOutcome(
            f"decision step {decision!r} would create {len(created)} steps (from {', '.join(requested)}), "
            f"over its limit of {limit}"
        )
    return Growth(
        decision,
        steps=[_standard_step(template.step(name)) for name in created],
        edges=[edge for name in created for edge in _dependency_edges(template, name, decision)],
    )


def _batch_worker_children(template: TaskTemplate, batchable: str) -> list[str]:
    return [c for c in template.children(batchable) if template.step(c).type == "batch_worker"]


def _worker_name(template: TaskTemplate, batchable: str, named: str | None) -> str | None:
    """The worker template a batchable step uses: named by its outcome, else by its handler initialization, else
    the one ``batch_worker`` step that depends on it."""
    name = named or template.step(batchable).handler.initialization.get("worker_template_name")
    if isinstance(name, str) and name:
        return name
    children = _batch_worker_children(template, batchable)
    return children[0] if len(children) == 1 else None


def _worker_template(template: TaskTemplate, batchable: str, named: str | None) -> StepDefinition:
    name = _worker_name(template, batchable, named)
    if name is None:
        raise InvalidOutcome(f"batchable step {batchable!r} named no worker_template_name")
    if name not in template.step_names():
        raise InvalidOutcome(f"batchable step {batchable!r} named unknown worker template {name!r}")
    worker = template.step(name)
    if worker.type != "batch_worker":
        raise InvalidOutcome(f"batchable step {batchable!r} named step {name!r}, which is not a batch_worker")
    if batchable not in worker.dependencies:
        raise InvalidOutcome(
            f"batchable step {batchable!r} named worker template {name!r}, which does not depend on it"
        )
    return worker


def worker_step_name(worker_template_name: str, batch_id: str) -> str:
    return f"{worker_template_name}_{batch_id}"


def batch_config_of(worker: StepDefinition) -> BatchConfig:
    return worker.batch_config or BatchConfig(worker_template=worker.name)


def failure_strategy_of(worker: StepDefinition) -> FailureStrategy:
    return batch_config_of(worker).failure_strategy


def plan_batches(template: TaskTemplate, batchable: str, results: Mapping[str, Any] | None) -> Growth:
    raw = _outcome_of(results, BATCH_KEY, batchable, "batchable")
    try:
        outcome = BatchOutcome.model_validate(raw)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'outcome'}: {e['msg']}" for e in exc.errors())
        raise InvalidOutcome(f"batchable step {batchable!r}: invalid {BATCH_KEY}: {problem}") from None
    if outcome.type == "no_batches" and _worker_name(template, batchable, outcome.worker_template_name) is None:
        # nothing to split and no worker to stand in for the batches (tasker-core: not an error): the step simply
        # completes and creates nothing
        return Growth(batchable, steps=[], edges=[])
    worker = _worker_template(template, batchable, outcome.worker_template_name)
    configs = outcome.cursor_configs if outcome.type == "create_batches" else []
    no_op = not configs
    if no_op:
        configs = [CursorConfig(batch_id=NO_OP_BATCH_ID, start_cursor=0, end_cursor=0, batch_size=0)]
    limit = _limit(template.step(batchable), "max_workers_per_batch", DEFAULT_MAX_WORKERS_PER_BATCH)
    if len(configs) > limit:
        raise InvalidOutcome(
            f"batchable step {batchable!r} asked for {len(configs)} workers of {worker.name!r}, "
            f"over its limit of {limit}"
        )
    config = batch_config_of(worker)
    names: list[str] = []
    steps: list[NewDynamicStep] = []
    for cursor in configs:
        name = worker_step_name(worker.name, cursor.batch_id)
        if name in names:
            raise InvalidOutcome(f"batchable step {batchable!r} used batch id {cursor.batch_id!r} twice ({name!r})")
        if len(name) > NAME_LIMIT or name in template.step_names():
            raise InvalidOutcome(f"batchable step {batchable!r}: worker step name {name!r} is not usable")
        names.append(name)
        inputs = {
            **worker.handler.initialization,
            "cursor": cursor.model_dump(mode="json"),
            "batch_metadata": {"cursor_field": config.cursor_field, "failure_strategy": config.failure_strategy},
            "is_no_op": no_op,
            TEMPLATE_STEP_KEY: worker.name,
        }
        steps.append(NewDynamicStep(name, worker.retry.retryable, worker.retry.max_attempts, inputs))
    edges = [NewEdge(batchable, name, EDGE_BATCH) for name in names]
    convergence = [c for c in template.children(worker.name) if template.step(c).type == "deferred_convergence"]
    for step in convergence:
        edges += [NewEdge(name, step, EDGE_WORKER_TO_CONVERGENCE) for name in names]
        edges += _dependency_edges(template, step, batchable, skip=worker.name)
    later = [name for name in _closure(template, convergence) if name not in convergence]
    edges += [edge for name in later for edge in _dependency_edges(template, name, batchable)]
    steps += [_standard_step(template.step(name)) for name in [*convergence, *later]]
    return Growth(batchable, steps=steps, edges=edges)


def plan_growth(template: TaskTemplate, template_step_name: str, results: Mapping[str, Any] | None) -> Growth | None:
    """What a completed step adds to its task: None for standard steps; raises :class:`InvalidOutcome`."""
    kind = template.step(template_step_name).type
    if kind == "decision":
        return plan_decision(template, template_step_name, results)
    if kind == "batchable":
        return plan_batches(template, template_step_name, results)
    return None
