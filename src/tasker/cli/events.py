"""``tasker events list``: durable domain events straight from the database, oldest first, paged by cursor."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import typer

from tasker.cli.common import console, database_url, handle_errors, print_json, run, show_table, table, uuid_column

app = typer.Typer(no_args_is_help=True, help="Domain events published by template steps (publishes_events)")


@app.command("list")
@handle_errors
def list_events(
    name: Annotated[
        list[str] | None, typer.Option("--name", help="event name, exact or a glob (order.*); repeat for several")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="only this namespace's events")] = None,
    task: Annotated[UUID | None, typer.Option(help="only this task's events")] = None,
    after: Annotated[UUID | None, typer.Option(help="cursor: start after this event id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List events in commit order; the last line names the cursor for the next page (--after)."""
    from tasker.model.events import Patterns
    from tasker.store.db import connection
    from tasker.store.events import EventFilter, EventPage, domain_event_list_many

    async def _list() -> EventPage:
        where = EventFilter(namespace=namespace, task_uuid=task, names=Patterns(name or ()))
        async with connection(database_url()) as conn:
            return await domain_event_list_many(conn, where, after=after, limit=limit)

    page = run(_list())
    events: list[dict[str, Any]] = [e.as_dict() for e in page.events]
    next_after = events[-1]["event_uuid"] if events else after
    if as_json:
        print_json({"events": events, "count": len(events), "next_after": next_after})
        return
    shown = table(uuid_column("event"), "name", "outcome", "mode", "namespace", "step", uuid_column("task"), "at")
    for e in events:
        shown.add_row(
            str(e["event_uuid"]),
            e["name"],
            e["outcome"],
            e["delivery_mode"],
            e["namespace"],
            e["step_name"],
            str(e["task_uuid"]),
            e["created_at"].isoformat(sep=" ", timespec="seconds"),
        )
    show_table(shown)
    more = f"; next page: --after {next_after}" if len(events) == limit else ""
    console.print(f"{len(events)} events{more}")
