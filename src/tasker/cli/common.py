"""What every command shares: the database URL, running a coroutine, printing errors as one line."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from tasker.config import Settings, load_settings
from tasker.errors import TaskerError
from tasker.store import embedded

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
errors = Console(stderr=True)


def settings() -> Settings:
    return load_settings()


def database_url() -> str:
    return embedded.database_url(settings())


def run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


def handle_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn Tasker's typed errors into one clear line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except TaskerError as exc:
            errors.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False, markup=True)
            raise typer.Exit(1) from None

    return wrapper


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def configure_logging(level: str) -> None:
    """Logging of one-shot commands (services use tasker.telemetry directly with the configured format)."""
    from tasker.telemetry import configure_logging as configure

    configure(level, settings().log_format)


async def until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` and set ``stop`` on SIGTERM or SIGINT, so services drain and exit cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)
