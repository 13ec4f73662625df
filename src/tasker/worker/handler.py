"""The handler API users write against: ``StepHandler`` classes, the ``@step_handler`` decorator, ``StepContext``.

A handler returns a value: a ``StepResult`` (``self.success(...)`` / ``self.failure(...)``), a dict (success with
that result), ``None`` (success with ``{}``), or any other JSON value (success with ``{"result": value}``). Raising
``PermanentError`` fails the step for good; ``RetryableError`` (optionally with ``retry_after`` seconds) and any
other exception fail it for a retry, keeping the traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from uuid import UUID

from tasker.model.results import StepResult


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


class StepHandler:
    """Base class for handlers: implement ``call(self, context)`` (plain or ``async``)."""

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


HandlerFunction: TypeAlias = Callable[[StepContext], Any] | Callable[[StepContext], Awaitable[Any]]


class FunctionHandler(StepHandler):
    """Adapts a decorated function to the handler protocol."""

    def __init__(self, function: HandlerFunction, name: str) -> None:
        self.function = function
        self.handler_name = name

    def call(self, context: StepContext) -> Any:
        return self.function(context)


def step_handler(name: str | None = None) -> Callable[[HandlerFunction], HandlerFunction]:
    """Register a plain function as a handler under ``name`` (default: its dotted path)."""

    def register(function: HandlerFunction) -> HandlerFunction:
        from tasker.worker.registry import default_registry

        key = name or f"{function.__module__}.{function.__qualname__}"
        default_registry.register(key, FunctionHandler(function, key))
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
