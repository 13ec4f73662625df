"""Tasker: PostgreSQL-backed workflow orchestration.

The handler API is importable from here: ``StepHandler``, ``step_handler``, ``StepContext``, ``StepResult``,
``PermanentError`` and ``RetryableError``.
"""

from tasker.model.results import StepResult
from tasker.worker.handler import PermanentError, RetryableError, StepContext, StepHandler, step_handler

__version__ = "0.1.0"
__all__ = ["PermanentError", "RetryableError", "StepContext", "StepHandler", "StepResult", "step_handler"]
