"""Property test: random event sequences on random DAGs keep the transition tables and columns consistent."""

from __future__ import annotations

import asyncio
from uuid import UUID

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasker.errors import InvalidTransitionError, LostRaceError
from tasker.model.machines import STEP_TRANSITIONS, TASK_TRANSITIONS, StepEvent, TaskEvent
from tasker.model.states import STEP_TERMINAL, TASK_TERMINAL, StepState, TaskState
from tasker.store.db import Connection, connect
from tasker.store.transitions import StepChange, TaskChange, step_transition, task_transition
from tests.factories import insert_task_with_steps

DONE_STATES = {StepState.COMPLETE, StepState.CANCELLED, StepState.RESOLVED_MANUALLY}


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    size = draw(st.integers(min_value=1, max_value=5))
    names = [f"s{i}" for i in range(size)]
    edges = [(names[i], names[j]) for i in range(size) for j in range(i + 1, size) if draw(st.booleans())]
    return names, edges


events = st.lists(
    st.tuples(st.integers(min_value=0, max_value=4), st.sampled_from(list(StepEvent))), min_size=1, max_size=25
)
task_events = st.lists(st.sampled_from(list(TaskEvent)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dag=dags(), step_events=events, task_event_seq=task_events)
# always tried: a task that errs, is resumed by an operator, and finishes
@example(
    dag=(["s0"], []),
    step_events=[(0, StepEvent.ENQUEUE)],
    task_event_seq=[
        TaskEvent.START,
        TaskEvent.READY_STEPS_FOUND,
        TaskEvent.ENQUEUE_FAILED,
        TaskEvent.RESUME,
        TaskEvent.ALL_STEPS_SUCCESSFUL,
    ],
)
def test_random_events_keep_invariants(
    db_url: str,
    dag: tuple[list[str], list[tuple[str, str]]],
    step_events: list[tuple[int, StepEvent]],
    task_event_seq: list[TaskEvent],
) -> None:
    asyncio.run(_run(db_url, dag, step_events, task_event_seq))


async def _run(
    db_url: str,
    dag: tuple[list[str], list[tuple[str, str]]],
    step_events: list[tuple[int, StepEvent]],
    task_event_seq: list[TaskEvent],
) -> None:
    conn = await connect(db_url)
    try:
        names, edges = dag
        task, steps = await insert_task_with_steps(conn, names, edges)
        expected = dict.fromkeys(steps.values(), StepState.PENDING)
        for index, event in step_events:
            step = steps[names[index % len(names)]]
            before = expected[step]
            legal = (before, event) in STEP_TRANSITIONS
            try:
                outcome = await step_transition(conn, StepChange(step, before, [event]))
            except InvalidTransitionError:
                assert not legal
                continue
            assert legal
            assert before not in STEP_TERMINAL, "a terminal step state was left"
            expected[step] = outcome.state
            assert outcome.state == STEP_TRANSITIONS[(before, event)]
            # a stale expectation always loses
            try:
                await step_transition(conn, StepChange(step, before, [event]))
                raise AssertionError("a transition from a superseded state succeeded")
            except (LostRaceError, InvalidTransitionError):
                pass
        await _check_steps(conn, expected)

        task_state = TaskState.PENDING
        for event in task_event_seq:
            if (task_state, event) not in TASK_TRANSITIONS:
                continue
            # terminal states are left only by an operator's resume of a task in error (the state machine's one
            # way out of a terminal state; see model.machines)
            assert task_state not in TASK_TERMINAL or (task_state, event) == (TaskState.ERROR, TaskEvent.RESUME)
            task_state = await task_transition(conn, TaskChange(task, task_state, [event]))
        row = await (
            await conn.execute(
                "SELECT count(*) FILTER (WHERE most_recent) AS current,"
                " max(to_state) FILTER (WHERE most_recent) AS state,"
                " array_agg(sort_key ORDER BY sort_key) AS keys, bool_or(t.complete) AS complete"
                " FROM tasker.task_transitions JOIN tasker.tasks t USING (task_uuid) WHERE task_uuid = %s",
                [task],
            )
        ).fetchone()
        assert row is not None
        assert row["current"] == 1 and row["state"] == task_state
        assert row["keys"] == list(range(1, len(row["keys"]) + 1))
        assert row["complete"] == (task_state is TaskState.COMPLETE)
    finally:
        await conn.close()


async def _check_steps(conn: Connection, expected: dict[UUID, StepState]) -> None:
    rows = await (
        await conn.execute(
            "SELECT s.workflow_step_uuid, s.in_process, s.processed, s.processed_at,"
            " count(*) FILTER (WHERE t.most_recent) AS current,"
            " max(t.to_state) FILTER (WHERE t.most_recent) AS state,"
            " array_agg(t.sort_key ORDER BY t.sort_key) AS keys"
            " FROM tasker.workflow_steps s JOIN tasker.workflow_step_transitions t USING (workflow_step_uuid)"
            " WHERE s.workflow_step_uuid = ANY(%s) GROUP BY s.workflow_step_uuid",
            [list(expected)],
        )
    ).fetchall()
    assert len(rows) == len(expected)
    for row in rows:
        state = expected[row["workflow_step_uuid"]]
        assert row["current"] == 1, "exactly one current transition per step"
        assert row["state"] == state
        assert row["keys"] == list(range(1, len(row["keys"]) + 1))
        assert row["in_process"] == (state is StepState.IN_PROGRESS)
        assert row["processed"] == (state in DONE_STATES)
        if state in DONE_STATES:
            assert row["processed_at"] is not None
