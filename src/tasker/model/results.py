"""Step outcomes as values: what a handler returns and what is stored in ``workflow_steps.results``.

The stored JSON keeps tasker-core's shape (``success``, ``status``, ``result``, ``metadata``, ``error``), so
dependents and tools written against it read it unchanged; ``metadata.retryable`` is what orchestration reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from tasker.model.retry import clamp_retry_after


class StepError(BaseModel):
    message: str
    error_type: str = "handler_error"
    retryable: bool = True
    error_code: str | None = None
    stack_trace: str | None = None
    retry_after_seconds: float | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("retry_after_seconds", mode="before")
    @classmethod
    def _clamp_retry_after(cls, value: object) -> float | None:
        """Clamped where the result is made, so an infinite or huge delay never reaches the stored JSON."""
        return clamp_retry_after(value)


class StepResult(BaseModel):
    """A handler's outcome: success with a result, or failure with an error."""

    success: bool
    result: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: StepError | None = None

    @classmethod
    def ok(cls, result: Any = None, metadata: dict[str, Any] | None = None) -> StepResult:
        return cls(success=True, result=result, metadata=dict(metadata or {}))

    @classmethod
    def failed(
        cls,
        message: str,
        *,
        error_type: str = "handler_error",
        retryable: bool = True,
        retry_after: float | None = None,
        error_code: str | None = None,
        stack_trace: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> StepResult:
        error = StepError(
            message=message,
            error_type=error_type,
            retryable=retryable,
            retry_after_seconds=retry_after,
            error_code=error_code,
            stack_trace=stack_trace,
        )
        return cls(success=False, metadata=dict(metadata or {}), error=error)

    @property
    def retryable(self) -> bool:
        return self.error.retryable if self.error is not None else False

    def stored(self, *, step_uuid: str, worker_id: str, execution_time_ms: int, completed_at: str) -> dict[str, Any]:
        """The JSON written to ``workflow_steps.results`` by the worker."""
        metadata = {
            **self.metadata,
            "execution_time_ms": execution_time_ms,
            "retryable": self.retryable,
            "completed_at": completed_at,
            "worker_id": worker_id,
        }
        if self.error is not None:
            metadata["error_type"] = self.error.error_type
        return {
            "step_uuid": step_uuid,
            "success": self.success,
            "status": "completed" if self.success else ("retryable_error" if self.retryable else "permanent_error"),
            "result": self.result,
            "metadata": metadata,
            "error": self.error.model_dump(exclude_none=True) if self.error else None,
        }
