"""Single-step handlers for the error scenarios: success, permanent, retryable, retry-then-success."""

from __future__ import annotations

import os
import time
from typing import Any

from tasker import PermanentError as Permanent
from tasker import RetryableError as Retryable
from tasker import StepContext, StepHandler


class Succeed(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"ok": True, "attempt": context.attempt}


class PermanentError(StepHandler):
    def call(self, context: StepContext) -> Any:
        raise Permanent("the card was declined", error_code="card_declined")


class RetryableError(StepHandler):
    def call(self, context: StepContext) -> Any:
        raise Retryable("the gateway is unavailable")


class AlwaysFail(StepHandler):
    def call(self, context: StepContext) -> Any:
        return self.failure(f"attempt {context.attempt} failed", error_type="retryable_error", retryable=True)


class FailTwiceThenSucceed(StepHandler):
    def call(self, context: StepContext) -> Any:
        if context.attempt <= 2:
            raise RuntimeError(f"transient failure on attempt {context.attempt}")
        return {"succeeded_on_attempt": context.attempt}


class Sleep(StepHandler):
    """Sleeps ``context.sleep_seconds`` (default 1 s); writes its pid to ``context.pid_file`` when given."""

    def call(self, context: StepContext) -> Any:
        pid_file = context.get_input("pid_file")
        if pid_file:
            with open(pid_file, "a") as handle:
                handle.write(f"{os.getpid()} {context.attempt}\n")
        time.sleep(float(context.get_input("sleep_seconds", 1.0)))
        return {"slept": context.get_input("sleep_seconds", 1.0), "attempt": context.attempt}


class FailUntilFixed(StepHandler):
    """Fails permanently until the file named by ``context.fixed_file`` exists (an operator 'fixed' the cause)."""

    def call(self, context: StepContext) -> Any:
        if not os.path.exists(context.get_input("fixed_file")):
            raise Permanent("the upstream account is locked")
        return {"fixed": True}


class ReportParent(StepHandler):
    """Returns what its parent step returned, so tests see which result dependents received."""

    def call(self, context: StepContext) -> Any:
        return {"parent_result": context.get_dependency_result(context.get_config("parent"))}


class WaitForCancel(StepHandler):
    """Works (up to 10 s) until its task is cancelled; notes in ``context.marker_file`` that it saw it."""

    def call(self, context: StepContext) -> Any:
        deadline = time.monotonic() + 10
        while not context.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(context.get_input("marker_file"), "a") as handle:
            handle.write(f"sync saw cancelled={context.cancelled}\n")
        return {"stopped_early": context.cancelled}


class AsyncWaitForCancel(StepHandler):
    """Sleeps on the event loop; the worker cancels it when its task is cancelled."""

    async def call(self, context: StepContext) -> Any:
        import asyncio

        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            with open(context.get_input("marker_file"), "a") as handle:
                handle.write("async cancelled\n")
            raise
        return {"slept": True}


class HugeRetryAfter(StepHandler):
    def call(self, context: StepContext) -> Any:
        raise Retryable("come back in a very long while", retry_after=1e300)


class WaitForFile(StepHandler):
    """Succeeds once the file named by ``context.release_file`` exists: the test creates it when the state it
    waits for is reached (fails after a minute without it, so a broken test cannot hang the suite)."""

    def call(self, context: StepContext) -> Any:
        release_file = context.get_input("release_file")
        deadline = time.monotonic() + 60
        while not os.path.exists(release_file):
            if time.monotonic() > deadline:
                raise Permanent("the test never released this step")
            time.sleep(0.01)
        return {"released": True}
