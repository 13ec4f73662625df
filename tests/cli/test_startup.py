"""``tasker --help`` starts fast because the CLI imports the server, engine, database and telemetry libraries only
when a command that needs them runs (every CLI call paid for all of them before)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "fastapi", "uvicorn", "opentelemetry", "jsonschema", "psycopg", "psycopg_pool", "prometheus_client", "httpx",
    "yaml", "tasker.config", "tasker.model", "tasker.engine", "tasker.api", "tasker.worker", "tasker.service",
    "tasker.store", "tasker.messaging", "tasker.client",
)  # fmt: skip
# pydantic is not in the list: Typer itself loads it to coerce option values (typer._adapters)

PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["tasker", *json.loads(sys.argv[1])]
from tasker.cli.main import app
try:
    app()
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
sys.stderr.write("\\nLOADED " + json.dumps(loaded) + "\\n")
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["task", "--help"], ["dlq", "--help"], ["template", "--help"], ["worker", "--help"], []]
)
def test_help_does_not_import_heavy_modules(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Usage" in done.stdout, done.stdout + done.stderr
    loaded = json.loads(done.stderr.rsplit("LOADED ", 1)[1])
    assert loaded == [], f"`tasker {' '.join(args)}` imported {loaded}"
