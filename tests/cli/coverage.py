"""Which ``tasker`` commands the tests run, so a command without a test fails CI (see test_every_command_is_tested).

A test declares the commands it covers with ``@covers("task create", ...)``; the autouse fixture in conftest.py
fails that test unless it really ran each of them, through :func:`invoke` (in-process) or :func:`record` (the
subprocess helpers call it). The coverage test collects the declarations of every test module here and compares them
with the commands the Typer app registers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

COVERS = "covers"


def covers(*commands: str) -> pytest.MarkDecorator:
    """``@covers("task create", ...)``: the commands the decorated test runs (the marker conftest.py registers)."""
    return getattr(pytest.mark, COVERS)(*commands)  # type: ignore[no-any-return]


ran: set[str] = set()


def root() -> Any:
    """The app as Typer builds it for the command line (Typer's own click: groups are those with subcommands)."""
    from tasker.cli.main import app

    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def command_paths(group: Any = None, prefix: str = "") -> set[str]:
    """Every leaf command of the app, as the words that name it: ``{"task create", "db migrate", "worker", ...}``."""
    group = group or root()
    found: set[str] = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if _is_group(command):
            found |= command_paths(command, f"{path} ")
        else:
            found.add(path)
    return found


def path_of(args: Sequence[str]) -> str | None:
    """The command that ``tasker <args>`` runs (options and their values skipped), or None for a group/help only."""
    command = root()
    words: list[str] = []
    for arg in args:
        if not _is_group(command):
            break
        sub = command.commands.get(arg)
        if sub is not None:
            command = sub
            words.append(arg)
    return " ".join(words) if words and not _is_group(command) else None


def record(args: Iterable[str]) -> None:
    path = path_of(list(args))
    if path is not None:
        ran.add(path)


def environment(db_url: str, **extra: str) -> dict[str, str | None]:
    """The CLI's environment for CliRunner: this test's database, nothing of the caller's TASKER_* settings."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TASKER_")}
    return {**cleared, "TASKER_DATABASE_URL": db_url, "TASKER_ENV": "test", "COLUMNS": "80", **extra}


def invoke(db_url: str, *args: str, **env: str) -> Result:
    """Run ``tasker <args>`` in this process (Typer's CliRunner), on the given database."""
    from tasker.cli.main import app

    record(args)
    return CliRunner().invoke(app, list(args), env=environment(db_url, **env), catch_exceptions=False)
