"""``tasker config show``: the effective settings (defaults < TOML file < TASKER_* environment), secrets redacted."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tasker.cli.common import handle_errors, print_json, settings, show_table, table, text_column

app = typer.Typer(no_args_is_help=True, help="Configuration")
REDACTED = "**********"


def redact(value: Any) -> Any:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return REDACTED if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def effective() -> dict[str, Any]:
    current = settings()
    values = {name: getattr(current, name) for name in type(current).model_fields}
    values["api_keys"] = [entry.model_dump() for entry in current.api_keys]
    plain = redact(values)
    return {k: (str(v) if not isinstance(v, str | int | float | bool | list | dict | type(None)) else v)
            for k, v in plain.items()}  # fmt: skip


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
