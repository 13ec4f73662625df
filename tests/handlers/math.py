"""Arithmetic handlers of the acceptance workflows: each reads its input from the task context or from the
results of the steps named in its ``initialization``."""

from __future__ import annotations

import math
from typing import Any

from tasker import StepContext, StepHandler


def _value(context: StepContext) -> float:
    if context.get_config("source") == "context":
        return float(context.get_input(context.get_config("field")))
    result = context.get_dependency_result(context.get_config("from_step"))
    return float(result["result"])


def _values(context: StepContext) -> list[float]:
    return [float(context.get_dependency_result(name)["result"]) for name in context.get_config("from_steps")]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class Square(StepHandler):
    def call(self, context: StepContext) -> Any:
        return self.success({"result": _number(_value(context) ** 2), "operation": "square"})


class Add(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"result": _number(_value(context) + context.get_config("operand")), "operation": "add"}


class Multiply(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"result": _number(_value(context) * context.get_config("operand")), "operation": "multiply"}


class Divide(StepHandler):
    async def call(self, context: StepContext) -> Any:  # async on purpose: both kinds of handler run
        return {"result": _number(_value(context) / context.get_config("operand")), "operation": "divide"}


class Average(StepHandler):
    def call(self, context: StepContext) -> Any:
        values = _values(context)
        return {"result": _number(sum(values) / len(values)), "operation": "average"}


class SquareOfProduct(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"result": _number(math.prod(_values(context)) ** 2), "operation": "square_of_product"}
