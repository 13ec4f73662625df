"""Tasker: PostgreSQL-backed workflow orchestration.

The handler API is importable from here: ``StepHandler``, ``step_handler``, ``StepContext``, ``StepResult``,
``PermanentError`` and ``RetryableError``. They are loaded on first use (PEP 562), so importing a subpackage, as the
CLI does on every call, does not pay for pydantic and the worker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasker.model.results import StepResult
    from tasker.worker.handler import PermanentError, RetryableError, StepContext, StepHandler, step_handler

__version__ = "0.1.0"
__all__ = ["PermanentError", "RetryableError", "StepContext", "StepHandler", "StepResult", "step_handler"]

_HOMES = {
    "StepResult": "tasker.model.results",
    "PermanentError": "tasker.worker.handler",
    "RetryableError": "tasker.worker.handler",
    "StepContext": "tasker.worker.handler",
    "StepHandler": "tasker.worker.handler",
    "step_handler": "tasker.worker.handler",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tasker' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
