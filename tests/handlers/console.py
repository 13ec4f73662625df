"""Handlers for the web console's browser tests: a success and a permanent failure whose message the test chooses."""

from __future__ import annotations

from typing import Any

from tasker import PermanentError, StepContext, StepHandler


class Pass(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"step": context.step_name, "ok": True}


class Reject(StepHandler):
    """Fails for good with ``context.error_message`` (markup in it must show as text in the console)."""

    def call(self, context: StepContext) -> Any:
        raise PermanentError(str(context.get_input("error_message")), error_code="rejected")
