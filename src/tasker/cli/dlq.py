"""``tasker dlq list|get|update|stats|queue|sweep``: the dead-letter queue straight from the database."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer

from tasker.cli.common import (
    console,
    database_url,
    handle_errors,
    print_json,
    run,
    show_table,
    table,
    text_column,
    uuid_column,
)

app = typer.Typer(no_args_is_help=True, help="Dead-letter queue: stuck tasks under investigation")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _when(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else ""


def _entries_table(entries: list[dict[str, Any]]) -> None:
    shown = table(uuid_column("entry"), uuid_column("task"), "reason", "status", "from state", "in DLQ since",
                  "resolved by")  # fmt: skip
    for e in entries:
        shown.add_row(
            str(e["dlq_entry_uuid"]),
            str(e["task_uuid"]),
            e["dlq_reason"],
            e["resolution_status"],
            e["original_state"],
            _when(e["dlq_timestamp"]),
            e["resolved_by"] or "",
        )
    show_table(shown)


def _show_entry(entry: dict[str, Any]) -> None:
    snapshot = entry["task_snapshot"] or {}
    console.print(
        f"DLQ entry {entry['dlq_entry_uuid']} [bold]{entry['resolution_status']}[/bold] ({entry['dlq_reason']})",
        soft_wrap=True,
    )
    console.print(
        f"task {entry['task_uuid']} {snapshot.get('namespace_name', '?')}/{snapshot.get('task_name', '?')}"
        f":{snapshot.get('task_version', '?')}, was {entry['original_state']}, in the DLQ since"
        f" {_when(entry['dlq_timestamp'])}",
        soft_wrap=True,
    )
    if entry["resolution_timestamp"] is not None or entry["resolved_by"] or entry["resolution_notes"]:
        console.print(
            f"resolved {_when(entry['resolution_timestamp'])} by {entry['resolved_by'] or '?'}:"
            f" {entry['resolution_notes'] or ''}",
            soft_wrap=True,
        )
    if entry["metadata"]:
        console.print(f"metadata: {json.dumps(entry['metadata'], default=str)}", soft_wrap=True, markup=False)
    steps = table("step", "state", "attempts", text_column("error"))
    for step in snapshot.get("steps", []):
        error = step.get("error") or {}
        steps.add_row(
            str(step.get("name")),
            str(step.get("current_state")),
            f"{step.get('attempts')}/{step.get('max_attempts')}",
            str(error.get("message", "")) if isinstance(error, dict) else str(error),
        )
    show_table(steps)


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
    from tasker.store.db import connection
    from tasker.store.dlq import dlq_list

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
    _entries_table(page["entries"])
    shown = len(page["entries"])
    console.print(f"{shown} of {page['total']} entries (offset {offset})")


@app.command("get")
@handle_errors
def get(
    uuid: Annotated[UUID, typer.Argument(help="a DLQ entry, or a task (its newest entry)")],
    as_json: JsonOption = False,
) -> None:
    """Show one entry with its task snapshot."""
    from tasker.errors import NotFoundError
    from tasker.store.db import connection
    from tasker.store.dlq import dlq_entries_for_task, dlq_get

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
    from tasker.store.db import connection
    from tasker.store.dlq import InvalidDlqRequestError, dlq_update

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
    from tasker.store.db import connection
    from tasker.store.dlq import dlq_stats

    async def _stats() -> list[dict[str, Any]]:
        async with connection(database_url()) as conn:
            return await dlq_stats(conn)

    rows = run(_stats())
    if as_json:
        print_json(rows)
        return
    shown = table("reason", "total", "pending", "resolved", "failed", "cancelled", "oldest", "avg resolution (min)")
    for r in rows:
        avg = r["avg_resolution_time_minutes"]
        shown.add_row(
            r["dlq_reason"],
            str(r["total_entries"]),
            str(r["pending"]),
            str(r["manually_resolved"]),
            str(r["permanent_failures"]),
            str(r["cancelled"]),
            _when(r["oldest_entry"]),
            "" if avg is None else f"{avg:.1f}",
        )
    show_table(shown)


@app.command("queue")
@handle_errors
def queue(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20, as_json: JsonOption = False) -> None:
    """Pending entries, most urgent first (reason weight + minutes waiting)."""
    from tasker.store.db import connection
    from tasker.store.dlq import dlq_investigation_queue

    async def _queue() -> list[dict[str, Any]]:
        async with connection(database_url()) as conn:
            return await dlq_investigation_queue(conn, limit=limit)

    rows = run(_queue())
    if as_json:
        print_json(rows)
        return
    shown = table("score", uuid_column("entry"), "task", "reason", "now", "minutes in DLQ")
    for r in rows:
        shown.add_row(
            f"{r['priority_score']:.0f}",
            str(r["dlq_entry_uuid"]),
            f"{r['namespace_name']}/{r['task_name']}",
            r["dlq_reason"],
            r["current_state"],
            f"{r['minutes_in_dlq']:.0f}",
        )
    show_table(shown)


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
    from dataclasses import asdict

    from tasker.engine.staleness import StalenessDefaults, sweep_stale_tasks
    from tasker.store.db import connection

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
        return [asdict(o) for o in report.outcomes]

    outcomes = run(_sweep())
    if as_json:
        print_json(outcomes)
        return
    shown = table(uuid_column("task"), "state", "minutes in state", "threshold", "action")
    for o in outcomes:
        shown.add_row(
            str(o["task_uuid"]),
            str(o["state"]),
            f"{o['time_in_state_minutes']:.1f}",
            str(o["threshold_minutes"]),
            o["action"],
        )
    show_table(shown)
    console.print(f"{len(outcomes)} stale task(s){' (dry run: nothing changed)' if dry_run else ''}")
