"""Request and response bodies of the REST API (tasker-core field names), shared by the server and the client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tasker.model.requests import TaskRequest

__all__ = [
    "AnalyticsPerformance",
    "BottleneckAnalysis",
    "ErrorBody",
    "ErrorDetail",
    "HealthCheck",
    "HealthResponse",
    "Pagination",
    "SlowStep",
    "SlowTask",
    "StepActionRequest",
    "StepAuditResponse",
    "StepResponse",
    "TaskAuditEvent",
    "TaskAuditResponse",
    "TaskListResponse",
    "TaskRequest",
    "TaskResponse",
    "TaskSummaryResponse",
    "TemplateDetail",
    "TemplateListResponse",
    "TemplateValidateRequest",
    "TemplateValidateResponse",
]


def _as_utc(value: datetime) -> datetime:
    """The database's ``timestamp`` columns hold UTC without saying so; a wire timestamp always says it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# a timestamp sent and read with its UTC offset (``2026-12-02T13:00:00Z``); naive values are taken as UTC
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorDetail(_Body):
    code: str
    message: str
    details: dict[str, Any] | None = None
    retry_after_seconds: int | None = None


class ErrorBody(_Body):
    error: ErrorDetail


class StepResponse(_Body):
    step_uuid: UUID
    task_uuid: UUID
    name: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    completed_at: UtcDateTime | None = None
    results: Any = None
    current_state: str
    dependencies_satisfied: bool
    retry_eligible: bool
    ready_for_execution: bool
    total_parents: int
    completed_parents: int
    attempts: int
    max_attempts: int
    last_failure_at: UtcDateTime | None = None
    next_retry_at: UtcDateTime | None = None
    last_attempted_at: UtcDateTime | None = None


class TaskResponse(_Body):
    task_uuid: UUID
    name: str
    namespace: str
    version: str
    status: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    completed_at: UtcDateTime | None = None
    context: dict[str, Any] | None = Field(
        default_factory=dict, description="the task's context; null for callers without tasks:context_read"
    )
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    priority: int = 0
    tags: list[str] = Field(default_factory=list)
    correlation_id: UUID
    parent_correlation_id: UUID | None = None
    total_steps: int = 0
    pending_steps: int = 0
    in_progress_steps: int = 0
    completed_steps: int = 0
    failed_steps: int = 0
    ready_steps: int = 0
    execution_status: str | None = None
    recommended_action: str | None = None
    completion_percentage: float = 0.0
    health_status: str | None = None
    steps: list[StepResponse] = Field(default_factory=list)
    # on creation only: why the task may wait unworked (e.g. no worker serves its namespace); empty otherwise
    warnings: list[str] = Field(default_factory=list)


class Pagination(_Body):
    page: int
    per_page: int
    total_count: int
    total_pages: int
    has_next: bool
    has_previous: bool


class TaskListResponse(_Body):
    tasks: list[TaskResponse]
    pagination: Pagination


class TemplateStepSummary(_Body):
    name: str
    step_type: str
    handler: str
    dependencies: list[str]
    retryable: bool
    max_attempts: int


class TaskTemplateSummary(_Body):
    name: str
    namespace: str
    version: str
    description: str | None = None
    steps: list[TemplateStepSummary]


class DagEdge(_Body):
    from_step: str
    to_step: str


class DlqStatus(_Body):
    in_dlq: bool
    dlq_reason: str | None = None
    resolution_status: str | None = None


class TaskSummaryResponse(_Body):
    task: TaskResponse
    template: TaskTemplateSummary
    steps: list[StepResponse]
    edges: list[DagEdge]
    dlq: DlqStatus
    links: dict[str, str]


class StepActionRequest(BaseModel):
    """Body of ``PATCH /v1/tasks/{uuid}/workflow_steps/{step_uuid}``, tagged by ``action_type``."""

    model_config = ConfigDict(extra="forbid")

    action_type: Literal["reset_for_retry", "resolve_manually", "complete_manually"]
    reason: str | None = Field(default=None, max_length=500)
    reset_by: str | None = Field(default=None, max_length=255)
    resolved_by: str | None = Field(default=None, max_length=255)
    completed_by: str | None = Field(default=None, max_length=255)
    completion_data: dict[str, Any] | None = None
    result: Any = None

    def actor(self) -> str:
        return self.resolved_by or self.completed_by or self.reset_by or "api"

    def results(self) -> Any:
        """What a manually completed step stores as its result (``completion_data.result``, or ``result``)."""
        if self.completion_data is not None and "result" in self.completion_data:
            return self.completion_data["result"]
        return self.result


class StepAuditResponse(_Body):
    audit_uuid: UUID
    workflow_step_uuid: UUID
    transition_uuid: UUID
    task_uuid: UUID
    recorded_at: UtcDateTime
    worker_uuid: UUID | None = None
    correlation_id: UUID | None = None
    success: bool
    execution_time_ms: int | None = None
    result: Any = None
    step_name: str
    from_state: str | None = None
    to_state: str


class TaskAuditEvent(_Body):
    """One line of a task's audit trail: a task or step transition, or a step's result audit row."""

    kind: Literal["task_transition", "step_transition", "step_result"]
    at: UtcDateTime
    event_uuid: UUID
    step_uuid: UUID | None = None
    step_name: str | None = None
    from_state: str | None = None
    to_state: str
    metadata: Any = None
    success: bool | None = None
    execution_time_ms: int | None = None
    worker_uuid: UUID | None = None


class TaskAuditResponse(_Body):
    task_uuid: UUID
    events: list[TaskAuditEvent]
    limit: int
    truncated: bool = Field(description="more events exist than were returned (raise limit to see them)")


class NamespaceSummary(_Body):
    name: str
    description: str | None = None
    template_count: int


class TemplateSummary(_Body):
    name: str
    namespace: str
    version: str
    description: str | None = None
    step_count: int


class TemplateListResponse(_Body):
    namespaces: list[NamespaceSummary]
    templates: list[TemplateSummary]
    total_count: int


class TemplateStepDetail(_Body):
    name: str
    description: str | None = None
    default_retryable: bool
    default_max_attempts: int
    result_schema: dict[str, Any] | None = None


class TemplateDetail(_Body):
    name: str
    namespace: str
    version: str
    description: str | None = None
    configuration: dict[str, Any]
    steps: list[TemplateStepDetail]


class TemplateValidateRequest(BaseModel):
    """A template to check without registering it: YAML text in ``yaml``, or the template itself in ``template``."""

    model_config = ConfigDict(extra="forbid")

    yaml: str | None = Field(default=None, max_length=1_000_000)
    template: dict[str, Any] | None = None


class TemplateValidateResponse(_Body):
    valid: bool
    errors: list[str] = Field(default_factory=list)
    namespace: str | None = None
    name: str | None = None
    version: str | None = None
    step_count: int | None = None


class AnalyticsPerformance(_Body):
    total_tasks: int
    active_tasks: int
    completed_tasks: int
    failed_tasks: int
    completion_rate: float
    error_rate: float
    average_task_duration_seconds: float
    average_step_duration_seconds: float
    tasks_per_hour: float
    steps_per_hour: float
    system_health_score: float
    analysis_period_start: UtcDateTime
    calculated_at: UtcDateTime


class SlowStep(_Body):
    namespace_name: str
    task_name: str
    version: str
    step_name: str
    average_duration_seconds: float
    max_duration_seconds: float
    execution_count: int
    error_count: int
    error_rate: float
    last_executed_at: UtcDateTime | None = None


class SlowTask(_Body):
    namespace_name: str
    task_name: str
    version: str
    average_duration_seconds: float
    max_duration_seconds: float
    execution_count: int
    average_step_count: float
    error_count: int
    error_rate: float
    last_executed_at: UtcDateTime | None = None


class SystemHealthCounts(_Body):
    tasks: dict[str, int]
    steps: dict[str, int]
    total_tasks: int
    total_steps: int


class ResourceUtilization(_Body):
    database_pool_utilization: float
    system_health: SystemHealthCounts


class BottleneckAnalysis(_Body):
    slow_steps: list[SlowStep]
    slow_tasks: list[SlowTask]
    resource_utilization: ResourceUtilization
    recommendations: list[str]


class HealthCheck(_Body):
    status: str
    message: str | None = None
    duration_ms: float = 0.0


class HealthResponse(_Body):
    status: str
    timestamp: UtcDateTime
    checks: dict[str, HealthCheck] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)


class DlqEntryUpdate(_Body):
    """Body of ``PATCH /v1/dlq/entry/{dlq_entry_uuid}``: what the investigation concluded."""

    resolution_status: str | None = None
    resolution_notes: str | None = None
    resolved_by: str | None = None
    metadata: dict[str, Any] | None = None


class DlqEntry(_Body):
    """One dead-letter queue entry (a row of ``tasker.tasks_dlq``)."""

    dlq_entry_uuid: UUID
    task_uuid: UUID
    original_state: str
    dlq_reason: str
    dlq_timestamp: UtcDateTime
    resolution_status: str
    resolution_timestamp: UtcDateTime | None = None
    resolution_notes: str | None = None
    resolved_by: str | None = None
    task_snapshot: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    created_at: UtcDateTime | None = None
    updated_at: UtcDateTime | None = None


class DlqListResponse(_Body):
    entries: list[DlqEntry]
    total: int
    limit: int
    offset: int


class DlqTaskEntries(_Body):
    task_uuid: UUID
    entries: list[DlqEntry]
