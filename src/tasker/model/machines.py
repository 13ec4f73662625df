"""Both state machines as data: (from state, event) → to state, and what entering a step state does to its columns.

This is the only place that knows which transitions are legal. The store's transition functions ask
:func:`task_path` / :func:`step_path` for the states an event sequence leads to, and :func:`step_effects` for the
denormalised columns to write; the tests and the documentation read the same tables.

Beyond tasker-core: an operator's action on a failed step *resumes* its task (``resume``: blocked_by_failures or
error → evaluating_results), and the staleness sweep's move to ``error`` is an ordinary row here (``stale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tasker.errors import InvalidTransitionError
from tasker.model.states import STEP_TERMINAL, TASK_TERMINAL, StepState, TaskState


class TaskEvent(StrEnum):
    START = "start"
    READY_STEPS_FOUND = "ready_steps_found"
    NO_STEPS_FOUND = "no_steps_found"
    NO_DEPENDENCIES_READY = "no_dependencies_ready"
    STEPS_ENQUEUED = "steps_enqueued"
    ENQUEUE_FAILED = "enqueue_failed"
    STEP_COMPLETED = "step_completed"
    ALL_STEPS_COMPLETED = "all_steps_completed"
    STEP_FAILED = "step_failed"
    ALL_STEPS_SUCCESSFUL = "all_steps_successful"
    PERMANENT_FAILURE = "permanent_failure"
    DEPENDENCIES_READY = "dependencies_ready"
    RETRY_READY = "retry_ready"
    GIVE_UP = "give_up"
    MANUAL_RESOLUTION = "manual_resolution"
    RESUME = "resume"
    STALE = "stale"
    CANCEL = "cancel"


class StepEvent(StrEnum):
    ENQUEUE = "enqueue"
    START = "start"
    ENQUEUE_FOR_ORCHESTRATION = "enqueue_for_orchestration"
    ENQUEUE_AS_ERROR_FOR_ORCHESTRATION = "enqueue_as_error_for_orchestration"
    COMPLETE = "complete"
    FAIL = "fail"
    WAIT_FOR_RETRY = "wait_for_retry"
    RETRY = "retry"
    RESET_FOR_RETRY = "reset_for_retry"
    LEASE_EXPIRED = "lease_expired"
    CANCEL = "cancel"
    COMPLETE_MANUALLY = "complete_manually"
    RESOLVE_MANUALLY = "resolve_manually"


T, TE = TaskState, TaskEvent
TASK_TRANSITIONS: dict[tuple[TaskState, TaskEvent], TaskState] = {
    (T.PENDING, TE.START): T.INITIALIZING,
    (T.INITIALIZING, TE.READY_STEPS_FOUND): T.ENQUEUING_STEPS,
    (T.INITIALIZING, TE.NO_STEPS_FOUND): T.COMPLETE,
    (T.INITIALIZING, TE.NO_DEPENDENCIES_READY): T.WAITING_FOR_DEPENDENCIES,
    (T.ENQUEUING_STEPS, TE.STEPS_ENQUEUED): T.STEPS_IN_PROCESS,
    (T.ENQUEUING_STEPS, TE.ENQUEUE_FAILED): T.ERROR,
    (T.STEPS_IN_PROCESS, TE.STEP_COMPLETED): T.EVALUATING_RESULTS,
    (T.STEPS_IN_PROCESS, TE.ALL_STEPS_COMPLETED): T.EVALUATING_RESULTS,
    (T.STEPS_IN_PROCESS, TE.STEP_FAILED): T.WAITING_FOR_RETRY,
    (T.EVALUATING_RESULTS, TE.ALL_STEPS_SUCCESSFUL): T.COMPLETE,
    (T.EVALUATING_RESULTS, TE.READY_STEPS_FOUND): T.ENQUEUING_STEPS,
    (T.EVALUATING_RESULTS, TE.NO_DEPENDENCIES_READY): T.WAITING_FOR_DEPENDENCIES,
    (T.EVALUATING_RESULTS, TE.STEP_FAILED): T.WAITING_FOR_RETRY,
    (T.EVALUATING_RESULTS, TE.PERMANENT_FAILURE): T.BLOCKED_BY_FAILURES,
    (T.WAITING_FOR_DEPENDENCIES, TE.DEPENDENCIES_READY): T.EVALUATING_RESULTS,
    (T.WAITING_FOR_RETRY, TE.RETRY_READY): T.ENQUEUING_STEPS,
    (T.BLOCKED_BY_FAILURES, TE.GIVE_UP): T.ERROR,
    (T.BLOCKED_BY_FAILURES, TE.MANUAL_RESOLUTION): T.RESOLVED_MANUALLY,
    (T.BLOCKED_BY_FAILURES, TE.RESUME): T.EVALUATING_RESULTS,
    (T.ERROR, TE.RESUME): T.EVALUATING_RESULTS,
    (T.WAITING_FOR_DEPENDENCIES, TE.STALE): T.ERROR,
    (T.WAITING_FOR_RETRY, TE.STALE): T.ERROR,
    (T.STEPS_IN_PROCESS, TE.STALE): T.ERROR,
    **{(state, TE.CANCEL): T.CANCELLED for state in TaskState if state not in TASK_TERMINAL},
}

S, SE = StepState, StepEvent
_STEP_OPEN = [state for state in StepState if state not in STEP_TERMINAL]
STEP_TRANSITIONS: dict[tuple[StepState, StepEvent], StepState] = {
    (S.PENDING, SE.ENQUEUE): S.ENQUEUED,
    (S.ENQUEUED, SE.START): S.IN_PROGRESS,
    (S.PENDING, SE.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, SE.ENQUEUE_FOR_ORCHESTRATION): S.ENQUEUED_FOR_ORCHESTRATION,
    (S.IN_PROGRESS, SE.ENQUEUE_AS_ERROR_FOR_ORCHESTRATION): S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION,
    (S.ENQUEUED_FOR_ORCHESTRATION, SE.COMPLETE): S.COMPLETE,
    (S.ENQUEUED_FOR_ORCHESTRATION, SE.FAIL): S.ERROR,
    (S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, SE.FAIL): S.ERROR,
    (S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, SE.WAIT_FOR_RETRY): S.WAITING_FOR_RETRY,
    (S.IN_PROGRESS, SE.WAIT_FOR_RETRY): S.WAITING_FOR_RETRY,
    (S.ENQUEUED, SE.WAIT_FOR_RETRY): S.WAITING_FOR_RETRY,
    (S.PENDING, SE.WAIT_FOR_RETRY): S.WAITING_FOR_RETRY,
    (S.WAITING_FOR_RETRY, SE.RETRY): S.PENDING,
    (S.ERROR, SE.RETRY): S.PENDING,
    (S.ERROR, SE.RESET_FOR_RETRY): S.PENDING,
    # A worker found the step still in progress after its lease ran out: the holder is gone.
    (S.IN_PROGRESS, SE.LEASE_EXPIRED): S.ENQUEUED,
    (S.IN_PROGRESS, SE.FAIL): S.ERROR,
    (S.PENDING, SE.FAIL): S.ERROR,
    (S.ENQUEUED, SE.FAIL): S.ERROR,
    **{(state, SE.CANCEL): S.CANCELLED for state in _STEP_OPEN},
    **{(state, SE.COMPLETE_MANUALLY): S.COMPLETE for state in _STEP_OPEN},
    **{(state, SE.RESOLVE_MANUALLY): S.RESOLVED_MANUALLY for state in _STEP_OPEN},
}


def task_next(state: TaskState, event: TaskEvent) -> TaskState:
    try:
        return TASK_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(f"task in state '{state}' cannot take event '{event}'") from None


def step_next(state: StepState, event: StepEvent) -> StepState:
    try:
        return STEP_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(f"step in state '{state}' cannot take event '{event}'") from None


def task_path(state: TaskState, events: list[TaskEvent]) -> list[TaskState]:
    """The states a sequence of events leads a task through (one transition row each)."""
    path = []
    for event in events:
        state = task_next(state, event)
        path.append(state)
    return path


def step_path(state: StepState, events: list[StepEvent]) -> list[StepState]:
    path = []
    for event in events:
        state = step_next(state, event)
        path.append(state)
    return path


@dataclass(frozen=True)
class StepEffects:
    """Denormalised ``workflow_steps`` columns written on entering a state; ``None`` leaves a column alone."""

    in_process: bool | None = None
    processed: bool | None = None
    stamp_processed_at: bool = False
    count_attempt: bool = False
    reset_attempts: bool = False

    def then(self, later: StepEffects) -> StepEffects:
        """The effect of this state followed by ``later`` in one path."""
        return StepEffects(
            in_process=later.in_process if later.in_process is not None else self.in_process,
            processed=later.processed if later.processed is not None else self.processed,
            stamp_processed_at=self.stamp_processed_at or later.stamp_processed_at,
            count_attempt=(self.count_attempt and not later.reset_attempts) or later.count_attempt,
            reset_attempts=self.reset_attempts or later.reset_attempts,
        )


_DONE = StepEffects(in_process=False, processed=True, stamp_processed_at=True)
STEP_STATE_EFFECTS: dict[StepState, StepEffects] = {
    S.PENDING: StepEffects(in_process=False, processed=False),
    S.ENQUEUED: StepEffects(in_process=False),
    S.IN_PROGRESS: StepEffects(in_process=True, count_attempt=True),
    S.ENQUEUED_FOR_ORCHESTRATION: StepEffects(in_process=False),
    S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION: StepEffects(in_process=False),
    S.WAITING_FOR_RETRY: StepEffects(in_process=False),
    S.COMPLETE: _DONE,
    S.ERROR: StepEffects(in_process=False),
    S.CANCELLED: _DONE,
    S.RESOLVED_MANUALLY: _DONE,
}


def step_effects(events: list[StepEvent], path: list[StepState]) -> StepEffects:
    """Fold the column effects of every state in ``path``; an operator reset also zeroes the attempt count."""
    total = StepEffects()
    for event, state in zip(events, path, strict=True):
        effect = STEP_STATE_EFFECTS[state]
        if event is SE.RESET_FOR_RETRY:
            effect = StepEffects(in_process=False, processed=False, reset_attempts=True)
        total = total.then(effect)
    return total


# Events the orchestrator may use on its own when it moves a task towards the state its steps call for. Operator
# and sweeper events (cancel, resume, give_up, manual_resolution, stale, enqueue_failed) are never chosen here.
ORCHESTRATION_EVENTS = frozenset(
    {
        TE.START,
        TE.READY_STEPS_FOUND,
        TE.NO_STEPS_FOUND,
        TE.NO_DEPENDENCIES_READY,
        TE.STEPS_ENQUEUED,
        TE.STEP_COMPLETED,
        TE.STEP_FAILED,
        TE.ALL_STEPS_SUCCESSFUL,
        TE.PERMANENT_FAILURE,
        TE.DEPENDENCIES_READY,
        TE.RETRY_READY,
    }
)


def task_route(
    start: TaskState, goal: TaskState, allowed: frozenset[TaskEvent] = ORCHESTRATION_EVENTS
) -> list[TaskEvent]:
    """The shortest event sequence that takes a task from ``start`` to ``goal`` (empty when already there)."""
    if start == goal:
        return []
    frontier: list[tuple[TaskState, list[TaskEvent]]] = [(start, [])]
    seen = {start}
    while frontier:
        next_frontier = []
        for state, events in frontier:
            for (source, event), target in TASK_TRANSITIONS.items():
                if source != state or event not in allowed or target in seen:
                    continue
                if target == goal:
                    return [*events, event]
                seen.add(target)
                next_frontier.append((target, [*events, event]))
        frontier = next_frontier
    raise InvalidTransitionError(f"no route for a task from '{start}' to '{goal}'")
