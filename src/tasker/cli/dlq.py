"""``tasker dlq list|get|update|stats|queue|sweep``: the dead-letter queue straight from the database."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from tasker.cli.common import console, database_url, handle_errors, print_json, run
from tasker.engine.staleness import StalenessDefaults, sweep_stale_tasks
from tasker.errors import NotFoundError
from tasker.store.db import connection
from tasker.store.dlq import (
    InvalidDlqRequestError,
    dlq_entries_for_task,
    dlq_get,
    dlq_investigation_queue,
    dlq_list,
    dlq_stats,
    dlq_update,
)

app = typer.Typer(no_args_is_help=True, help="Dead-letter queue: stuck tasks under investigation")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _when(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else ""


def _entries_table(entries: list[dict[str, Any]]) -> Table:
    table = Table("entry", "task", "reason", "status", "from state", "in DLQ since", "resolved by")
    for e in entries:
        table.add_row(
            str(e["dlq_entry_uuid"]),
            str(e["task_uuid"]),
            e["dlq_reason"],
            e["resolution_status"],
            e["original_state"],
            _when(e["dlq_timestamp"]),
            e["resolved_by"] or "",
        )
    return table


def _show_entry(entry: dict[str, Any]) -> None:
    snapshot = entry["task_snapshot"] or {}
    console.print(
        f"DLQ entry {entry['dlq_entry_uuid']} [bold]{entry['resolution_status']}[/bold] ({entry['dlq_reason']})"
    )
    console.print(
        f"task {entry['task_uuid']} {snapshot.get('namespace_name', '?')}/{snapshot.get('task_name', '?')}"
        f":{snapshot.get('task_version', '?')}, was {entry['original_state']}, in the DLQ since"
        f" {_when(entry['dlq_timestamp'])}"
    )
    if entry["resolution_timestamp"] is not None or entry["resolved_by"] or entry["resolution_notes"]:
        console.print(
            f"resolved {_when(entry['resolution_timestamp'])} by {entry['resolved_by'] or '?'}:"
            f" {entry['resolution_notes'] or ''}"
        )
    if entry["metadata"]:
        console.print(f"metadata: {json.dumps(entry['metadata'], default=str)}")
    steps = Table("step", "state", "attempts", "error")
    for step in snapshot.get("steps", []):
        error = step.get("error") or {}
        steps.add_row(
            str(step.get("name")),
            str(step.get("current_state")),
            f"{step.get('attempts')}/{step.get('max_attempts')}",
            str(error.get("message", ""))[:60] if isinstance(error, dict) else str(error)[:60],
        )
    console.print(steps)


@app.command("list")
@handle_errors
def list_entries(
    status: Annotated[
        str | None, typer.Option(help="pending, manually_resolved, permanently_failed, cancelled")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="staleness_timeout, max_retries_exceeded, ...")] = None,
    task: Annotated[UUID | None, typer.Option(help="only this task's entries")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
) -> None:
    """List entries, newest first."""

    async def _list() -> dict[str, Any]:
        async with connection(database_url()) as conn:
            page = await dlq_list(
                conn, resolution_status=status, dlq_reason=reason, task_uuid=task, limit=limit, offset=offset
            )
        return {"entries": page.entries, "total": page.total, "limit": page.limit, "offset": page.offset}

    page = run(_list())
    if as_json:
        print_json(page)
        return
    console.print(_entries_table(page["entries"]))
    shown = len(page["entries"])
    console.print(f"{shown} of {page['total']} entries (offset {offset})")


@app.command("get")
@handle_errors
def get(
    uuid: Annotated[UUID, typer.Argument(help="a DLQ entry, or a task (its newest entry)")],
    as_json: JsonOption = False,
) -> None:
    """Show one entry with its task snapshot."""

    async def _get() -> dict[str, Any]:
        async with connection(database_url()) as conn:
            try:
                return await dlq_get(conn, uuid)
            except NotFoundError:
                entries = await dlq_entries_for_task(conn, uuid)
        if not entries:
            raise NotFoundError(f"no DLQ entry and no task with DLQ entries has the id {uuid}")
        return entries[0]

    entry = run(_get())
    if as_json:
        print_json(entry)
    else:
        _show_entry(entry)


@app.command("update")
@handle_errors
def update(
    entry_uuid: Annotated[UUID, typer.Argument(help="the DLQ entry")],
    status: Annotated[
        str | None, typer.Option(help="manually_resolved, permanently_failed, cancelled or pending")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="what was found and done")] = None,
    resolved_by: Annotated[str | None, typer.Option(help="who resolved it")] = None,
    metadata: Annotated[str | None, typer.Option(help="a JSON object merged into the entry's metadata")] = None,
    as_json: JsonOption = False,
) -> None:
    """Record an investigation outcome; a status stamps the resolution time."""
    extra: dict[str, Any] | None = None
    if metadata is not None:
        try:
            extra = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise InvalidDlqRequestError(f"--metadata is not valid JSON: {exc}") from exc
        if not isinstance(extra, dict):
            raise InvalidDlqRequestError("--metadata must be a JSON object")
    if status is None and notes is None and resolved_by is None and extra is None:
        raise InvalidDlqRequestError("nothing to update: give --status, --notes, --resolved-by or --metadata")

    async def _update() -> dict[str, Any]:
        async with connection(database_url()) as conn:
            return await dlq_update(
                conn,
                entry_uuid,
                resolution_status=status,
                resolution_notes=notes,
                resolved_by=resolved_by,
                metadata=extra,
            )

    entry = run(_update())
    if as_json:
        print_json(entry)
    else:
        console.print(f"DLQ entry {entry['dlq_entry_uuid']}: {entry['resolution_status']}")


@app.command("stats")
@handle_errors
def stats(as_json: JsonOption = False) -> None:
    """Entries per reason and resolution status."""

    async def _stats() -> list[dict[str, Any]]:
        async with connection(database_url()) as conn:
            return await dlq_stats(conn)

    rows = run(_stats())
    if as_json:
        print_json(rows)
        return
    table = Table("reason", "total", "pending", "resolved", "failed", "cancelled", "oldest", "avg resolution (min)")
    for r in rows:
        avg = r["avg_resolution_time_minutes"]
        table.add_row(
            r["dlq_reason"],
            str(r["total_entries"]),
            str(r["pending"]),
            str(r["manually_resolved"]),
            str(r["permanent_failures"]),
            str(r["cancelled"]),
            _when(r["oldest_entry"]),
            "" if avg is None else f"{avg:.1f}",
        )
    console.print(table)


@app.command("queue")
@handle_errors
def queue(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20, as_json: JsonOption = False) -> None:
    """Pending entries, most urgent first (reason weight + minutes waiting)."""

    async def _queue() -> list[dict[str, Any]]:
        async with connection(database_url()) as conn:
            return await dlq_investigation_queue(conn, limit=limit)

    rows = run(_queue())
    if as_json:
        print_json(rows)
        return
    table = Table("score", "entry", "task", "reason", "now", "minutes in DLQ")
    for r in rows:
        table.add_row(
            f"{r['priority_score']:.0f}",
            str(r["dlq_entry_uuid"]),
            f"{r['namespace_name']}/{r['task_name']}",
            r["dlq_reason"],
            r["current_state"],
            f"{r['minutes_in_dlq']:.0f}",
        )
    console.print(table)


@app.command("sweep")
@handle_errors
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report what would happen, change nothing")] = False,
    waiting_for_dependencies_minutes: Annotated[int, typer.Option(min=1)] = 60,
    waiting_for_retry_minutes: Annotated[int, typer.Option(min=1)] = 30,
    steps_in_process_minutes: Annotated[int, typer.Option(min=1)] = 30,
    max_lifetime_hours: Annotated[int, typer.Option(min=1)] = 24,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Run one staleness sweep now (template lifecycle values win over these defaults)."""
    defaults = StalenessDefaults(
        waiting_for_dependencies_minutes=waiting_for_dependencies_minutes,
        waiting_for_retry_minutes=waiting_for_retry_minutes,
        steps_in_process_minutes=steps_in_process_minutes,
        task_max_lifetime_hours=max_lifetime_hours,
    )

    async def _sweep() -> list[dict[str, Any]]:
        async with connection(database_url()) as conn:
            report = await sweep_stale_tasks(
                conn, defaults=defaults, dry_run=dry_run, batch_size=batch_size, processor_uuid=None
            )
        return [vars(o) for o in report.outcomes]

    outcomes = run(_sweep())
    if as_json:
        print_json(outcomes)
        return
    table = Table("task", "state", "minutes in state", "threshold", "action")
    for o in outcomes:
        table.add_row(
            str(o["task_uuid"]),
            str(o["state"]),
            f"{o['time_in_state_minutes']:.1f}",
            str(o["threshold_minutes"]),
            o["action"],
        )
    console.print(table)
    console.print(f"{len(outcomes)} stale task(s){' (dry run: nothing changed)' if dry_run else ''}")
