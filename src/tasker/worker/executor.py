"""Run one step's handler and turn every outcome into a ``StepResult``; this never raises.

Sync handlers run in a thread pool and async ones on the loop; ``timeout_seconds`` is enforced either way (a sync
handler that overruns is abandoned: its thread finishes in the background and its result is ignored).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from tasker.model.results import StepResult
from tasker.worker.handler import PermanentError, RetryableError, StepContext, to_step_result
from tasker.worker.registry import HandlerNotFoundError, HandlerRegistry


@dataclass(frozen=True)
class Execution:
    result: StepResult
    execution_time_ms: int


def _entry_point(handler: Any, method: str | None) -> Callable[[StepContext], Any]:
    name = method or "call"
    entry = getattr(handler, name, None)
    if entry is None or not callable(entry):
        raise HandlerNotFoundError(f"handler {type(handler).__name__} has no method {name!r}")
    return entry  # type: ignore[no-any-return]


async def _invoke(entry: Callable[[StepContext], Any], context: StepContext, pool: Executor | None) -> Any:
    if inspect.iscoroutinefunction(entry):
        return await entry(context)
    loop = asyncio.get_running_loop()
    value = await loop.run_in_executor(pool, entry, context)
    if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine (decorated async function)
        return await value
    return value


def _failure_from(exc: BaseException) -> StepResult:
    if isinstance(exc, PermanentError):
        return StepResult.failed(str(exc), error_type="permanent_error", retryable=False, error_code=exc.error_code)
    if isinstance(exc, RetryableError):
        return StepResult.failed(
            str(exc),
            error_type="retryable_error",
            retryable=True,
            retry_after=exc.retry_after,
            error_code=exc.error_code,
        )
    trace = "".join(traceback.format_exception(exc))
    return StepResult.failed(str(exc) or type(exc).__name__, error_type=type(exc).__name__, stack_trace=trace)


async def execute(
    registry: HandlerRegistry,
    callable_name: str,
    method: str | None,
    context: StepContext,
    *,
    timeout_seconds: float | None,
    pool: Executor | None = None,
) -> Execution:
    started = time.perf_counter()
    try:
        entry = _entry_point(registry.resolve(callable_name), method)
    except HandlerNotFoundError as exc:
        result = StepResult.failed(str(exc), error_type="handler_not_found", retryable=False)
        return Execution(result, int((time.perf_counter() - started) * 1000))
    try:
        value = await asyncio.wait_for(_invoke(entry, context, pool), timeout_seconds)
        result = to_step_result(value)
    except TimeoutError:
        result = StepResult.failed(
            f"handler did not finish within {timeout_seconds} s", error_type="timeout", retryable=True
        )
    except asyncio.CancelledError:
        if not context.cancelled:
            raise
        result = StepResult.failed("the task was cancelled", error_type="cancelled", retryable=False)
    except Exception as exc:  # every handler failure becomes a value
        result = _failure_from(exc)
    return Execution(result, int((time.perf_counter() - started) * 1000))
