"""What users hit first, through the installed ``tasker`` entry point: errors the CLI can foresee are one line on
stderr with a non-zero exit, never a traceback; a busy port is named; ``--version`` answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tasker
from tests.cli.coverage import record

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = Path(sys.executable).parent / "tasker"
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``tasker <args>`` as a real process of the installed console script."""
    record(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env.update(TASKER_DATABASE_URL=db_url, TASKER_ENV="test", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [str(ENTRY_POINT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The process failed with exit 1 or 2 and said why in exactly one line (nothing else on stdout or stderr)."""
    output = (result.stderr + result.stdout).strip()
    assert result.returncode in (1, 2), f"exit {result.returncode}: {output}"
    assert "Traceback" not in output and len(output.splitlines()) == 1, output
    for text in expected:
        assert text in output, output
    return output


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_version() -> None:
    done = subprocess.run([str(ENTRY_POINT), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"tasker {tasker.__version__}", done.stdout + done.stderr


def test_database_unavailable_is_one_line() -> None:
    for command in (["db", "migrate"], ["task", "list"], ["template", "list"], ["dlq", "stats"], ["db", "schema-doc"]):
        one_line_error(run(NO_DATABASE, *command), "cannot connect to PostgreSQL")


def test_hostile_template_is_one_line(db_url: str, tmp_path: Path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text("[" * 1000)
    for command in ("validate", "register"):
        one_line_error(run(db_url, "template", command, str(nested)), "nested.yaml")


def test_unknown_template_and_bad_input_are_one_line(db_url: str) -> None:
    one_line_error(run(db_url, "task", "create", "nowhere", "nothing"), "NOT_FOUND")
    one_line_error(run(db_url, "task", "create", "a", "b", "--context", "[1]"), "--context must be a JSON object")
    one_line_error(run(db_url, "template", "validate", "/no/such/templates"), "/no/such/templates")


def test_busy_api_port_is_named(db_url: str, busy_port: int) -> None:
    one_line_error(run(db_url, "api", "--host", "127.0.0.1", "--port", str(busy_port)), f"port {busy_port}", "in use")


def test_busy_serve_port_is_named(db_url: str, busy_port: int) -> None:
    result = run(db_url, "serve", "-n", "linear_workflow", "--port", str(busy_port))
    one_line_error(result, f"port {busy_port}", "in use", "--port")


def test_busy_metrics_port_is_named(db_url: str, busy_port: int) -> None:
    for command in (["worker", "-n", "linear_workflow"], ["orchestrator"], ["serve", "-n", "x", "--no-api"]):
        result = run(db_url, *command, "--metrics-port", str(busy_port))
        one_line_error(result, f"port {busy_port}", "in use", "--metrics-port")


def test_unreachable_api_and_unwritable_file_are_one_line(db_url: str, tmp_path: Path) -> None:
    one_line_error(run(db_url, "task", "--api-url", "http://127.0.0.1:1", "list"), "cannot reach the Tasker API")
    one_line_error(run(db_url, "health", "--api-url", "http://127.0.0.1:1"), "cannot reach the Tasker API")
    target = tmp_path / "missing-dir" / "schema.md"
    one_line_error(run(db_url, "db", "schema-doc", "-o", str(target)), str(target))
