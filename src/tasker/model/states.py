"""The states of tasks and workflow steps. Enum values are the exact strings stored in the transition tables."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    PENDING = "pending"
    INITIALIZING = "initializing"
    ENQUEUING_STEPS = "enqueuing_steps"
    STEPS_IN_PROCESS = "steps_in_process"
    EVALUATING_RESULTS = "evaluating_results"
    WAITING_FOR_DEPENDENCIES = "waiting_for_dependencies"
    WAITING_FOR_RETRY = "waiting_for_retry"
    BLOCKED_BY_FAILURES = "blocked_by_failures"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


class StepState(StrEnum):
    PENDING = "pending"
    ENQUEUED = "enqueued"
    IN_PROGRESS = "in_progress"
    ENQUEUED_FOR_ORCHESTRATION = "enqueued_for_orchestration"
    ENQUEUED_AS_ERROR_FOR_ORCHESTRATION = "enqueued_as_error_for_orchestration"
    WAITING_FOR_RETRY = "waiting_for_retry"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


TASK_TERMINAL = frozenset({TaskState.COMPLETE, TaskState.ERROR, TaskState.CANCELLED, TaskState.RESOLVED_MANUALLY})
TASK_ACTIVE = frozenset(
    {TaskState.INITIALIZING, TaskState.ENQUEUING_STEPS, TaskState.STEPS_IN_PROCESS, TaskState.EVALUATING_RESULTS}
)
TASK_WAITING = frozenset(
    {TaskState.WAITING_FOR_DEPENDENCIES, TaskState.WAITING_FOR_RETRY, TaskState.BLOCKED_BY_FAILURES}
)

# A step in `error` is not terminal: an operator may reset, resolve or complete it.
STEP_TERMINAL = frozenset({StepState.COMPLETE, StepState.CANCELLED, StepState.RESOLVED_MANUALLY})
STEP_SATISFIES_DEPENDENCIES = frozenset({StepState.COMPLETE, StepState.RESOLVED_MANUALLY})
STEP_IN_FLIGHT = frozenset(
    {
        StepState.ENQUEUED,
        StepState.IN_PROGRESS,
        StepState.ENQUEUED_FOR_ORCHESTRATION,
        StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION,
    }
)
