"""``tasker db prune``: remove finished tasks older than a cutoff, archived (the default) or deleted."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tasker.cli.common import console, database_url, handle_errors, print_json, run, show_table, table


@handle_errors
def prune(
    completed_before: Annotated[
        str, typer.Option("--completed-before", help="an age (30d, 12h, 90m, 2w) or an ISO date or time (UTC)")
    ],
    archive: Annotated[
        bool,
        typer.Option(
            "--archive/--delete",
            help="keep each pruned task as one document in tasker_ext.task_archive, or delete it outright",
        ),
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would be removed, change nothing")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="tasks per transaction")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Prune finished tasks (complete, cancelled, resolved_manually; none with a pending DLQ entry) whose last
    transition is older than the cutoff, with all their rows, in batches of one transaction each; also old
    schedule runs and PGMQ archive rows. Uses TASKER_DATABASE_URL."""
    from tasker.engine.retention import PruneReport
    from tasker.engine.retention import prune as run_prune
    from tasker.model.retention import parse_cutoff
    from tasker.store.db import connection
    from tasker.store.migrate import migrate

    cutoff = parse_cutoff(completed_before)

    async def _prune() -> PruneReport:
        async with connection(database_url()) as conn:
            await migrate(conn)
            return await run_prune(conn, cutoff=cutoff, archive=archive, batch_size=batch_size, dry_run=dry_run)

    report = run(_prune())
    if as_json:
        print_json(_as_dict(report))
        return
    _show(report)


def _as_dict(report: Any) -> dict[str, Any]:
    return {
        "cutoff": report.cutoff.isoformat(),
        "mode": "archive" if report.archive else "delete",
        "dry_run": report.dry_run,
        "rows": report.rows,
        "archived": report.archived,
        "schedule_runs": report.schedule_runs,
        "queue_archive": report.queue_archive,
        "batches": report.batches,
    }


def _show(report: Any) -> None:
    verb = "would remove" if report.dry_run else "removed"
    shown = table("table", "rows")
    for name, count in report.rows.items():
        shown.add_row(f"tasker.{name}", str(count))
    shown.add_row("tasker_ext.schedule_runs", str(report.schedule_runs))
    for queue, count in report.queue_archive.items():
        shown.add_row(f"pgmq.a_{queue}", str(count))
    show_table(shown)
    kept = f"{'would archive' if report.dry_run else 'archived'} {report.archived} task(s) in tasker_ext.task_archive"
    tail = kept if report.archive else "deleted without archive"
    batches = "" if report.dry_run else f" in {report.batches} batch(es)"
    console.print(
        f"{verb} {report.tasks} finished task(s) older than {report.cutoff.isoformat(timespec='seconds')}{batches};"
        f" {tail}",
        soft_wrap=True,
    )
