"""The claim token fences results and checkpoints: a claim that a database crash rolled back (claims commit
asynchronously) and that another claimer then re-issued with the same attempt number cannot be completed, nor its
checkpoint written, by the first worker, although its attempt number still matches."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from tasker.model.ids import uuid7
from tasker.model.machines import StepEvent
from tasker.model.states import StepState
from tasker.store.db import Connection
from tasker.store.steps import step_checkpoint_save_claimed, step_claim_many
from tasker.store.transitions import StepChange, step_transition
from tests.e2e.runtime import create
from tests.worker.support import (
    NAMESPACE,
    audit_rows,
    lines,
    only_step,
    register_worker_templates,
    transitions,
    until,
    worker_running,
)

OTHER_TOKEN = "claim-of-another-worker"


async def _roll_back_claim(conn: Connection, step_uuid: UUID) -> None:
    """What a crash does to an asynchronously committed claim: its in_progress row and attempt are gone."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM tasker.workflow_step_transitions"
            " WHERE workflow_step_uuid = %s AND most_recent AND to_state = 'in_progress'",
            [step_uuid],
        )
        await conn.execute(
            "UPDATE tasker.workflow_step_transitions SET most_recent = true WHERE workflow_step_uuid = %(s)s"
            " AND sort_key = (SELECT max(sort_key) FROM tasker.workflow_step_transitions"
            "                 WHERE workflow_step_uuid = %(s)s)",
            {"s": step_uuid},
        )
        await conn.execute(
            "UPDATE tasker.workflow_steps SET attempts = attempts - 1, in_process = false"
            " WHERE workflow_step_uuid = %s",
            [step_uuid],
        )


async def test_a_result_of_a_rolled_back_claim_is_refused(conn: Connection, db_url: str, tmp_path: Path) -> None:
    await register_worker_templates(conn)
    run_file, release, checkpoints = tmp_path / "runs", tmp_path / "release", tmp_path / "checkpoints"
    context = {"run_file": str(run_file), "release_file": str(release), "checkpoint_file": str(checkpoints)}
    async with worker_running(db_url, concurrency=1) as worker:
        created = await create(conn, NAMESPACE, "gated", context)

        async def started() -> bool:
            return len(lines(run_file)) == 1

        await until(started, what="the handler to start")
        step = await only_step(conn, created.task_uuid)
        assert step["state"] == "in_progress" and step["attempts"] == 1
        step_uuid = step["workflow_step_uuid"]
        await _roll_back_claim(conn, step_uuid)
        # another claimer takes the step: the same attempt number, 1, under its own token
        again = await step_transition(
            conn,
            StepChange(
                step_uuid,
                StepState.ENQUEUED,
                [StepEvent.START],
                {"worker_uuid": uuid7(), "claim_token": OTHER_TOKEN},
                expected_attempts=0,
            ),
        )
        assert again.attempts == 1
        release.touch()

        async def first_worker_done() -> bool:
            return worker.steps_done == 1 and not worker.running

        await until(first_worker_done, what="the first worker to finish its run")
    assert lines(checkpoints) == ["refused"]
    step = await only_step(conn, created.task_uuid)
    assert step["state"] == "in_progress" and step["attempts"] == 1 and step["results"] is None
    current = [t for t in await transitions(conn, step_uuid) if t["most_recent"]]
    assert current[0]["metadata"]["claim_token"] == OTHER_TOKEN
    assert await audit_rows(conn, step_uuid) == []


async def test_checkpoints_need_the_claims_token(conn: Connection, tmp_path: Path) -> None:
    await register_worker_templates(conn)
    created = await create(
        conn, NAMESPACE, "gated", {"run_file": str(tmp_path / "r"), "release_file": str(tmp_path / "x")}
    )
    step = await only_step(conn, created.task_uuid)
    rows = await step_claim_many(
        conn, [StepChange(step["workflow_step_uuid"], StepState.ENQUEUED, [StepEvent.START], {"claim_token": "mine"})]
    )
    assert rows[0]["attempts"] == 1
    step_uuid = step["workflow_step_uuid"]
    assert await step_checkpoint_save_claimed(conn, step_uuid, 1, "not-mine", {"cursor": 1}) is None
    stored = await step_checkpoint_save_claimed(conn, step_uuid, 1, "mine", {"cursor": 2})
    assert stored is not None and stored["cursor"] == 2
