"""``tasker schedule add|list|show|remove|enable|disable``: cron schedules that create tasks, on the database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasker.cli.common import console, database_url, handle_errors, print_json, run, settings, show_table, table

if TYPE_CHECKING:
    from tasker.store.db import Connection

app = typer.Typer(no_args_is_help=True, help="Schedules: cron expressions that create tasks (fired by orchestrators)")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
NameArgument = Annotated[str, typer.Argument(help="the schedule's name")]


def _when(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else ""


def _json(text: str, option: str, kind: type) -> Any:
    from tasker.errors import InvalidScheduleError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidScheduleError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise InvalidScheduleError(f"{option} must be a JSON {'object' if kind is dict else 'array'}")
    return value


@asynccontextmanager
async def _connection() -> AsyncIterator[Connection]:
    """A connection to a migrated database (the schedules' tables may be newer than the database)."""
    from tasker.store.db import connection
    from tasker.store.migrate import migrate

    async with connection(database_url()) as conn:
        await migrate(conn)
        yield conn


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("notified", "db_now")}


@app.command("add")
@handle_errors
def add(
    name: NameArgument,
    cron: Annotated[str, typer.Option("--cron", help='e.g. "*/5 * * * *"; a 6th field (last) is seconds')],
    namespace: Annotated[str, typer.Option("--namespace", help="the template's namespace")],
    task_name: Annotated[str, typer.Option("--name", help="the template's name")],
    version: Annotated[str, typer.Option("--version", help="the template's version")] = "1.0.0",
    context: Annotated[str, typer.Option("--context", help="the tasks' context, a JSON object")] = "{}",
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone the cron fields are read in")] = "UTC",
    initiator: Annotated[str | None, typer.Option(help="the tasks' initiator")] = None,
    source_system: Annotated[str | None, typer.Option("--source-system", help="the tasks' source system")] = None,
    reason: Annotated[str | None, typer.Option(help="the tasks' reason")] = None,
    tags: Annotated[str, typer.Option("--tags", help="the tasks' tags, a JSON array")] = "[]",
    priority: Annotated[int, typer.Option(help="the tasks' priority, -100 to 100")] = 0,
    disabled: Annotated[bool, typer.Option("--disabled", help="add it disabled")] = False,
    as_json: JsonOption = False,
) -> None:
    """Add a schedule. The cron expression, time zone, template and context are checked now: nothing is stored
    when any is wrong."""
    from pydantic import ValidationError

    from tasker.engine.schedules import add_schedule
    from tasker.errors import InvalidScheduleError
    from tasker.model.schedules import ScheduleSpec

    try:
        spec = ScheduleSpec(
            name=name,
            cron=cron,
            timezone=timezone,
            namespace=namespace,
            task_name=task_name,
            version=version,
            context=_json(context, "--context", dict),
            initiator=initiator,
            source_system=source_system,
            reason=reason,
            tags=_json(tags, "--tags", list),
            priority=priority,
            enabled=not disabled,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidScheduleError(f"invalid schedule: {problems}") from None

    async def _add() -> dict[str, Any]:
        async with _connection() as conn:
            return await add_schedule(conn, spec, env=settings().env)

    row = _public(run(_add()))
    if as_json:
        print_json(row)
        return
    state = "enabled" if row["enabled"] else "disabled"
    console.print(f"schedule {row['name']} added ({state}); next run {_when(row['next_run_at'])}", soft_wrap=True)


@app.command("list")
@handle_errors
def list_schedules(as_json: JsonOption = False) -> None:
    """List the schedules with their next and last runs."""
    from tasker.engine.schedules import list_schedules as listed

    async def _list() -> list[dict[str, Any]]:
        async with _connection() as conn:
            return await listed(conn)

    rows = [_public(r) for r in run(_list())]
    if as_json:
        print_json(rows)
        return
    shown = table("name", "cron", "zone", "template", "enabled", "next run", "last run", "runs")
    for r in rows:
        shown.add_row(
            r["name"],
            r["cron"],
            r["timezone"],
            f"{r['namespace']}/{r['task_name']}:{r['version']}",
            "yes" if r["enabled"] else "no",
            _when(r["next_run_at"]) if r["enabled"] else "",
            _when(r["last_run_at"]),
            str(r["runs"]),
        )
    show_table(shown)


@app.command("show")
@handle_errors
def show(
    name: NameArgument, limit: Annotated[int, typer.Option(min=1, max=1000)] = 10, as_json: JsonOption = False
) -> None:
    """Show one schedule and its latest runs (the task each created, or why none was)."""
    from tasker.errors import NotFoundError
    from tasker.store.schedules import schedule_get, schedule_runs_recent

    async def _show() -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        async with _connection() as conn:
            return await schedule_get(conn, name), await schedule_runs_recent(conn, name, limit)

    row, runs = run(_show())
    if row is None:
        raise NotFoundError(f"no schedule named {name!r}")
    if as_json:
        print_json({**row, "runs": runs})
        return
    console.print(
        f"schedule {row['name']}: {row['cron']} ({row['timezone']}) creates {row['namespace']}/{row['task_name']}"
        f":{row['version']}; {'enabled, next run ' + _when(row['next_run_at']) if row['enabled'] else 'disabled'}",
        soft_wrap=True,
    )
    shown = table("scheduled for", "task", "missed since", "error")
    for r in runs:
        shown.add_row(_when(r["scheduled_for"]), str(r["task_uuid"] or ""), _when(r["missed_since"]), r["error"] or "")
    show_table(shown)


@app.command("remove")
@handle_errors
def remove(name: NameArgument) -> None:
    """Remove a schedule and its run history (the tasks it created stay)."""
    from tasker.engine.schedules import remove_schedule

    async def _remove() -> None:
        async with _connection() as conn:
            await remove_schedule(conn, name)

    run(_remove())
    console.print(f"schedule {name} removed", soft_wrap=True)


def _set_enabled(name: str, enabled: bool) -> dict[str, Any]:
    from tasker.engine.schedules import set_schedule_enabled

    async def _set() -> dict[str, Any]:
        async with _connection() as conn:
            return await set_schedule_enabled(conn, name, enabled)

    return run(_set())


@app.command("enable")
@handle_errors
def enable(name: NameArgument) -> None:
    """Enable a schedule; it fires from its next tick on (ticks that passed while disabled do not fire)."""
    row = _set_enabled(name, True)
    console.print(f"schedule {name} enabled; next run {_when(row['next_run_at'])}", soft_wrap=True)


@app.command("disable")
@handle_errors
def disable(name: NameArgument) -> None:
    """Disable a schedule: it creates no task until enabled again."""
    _set_enabled(name, False)
    console.print(f"schedule {name} disabled", soft_wrap=True)
