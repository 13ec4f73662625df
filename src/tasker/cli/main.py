"""``tasker``: the command-line root. One module per command group sits beside this one.

The command modules import only Typer, Rich and the standard library at the top; each command imports what it
needs when it runs (see tasker.cli.common), so building this app, and ``--help``, stays cheap.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tasker.cli import api, config, db, demo, dlq, events, health, schedule, services, task, template
from tasker.cli.common import version_callback

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Tasker: PostgreSQL-backed workflow orchestration",
)


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Tasker: PostgreSQL-backed workflow orchestration."""


app.add_typer(db.app, name="db")
app.add_typer(template.app, name="template")
app.add_typer(task.app, name="task")
app.add_typer(config.app, name="config")
app.add_typer(dlq.app, name="dlq")
app.add_typer(schedule.app, name="schedule")
app.add_typer(events.app, name="events")
app.command("orchestrator")(services.orchestrator)
app.command("worker")(services.worker)
app.command("serve")(services.serve)
app.command("demo")(demo.demo)
app.command("api")(api.api)
app.command("health")(health.health)


if __name__ == "__main__":
    app()
