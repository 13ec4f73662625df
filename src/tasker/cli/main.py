"""``tasker``: the command-line root. One module per command group sits beside this one."""

from __future__ import annotations

import typer

from tasker.cli import db, demo

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Tasker: PostgreSQL-backed workflow orchestration")
app.add_typer(db.app, name="db")
app.command("demo")(demo.demo)


if __name__ == "__main__":
    app()
