"""/v1/dlq: list, per task, entry, update, stats, investigation queue, staleness; dlq permissions."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import psycopg

from tasker.engine.staleness import StalenessDefaults, sweep_stale_tasks
from tasker.store.db import connect
from tests.e2e.runtime import create
from tests.e2e.test_staleness_inprocess import age


def _stale_task(db_url: str) -> str:
    """A task stuck in steps_in_process for two hours, swept into the DLQ."""

    async def go() -> str:
        conn = await connect(db_url)
        try:
            created = await create(conn, "runtime_checks", "sleepy_chain", {"sleep_seconds": 0})
            await age(conn, created.task_uuid, minutes=120)  # no task or step transition for two hours
            await sweep_stale_tasks(
                conn, defaults=StalenessDefaults(), dry_run=False, batch_size=10, processor_uuid=uuid.uuid4()
            )
            return str(created.task_uuid)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_dlq_routes(http: httpx.Client, db_url: str) -> None:
    task_uuid = _stale_task(db_url)
    listed = http.get("/v1/dlq", params={"resolution_status": "pending"})
    assert listed.status_code == 200
    entries = listed.json()["entries"]
    assert [e["task_uuid"] for e in entries] == [task_uuid] and listed.json()["total"] == 1
    entry_uuid = entries[0]["dlq_entry_uuid"]
    assert entries[0]["dlq_reason"] == "staleness_timeout"

    of_task = http.get(f"/v1/dlq/task/{task_uuid}").json()
    assert [e["dlq_entry_uuid"] for e in of_task["entries"]] == [entry_uuid]
    assert http.get(f"/v1/dlq/entry/{entry_uuid}").json()["task_snapshot"]

    queue = http.get("/v1/dlq/investigation-queue").json()["entries"]
    assert queue and queue[0]["dlq_entry_uuid"] == entry_uuid
    stats = http.get("/v1/dlq/stats").json()["by_reason"]
    assert any(row["dlq_reason"] == "staleness_timeout" for row in stats)
    assert http.get("/v1/dlq/staleness").status_code == 200

    updated = http.patch(
        f"/v1/dlq/entry/{entry_uuid}",
        json={"resolution_status": "manually_resolved", "resolved_by": "ops@example.com", "resolution_notes": "ok"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["resolution_status"] == "manually_resolved"
    assert updated.json()["resolution_timestamp"] is not None
    assert http.get("/v1/dlq", params={"resolution_status": "pending"}).json()["total"] == 0


def test_dlq_errors(http: httpx.Client, db_url: str) -> None:
    assert http.get(f"/v1/dlq/entry/{uuid.uuid4()}").status_code == 404
    bad = http.get("/v1/dlq", params={"resolution_status": "bored"})
    assert bad.status_code == 400 and "resolution status" in bad.json()["error"]["message"]
    task_uuid = _stale_task(db_url)
    entry_uuid = http.get(f"/v1/dlq/task/{task_uuid}").json()["entries"][0]["dlq_entry_uuid"]
    refused = http.patch(f"/v1/dlq/entry/{entry_uuid}", json={"resolution_status": "solved"})
    assert refused.status_code == 400
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT resolution_status FROM tasker.tasks_dlq WHERE dlq_entry_uuid = %s", [entry_uuid]
        ).fetchone()
    assert row == ("pending",), "a refused update writes nothing"


def _stamps_of(rows: list[dict[str, object]]) -> list[tuple[str, str]]:
    """Timestamps among the columns of each row (the snapshot is stored JSON and stays as it was written)."""
    return [
        (key, value)
        for row in rows
        for key, value in row.items()
        if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", value)
    ]


def test_dlq_timestamps_carry_their_utc_offset(http: httpx.Client, db_url: str) -> None:
    task_uuid = _stale_task(db_url)
    entries = http.get("/v1/dlq").json()["entries"]
    entry_uuid = entries[0]["dlq_entry_uuid"]
    rows = [
        *entries,
        *http.get(f"/v1/dlq/task/{task_uuid}").json()["entries"],
        http.get(f"/v1/dlq/entry/{entry_uuid}").json(),
        http.patch(f"/v1/dlq/entry/{entry_uuid}", json={"resolution_status": "manually_resolved"}).json(),
        *http.get("/v1/dlq/stats").json()["by_reason"],
        *http.get("/v1/dlq/staleness").json()["tasks"],
    ]
    stamps = _stamps_of(rows)
    assert {"dlq_timestamp", "created_at", "resolution_timestamp", "oldest_entry"} <= {key for key, _ in stamps}
    naive = [(key, value) for key, value in stamps if not re.search(r"(Z|[+-]\d\d:\d\d)$", value)]
    assert not naive, naive
