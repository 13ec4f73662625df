"""Run one step's handler and turn every outcome into a ``StepResult``; this never raises.

Sync handlers run in :class:`HandlerThreads` and async ones on the loop; ``timeout_seconds`` is enforced either
way. A sync handler that overruns cannot be stopped (Python cannot kill a thread): it is abandoned, its thread
finishes in the background and its result is ignored, and a new thread takes its place so later steps still run.
Whatever a handler raises, ``SystemExit`` and ``KeyboardInterrupt`` included, is the step's failure, never the
worker's end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasker.model.results import StepResult
from tasker.worker.handler import PermanentError, RetryableError, StepContext, StepHandler, to_step_result
from tasker.worker.registry import HandlerNotAllowedError, HandlerNotFoundError, HandlerRegistry

log = logging.getLogger("tasker.worker")


@dataclass(frozen=True)
class Execution:
    result: StepResult
    execution_time_ms: int


@dataclass
class HandlerJob:
    """One handler call handed to :class:`HandlerThreads`; ``future`` gets its outcome."""

    function: Callable[[Any], Any]
    argument: Any
    label: str
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    abandoned: bool = False


class HandlerThreads:
    """Threads for sync handlers, ``size`` of them free for new work at any time.

    A thread whose handler overran its timeout is written off (``abandon``) and, since the thread cannot be
    killed, a new one is started in its place when work arrives; the written-off thread rejoins the pool when its
    handler finally returns, or exits when the pool is full. A fixed pool would instead lose a thread per overrun
    handler until every later step timed out without running.
    """

    def __init__(self, size: int, name_prefix: str = "tasker-handler") -> None:
        if size < 1:
            raise ValueError(f"a handler thread pool needs at least one thread, not {size}")
        self._size = size
        self._prefix = name_prefix
        self._jobs: queue.SimpleQueue[HandlerJob | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # alive
        self._idle = 0  # alive, waiting for a job, none reserved for them
        self._abandoned = 0  # alive, running a handler whose step gave up on it
        self._started = 0
        self._closed = False

    @property
    def abandoned(self) -> int:
        """Threads still running a handler that overran its timeout."""
        return self._abandoned

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, function: Callable[[Any], Any], argument: Any, label: str) -> HandlerJob:
        """Run ``function(argument)`` in a pool thread; ``label`` names the handler in warnings."""
        job = HandlerJob(function, argument, label)
        with self._lock:
            if self._closed:
                raise RuntimeError("the handler thread pool is shut down")
            if self._idle > 0:
                self._idle -= 1
            else:
                self._threads += 1
                self._started += 1
                thread = threading.Thread(target=self._work, name=f"{self._prefix}-{self._started}", daemon=True)
                thread.start()
            self._jobs.put(job)
        return job

    def abandon(self, job: HandlerJob, timeout_seconds: float | None) -> None:
        """The step stopped waiting for this handler: cancel it if it has not started, else write its thread off."""
        if job.future.cancel():
            return
        with self._lock:
            if job.future.done() or job.abandoned:
                return
            job.abandoned = True
            self._abandoned += 1
            abandoned = self._abandoned
        log.warning(
            "handler %s is still running after its timeout (%s s); its thread is abandoned and a new one takes its "
            "place (%d abandoned handler thread(s) still running). Make the handler return: a thread cannot be "
            "stopped.",
            job.label,
            timeout_seconds,
            abandoned,
        )

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.future.set_running_or_notify_cancel():
                try:
                    job.future.set_result(job.function(job.argument))
                except BaseException as exc:  # SystemExit too: the step's failure, not this thread's end
                    job.future.set_exception(exc)
            if not self._after_job(job):
                return

    def _after_job(self, job: HandlerJob) -> bool:
        """Back to idle, or False when this thread should exit (the pool is full again, or shut down)."""
        with self._lock:
            if job.abandoned:
                self._abandoned -= 1
                log.info("abandoned handler %s returned at last; its thread is free again", job.label)
            if self._closed or self._threads - self._abandoned > self._size:
                self._threads -= 1
                return False
            self._idle += 1
            return True

    def shutdown(self) -> None:
        """Stop the idle threads now and the busy ones when their handlers return (they are daemon threads)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
            self._threads -= idle
        for _ in range(idle):
            self._jobs.put(None)


class _HandlerAbortedError(Exception):
    """A handler raised a ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``, ...): carried as an ordinary
    exception so that it cannot escape the handler's task and stop the event loop."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def entry_point(handler: StepHandler, method: str | None) -> Callable[[StepContext], Any]:
    name = method or "call"
    entry = getattr(handler, name, None)
    if entry is None or not callable(entry):
        raise HandlerNotFoundError(f"handler {type(handler).__name__} has no method {name!r}")
    return entry  # type: ignore[no-any-return]


def is_async_handler(
    registry: HandlerRegistry,
    callable_name: str,
    method: str | None,
    allowed_modules: Sequence[str] | None = None,
    resolver: str | None = None,
) -> bool:
    """Whether the handler runs on the loop (then cancelling its task stops it) rather than in a thread."""
    try:
        handler = registry.resolve(callable_name, allowed_modules=allowed_modules, resolver=resolver)
        entry = entry_point(handler, method)
    except LookupError:  # execute() reports a missing or refused handler as a permanent failure
        return False
    return inspect.iscoroutinefunction(entry)


async def _invoke(
    entry: Callable[[StepContext], Any],
    context: StepContext,
    threads: HandlerThreads | None,
    label: str,
    timeout_seconds: float | None,
) -> Any:
    try:
        if inspect.iscoroutinefunction(entry):
            return await entry(context)
        value = await _in_thread(entry, context, threads, label, timeout_seconds)
        if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine
            return await value
        return value
    except (asyncio.CancelledError, Exception):
        raise
    except BaseException as exc:
        raise _HandlerAbortedError(exc) from exc


async def _in_thread(
    entry: Callable[[StepContext], Any],
    context: StepContext,
    threads: HandlerThreads | None,
    label: str,
    timeout_seconds: float | None,
) -> Any:
    if threads is None:
        return await asyncio.get_running_loop().run_in_executor(None, entry, context)
    job = threads.submit(entry, context, label)
    try:
        return await asyncio.wrap_future(job.future)
    except asyncio.CancelledError:  # timed out (or the worker is stopping): the thread may still be running it
        threads.abandon(job, timeout_seconds)
        raise


def _failure_from(exc: BaseException) -> StepResult:
    if isinstance(exc, _HandlerAbortedError):
        original = exc.original
        trace = "".join(traceback.format_exception(original))
        message = f"the handler raised {type(original).__name__}({original!s}); reported as the step's failure"
        return StepResult.failed(message, error_type=type(original).__name__, stack_trace=trace)
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


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


async def execute(
    registry: HandlerRegistry,
    callable_name: str,
    method: str | None,
    context: StepContext,
    *,
    timeout_seconds: float | None,
    pool: HandlerThreads | None = None,
    allowed_modules: Sequence[str] | None = None,
    resolver: str | None = None,
) -> Execution:
    started = time.perf_counter()
    try:
        handler = registry.resolve(callable_name, allowed_modules=allowed_modules, resolver=resolver)
        entry = entry_point(handler, method)
    except HandlerNotAllowedError as exc:
        result = StepResult.failed(str(exc), error_type="handler_not_allowed", retryable=False)
        return Execution(result, _elapsed_ms(started))
    except HandlerNotFoundError as exc:
        result = StepResult.failed(str(exc), error_type="handler_not_found", retryable=False)
        return Execution(result, _elapsed_ms(started))
    label = f"{callable_name}{'.' + method if method else ''} (step {context.step_name} {context.step_uuid})"
    try:
        value = await asyncio.wait_for(_invoke(entry, context, pool, label, timeout_seconds), timeout_seconds)
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
    return Execution(result, _elapsed_ms(started))
