"""The handler API users write against: ``StepHandler`` classes, the ``@step_handler`` decorator, ``StepContext``.

A handler returns a value: a ``StepResult`` (``self.success(...)`` / ``self.failure(...)``), a dict (success with
that result), ``None`` (success with ``{}``), or any other JSON value (success with ``{"result": value}``). Raising
``PermanentError`` fails the step for good; ``RetryableError`` (optionally with ``retry_after`` seconds) and any
other exception fail it for a retry, keeping the traceback (``SystemExit`` and ``KeyboardInterrupt`` too: they fail
the step, never the worker).

Delivery is at least once: a handler can run more than once for the same step and attempt, e.g. when its worker
dies or loses the database after the handler finished but before the result was stored, or when a database crash
rolls back a claim. Make handlers idempotent (an idempotency key on side effects, e.g. ``context.step_uuid``). The
step's state changes exactly once: only one run's result is ever applied; the others are refused (recorded in the
audit trail at most) and never overwrite it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from uuid import UUID

from tasker.model.dynamic import (
    BatchAggregate,
    BatchWorkerInputs,
    CursorConfig,
    aggregate_workers,
    batches_result,
    create_cursor_ranges,
    decision_result,
    no_batches_result,
    no_branches_result,
    worker_result,
)
from tasker.model.results import StepResult

CHECKPOINT_SAVE_TIMEOUT_SECONDS = 30.0
CheckpointSaver: TypeAlias = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class PermanentError(Exception):
    """Raise from a handler: the step fails and is not retried."""

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class RetryableError(Exception):
    """Raise from a handler: the step fails and is retried (after ``retry_after`` seconds when given)."""

    def __init__(self, message: str, *, retry_after: float | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.error_code = error_code


class CheckpointRejectedError(RetryableError):
    """The checkpoint was not stored: this attempt no longer holds the step (cancelled, or taken over)."""


class _Done:
    """An awaitable that is already complete (what a checkpoint yield returns once stored from a thread)."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


@dataclass
class StepContext:
    """What a handler sees of its task and step."""

    task_uuid: UUID
    step_uuid: UUID
    correlation_id: UUID
    step_name: str
    template_step_name: str
    namespace: str
    task_name: str
    task_version: str
    input_data: dict[str, Any]
    step_inputs: dict[str, Any]
    step_config: dict[str, Any]
    dependency_results: dict[str, Any]
    attempt: int
    max_attempts: int
    checkpoint: dict[str, Any] | None = None
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    checkpoint_saver: CheckpointSaver | None = field(default=None, repr=False, compare=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False, compare=False)

    @property
    def retry_count(self) -> int:
        """Attempts before this one (0 on the first run), as tasker-core's ``retry_count``."""
        return self.attempt - 1

    def is_retry(self) -> bool:
        return self.attempt > 1

    def is_last_retry(self) -> bool:
        return self.attempt >= self.max_attempts

    def get_input(self, key: str, default: Any = None) -> Any:
        """A value of the task's context (the task's input)."""
        return self.input_data.get(key, default)

    def get_config(self, key: str, default: Any = None) -> Any:
        """A value of the step's ``handler.initialization``."""
        return self.step_config.get(key, default)

    def get_dependency_result(self, step_name: str) -> Any:
        """The ``result`` an ancestor step returned (None when it has none)."""
        stored = self.dependency_results.get(step_name)
        return stored.get("result") if isinstance(stored, dict) else None

    def get_dependency_field(self, step_name: str, *path: str) -> Any:
        value = self.get_dependency_result(step_name)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def get_all_dependency_results(self, prefix: str) -> dict[str, Any]:
        """Results of every ancestor whose name starts with ``prefix`` (e.g. all batch workers)."""
        return {
            name: self.get_dependency_result(name)
            for name in sorted(self.dependency_results)
            if name.startswith(prefix)
        }

    # --- batch workers ----------------------------------------------------------------------------------------

    @property
    def batch_inputs(self) -> BatchWorkerInputs:
        """This batch worker's cursor range and batch metadata (from the step's ``inputs``)."""
        return BatchWorkerInputs.from_inputs(self.step_inputs)

    @property
    def is_no_op(self) -> bool:
        """True for the placeholder worker of an empty batch (the worker completes it without a handler)."""
        return bool(self.step_inputs.get("is_no_op", False))

    def worker_results(self, worker_template_name: str) -> BatchAggregate:
        """All ``{worker_template_name}_*`` workers' results, summed (for a convergence step)."""
        return aggregate_workers(self.dependency_results, worker_template_name)

    # --- checkpoints ------------------------------------------------------------------------------------------

    def has_checkpoint(self) -> bool:
        return bool(self.checkpoint)

    @property
    def checkpoint_cursor(self) -> Any:
        """Where the last checkpoint left off (None without one): resume from here."""
        return (self.checkpoint or {}).get("cursor")

    @property
    def checkpoint_items_processed(self) -> int:
        return int((self.checkpoint or {}).get("items_processed", 0) or 0)

    @property
    def accumulated_results(self) -> Any:
        return (self.checkpoint or {}).get("accumulated_results")

    def checkpoint_yield(self, cursor: Any, items_processed: int, accumulated_results: Any = None) -> Awaitable[None]:
        """Persist progress (``workflow_steps.checkpoint``, history appended) and carry on; the step stays
        ``in_progress``. A retry of this step (after a failure or a crash) starts with this checkpoint.

        From a sync handler (run in a thread) the call returns once the checkpoint is stored; from an ``async``
        handler ``await`` it. Raises :class:`CheckpointRejectedError` when this attempt no longer holds the step.
        """
        data = {"cursor": cursor, "items_processed": items_processed, "accumulated_results": accumulated_results}
        if self.checkpoint_saver is None or self.loop is None:
            self.checkpoint = {**data, "history": [*(self.checkpoint or {}).get("history", []), dict(data)]}
            return _Done()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return asyncio.ensure_future(self._save(data))
        future = asyncio.run_coroutine_threadsafe(self._save(data), self.loop)
        future.result(CHECKPOINT_SAVE_TIMEOUT_SECONDS)
        return _Done()

    async def save_checkpoint(self, data: dict[str, Any]) -> None:
        """Store a checkpoint from the worker's loop (used for tasker-core style checkpoint-yield results)."""
        if self.checkpoint_saver is None:
            self.checkpoint = {**data, "history": [*(self.checkpoint or {}).get("history", []), dict(data)]}
            return
        await self._save(data)

    async def _save(self, data: dict[str, Any]) -> None:
        assert self.checkpoint_saver is not None
        stored = await self.checkpoint_saver(data)
        if stored is None:
            raise CheckpointRejectedError(f"step {self.step_name}: checkpoint refused, this attempt no longer holds it")
        self.checkpoint = stored


CHECKPOINT_YIELD_KEY = "checkpoint_yield"


def checkpoint_yield_of(result: StepResult) -> dict[str, Any] | None:
    """The checkpoint a handler's checkpoint-yield result carries, or None for an ordinary result."""
    if not result.success or not result.metadata.get(CHECKPOINT_YIELD_KEY) or not isinstance(result.result, dict):
        return None
    value = result.result
    return {
        "cursor": value.get("cursor"),
        "items_processed": int(value.get("items_processed") or 0),
        "accumulated_results": value.get("accumulated_results"),
    }


class StepHandler:
    """Base class for handlers: implement ``call(self, context)`` (plain or ``async``).

    A plain ``call`` runs in a handler thread; an ``async`` one on the worker's event loop, so it must not block
    (no ``time.sleep`` or blocking I/O: the worker warns when its loop stalls). ``call`` may run more than once for
    one step (delivery is at least once), so make its side effects idempotent; only one run's result is applied.
    """

    handler_name: str | None = None

    def call(self, context: StepContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement call(context)")

    def success(self, result: Any = None, metadata: dict[str, Any] | None = None) -> StepResult:
        return StepResult.ok({} if result is None else result, metadata)

    def failure(
        self,
        message: str,
        *,
        error_type: str = "handler_error",
        retryable: bool = True,
        retry_after: float | None = None,
        error_code: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> StepResult:
        return StepResult.failed(
            message,
            error_type=error_type,
            retryable=retryable,
            retry_after=retry_after,
            error_code=error_code,
            metadata=metadata,
        )

    # --- decision points --------------------------------------------------------------------------------------

    def decision_success(
        self,
        step_names: Sequence[str],
        routing_context: Mapping[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **result: Any,
    ) -> StepResult:
        """Complete a decision step, creating ``step_names`` (and their dependents); an empty list creates none."""
        return StepResult.ok(decision_result(step_names, routing_context, **result), metadata)

    def decision_no_branches(self, reason: str | None = None, **result: Any) -> StepResult:
        """Complete a decision step without creating any branch."""
        return StepResult.ok(no_branches_result(reason, **result))

    # --- batches ----------------------------------------------------------------------------------------------

    @staticmethod
    def create_cursor_ranges(
        total_items: int, batch_size: int, *, start: int = 0, max_batches: int | None = None
    ) -> list[CursorConfig]:
        """Cursor ranges ``[start, end)`` of ``batch_size`` items (ids 001, 002, ...)."""
        return create_cursor_ranges(total_items, batch_size, start=start, max_batches=max_batches)

    def batch_analyzer_success(
        self,
        worker_template_name: str,
        cursor_configs: Sequence[CursorConfig | Mapping[str, Any]],
        total_items: int,
        **result: Any,
    ) -> StepResult:
        """Complete a batchable step: one worker step per cursor range (none: the no-batches outcome)."""
        return StepResult.ok(batches_result(worker_template_name, cursor_configs, total_items, **result))

    def no_batches_outcome(self, reason: str | None = None, **result: Any) -> StepResult:
        """Complete a batchable step with nothing to do: one no-op worker is created so the task completes."""
        return StepResult.ok(no_batches_result(reason, **result))

    def batch_worker_inputs(self, context: StepContext) -> BatchWorkerInputs:
        return context.batch_inputs

    def handle_no_op_worker(self, context: StepContext) -> StepResult | None:
        """The result for a no-op worker, or None for a real one (``return self.handle_no_op_worker(c) or ...``)."""
        if not context.is_no_op:
            return None
        return StepResult.ok({**worker_result(0, batch_id=context.batch_inputs.batch_id), "no_op": True})

    def checkpoint_yield(self, cursor: Any, items_processed: int, accumulated_results: Any = None) -> StepResult:
        """tasker-core's checkpoint yield: *return* this from ``call`` to store progress and be called again at once
        with ``context.checkpoint`` set (same attempt, lease kept), resuming from ``cursor``. The other style,
        ``context.checkpoint_yield(...)`` inside a loop, stores progress without leaving the handler."""
        return StepResult.ok(
            {"cursor": cursor, "items_processed": items_processed, "accumulated_results": accumulated_results},
            {CHECKPOINT_YIELD_KEY: True},
        )

    def batch_worker_success(
        self,
        items_processed: int,
        *,
        items_succeeded: int | None = None,
        items_failed: int = 0,
        last_cursor: Any = None,
        batch_id: str | None = None,
        **result: Any,
    ) -> StepResult:
        return StepResult.ok(
            worker_result(
                items_processed,
                items_succeeded=items_succeeded,
                items_failed=items_failed,
                last_cursor=last_cursor,
                batch_id=batch_id,
                **result,
            )
        )

    def aggregate_worker_results(self, context: StepContext, worker_template_name: str) -> BatchAggregate:
        return context.worker_results(worker_template_name)


HandlerFunction: TypeAlias = Callable[[StepContext], Any] | Callable[[StepContext], Awaitable[Any]]


class FunctionHandler(StepHandler):
    """Adapts a plain function to the handler protocol (it runs in a handler thread)."""

    def __init__(self, function: HandlerFunction, name: str) -> None:
        self.function = function
        self.handler_name = name

    def call(self, context: StepContext) -> Any:
        return self.function(context)


class AsyncFunctionHandler(FunctionHandler):
    """Adapts an ``async def`` function: its ``call`` is a coroutine function, so it runs on the worker's loop and
    cancelling the task cancels it, as for an async ``StepHandler``."""

    async def call(self, context: StepContext) -> Any:
        return await self.function(context)


def function_handler(function: HandlerFunction, name: str) -> FunctionHandler:
    """The adapter for ``function``: async for an ``async def`` (or a partial of one), sync otherwise."""
    if inspect.iscoroutinefunction(function):
        return AsyncFunctionHandler(function, name)
    return FunctionHandler(function, name)


def step_handler(name: str | None = None) -> Callable[[HandlerFunction], HandlerFunction]:
    """Register a function, plain or ``async def``, as a handler under ``name`` (default: its dotted path).

    The same rules hold as for ``StepHandler.call``: it may run more than once for one step, so make it idempotent.
    """

    def register(function: HandlerFunction) -> HandlerFunction:
        from tasker.worker.registry import default_registry

        key = name or f"{function.__module__}.{function.__qualname__}"
        default_registry.register(key, function_handler(function, key))
        return function

    return register


def to_step_result(value: Any) -> StepResult:
    """Normalise what a handler returned."""
    if isinstance(value, StepResult):
        return value
    if value is None:
        return StepResult.ok({})
    if isinstance(value, dict):
        return StepResult.ok(value)
    if hasattr(value, "model_dump"):
        return StepResult.ok(value.model_dump(mode="json"))
    return StepResult.ok({"result": value})
