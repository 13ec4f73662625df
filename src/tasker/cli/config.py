"""``tasker config show``: the effective settings (defaults < TOML file < TASKER_* environment), secrets redacted."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tasker.cli.common import handle_errors, print_json, settings, show_table, table, text_column

app = typer.Typer(no_args_is_help=True, help="Configuration")


def effective() -> dict[str, Any]:
    from tasker.config import redacted_settings

    return redacted_settings(settings())


@app.command("show")
@handle_errors
def show(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Print the effective configuration; secrets are shown as asterisks."""
    values = effective()
    if as_json:
        print_json(values)
        return
    shown = table("setting", text_column("value"))
    for name, value in values.items():
        shown.add_row(name, str(value))
    show_table(shown)
