"""Trivial handlers: the benchmarks measure the engine, not the work."""

from __future__ import annotations

from typing import Any

from tasker import StepContext, StepHandler


class Noop(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"step": context.step_name}


async def noop_async(context: StepContext) -> Any:
    return {"step": context.step_name}
