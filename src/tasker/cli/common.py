"""What every command shares: the database URL, running a coroutine, printing errors as one line, tables that never
cut a UUID, checking a port before a server binds it.

Only Typer, Rich and the standard library are imported here and at the top of the command modules: everything
heavier (the engine, the store, pydantic settings, the API server) is imported inside the command that needs it, so
``tasker --help`` and a typo cost a fraction of a second instead of importing the whole server.
"""

from __future__ import annotations

import errno
import functools
import json
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

if TYPE_CHECKING:
    import asyncio

    from tasker.config import Settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
errors = Console(stderr=True)
UUID_WIDTH = 36


def settings() -> Settings:
    from tasker.config import load_settings

    return load_settings()


def database_url() -> str:
    from tasker.store import embedded

    return embedded.database_url(settings())


def run(coro: Coroutine[Any, Any, R]) -> R:
    import asyncio

    return asyncio.run(coro)


def one_line(text: str) -> str:
    """A CLI error is one line, but messages span lines: psycopg's, and a template check's one line per problem.
    Lines are joined with a space after punctuation (a sentence going on) and with "; " otherwise."""
    joined = ""
    for line in (re.sub(r"\s+", " ", raw).strip() for raw in text.splitlines()):
        if line:
            joined += (" " if joined.endswith((":", ".", ",", ";", "?", "!")) else "; ") + line if joined else line
    return joined


def fail(message: str, code: str | None = None) -> typer.Exit:
    """Print ``error (CODE): message`` as one line on stderr; raise the returned Exit to end with status 1."""
    prefix = f"error ({code})" if code else "error"
    sys.stderr.write(f"{prefix}: {one_line(message)}\n")
    return typer.Exit(1)


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {one_line(message)}\n")


def handle_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can cause or meet into one clear line on stderr and exit status 1 (no traceback).

    Tasker's typed errors (a bad template, an unreachable database, a missing task, a busy port), a YAML document
    nested too deep for the parser (RecursionError), the OS refusing a file, an API that does not answer.
    Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from tasker.errors import TaskerError

        try:
            return function(*args, **kwargs)
        except TaskerError as exc:
            raise fail(exc.message, exc.code) from None
        except RecursionError:
            raise fail("the input is nested too deeply to read (a hostile or broken document?)") from None
        except OSError as exc:
            if exc.filename is None:
                raise  # a socket or a device failing mid-run is a bug report: keep the traceback
            raise fail(str(exc)) from None
        except Exception as exc:
            pydantic = sys.modules.get("pydantic")  # loaded once settings are read
            if pydantic is not None and isinstance(exc, pydantic.ValidationError):
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
                raise fail(f"invalid configuration: {problems}", "CONFIGURATION") from None
            httpx = sys.modules.get("httpx")  # loaded only when the command talked to an API
            if httpx is not None and isinstance(exc, httpx.TransportError):
                raise fail(f"cannot reach the Tasker API: {exc or type(exc).__name__}", "SERVICE_UNAVAILABLE") from None
            raise

    return wrapper


def version_callback(value: bool) -> None:
    if value:
        from tasker import __version__

        typer.echo(f"tasker {__version__}")
        raise typer.Exit()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def uuid_column(header: str) -> Column:
    """A column of UUIDs: never wrapped, never cut (see :func:`show_table`)."""
    return Column(header, no_wrap=True, min_width=UUID_WIDTH)


def text_column(header: str) -> Column:
    """A column of free text (descriptions, messages, results): wraps, and folds a long word, never cuts it."""
    return Column(header, overflow="fold")


def table(*columns: str | Column) -> Table:
    """A table whose plain columns (ids, names, states, numbers: what one copies) are never wrapped or cut;
    only :func:`text_column` columns wrap."""
    return Table(*(Column(c, no_wrap=True) if isinstance(c, str) else c for c in columns))


def _needed_width(shown: Table) -> int:
    """The width at which every no-wrap column fits whole and each text column keeps up to 16 characters."""
    total = 1  # the left border
    for column in shown.columns:
        longest = max(
            [Text.from_markup(c).cell_len if isinstance(c, str) else 12 for c in column.cells]
            + [Text.from_markup(str(column.header)).cell_len]
        )
        total += (longest if column.no_wrap else min(longest, 16)) + 3  # padding either side and a border
    return total


def show_table(shown: Table) -> None:
    """Print a table on stdout; wider than the terminal when needed, so a UUID is never cut or wrapped (a terminal
    wraps the long lines; piped output stays one row per line)."""
    needed = _needed_width(shown)
    if needed <= console.width:
        console.print(shown)
        return
    wide = Console(width=needed, file=console.file, force_terminal=console.is_terminal, color_system="auto")
    wide.print(shown)


def ensure_port_free(host: str, port: int, option: str) -> None:
    """Refuse to start a server on a port another program holds, with one line naming the port and the option.

    Binding first (as the server will, with SO_REUSEADDR) turns what would be a traceback from deep inside uvicorn or
    prometheus_client, after the database work is done, into a clear error before anything starts.
    """
    from tasker.errors import ConfigurationError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {port} is already in use on {host}: stop the program holding it or choose another"
                    f" with {option}"
                ) from None
            raise ConfigurationError(f"cannot bind {host}:{port} ({option}): {exc.strerror}") from None


def configure_logging(level: str) -> None:
    """Logging of one-shot commands (services use tasker.telemetry directly with the configured format)."""
    from tasker.telemetry import configure_logging as configure

    configure(level, settings().log_format)


async def until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` and set ``stop`` on SIGTERM or SIGINT, so services drain and exit cleanly."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)
