"""Trivial handlers: the benchmarks measure the engine, not the work."""

from __future__ import annotations

from typing import Any

from tasker import StepContext, StepHandler


class Noop(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"step": context.step_name}


async def noop_async(context: StepContext) -> Any:
    return {"step": context.step_name}


class AddOne(StepHandler):
    """The peers benchmark's step (bench/peers.py): reads the previous step's result (``handler.initialization``
    names that step; the first step reads the task's ``start``) and adds one, as the DBOS and Procrastinate
    chains do."""

    def call(self, context: StepContext) -> Any:
        previous = context.get_config("previous")
        value = context.get_input("start", 0) if previous is None else context.get_dependency_field(previous, "value")
        return {"value": value + 1}
