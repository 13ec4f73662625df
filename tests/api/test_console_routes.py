"""What the web console needs from the server without a browser: ``/ui`` served (public, with a strict CSP) from
files that ship in the package, and ``GET /v1/tasks/{uuid}/audit``, the task's whole audit trail."""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tasker.api.ui import ASSETS
from tasker.store.db import Connection
from tests.api.server import register_templates, serving
from tests.e2e.runtime import create, running, wait_settled

ROOT = Path(__file__).resolve().parent.parent.parent
FULL = {"X-API-Key": "console-full"}
TASKS_ONLY = {"X-API-Key": "console-tasks-only"}
KEYS = [
    {"key": "console-full", "permissions": ["*"]},
    {"key": "console-tasks-only", "permissions": ["tasks:read"]},
]


@pytest.fixture
def guarded(db_url: str) -> Iterator[str]:
    register_templates(db_url)
    with serving(db_url, auth_enabled=True, api_keys=KEYS) as base:
        yield base


def test_the_console_is_served_without_credentials_with_a_strict_policy(guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=10) as http:
        redirect = http.get("/ui")
        assert redirect.status_code == 307 and redirect.headers["location"] == "/ui/"
        page = http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="app.js">' in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
        script = http.get("/ui/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert http.get("/ui/no-such-file.js").status_code == 404
        assert http.get("/v1/tasks").status_code == 401  # the console's files are public, the data is not


def test_every_console_asset_ships_in_the_wheel() -> None:
    """The package-data pattern is one directory deep: every asset must sit directly in static/ui, and be listed."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "api/static/ui/*" in pyproject["tool"]["setuptools"]["package-data"]["tasker"]
    files = list(ASSETS.iterdir())
    assert {f.name for f in files} >= {"index.html", "app.js", "api.js", "dom.js", "console.css"}
    assert all(f.is_file() for f in files), "subdirectories of static/ui would not be packaged"
    imported = {
        line.split('"./')[1].split('"')[0]
        for f in files
        if f.suffix == ".js"
        for line in f.read_text().splitlines()
        if line.startswith("import ") and '"./' in line
    }
    assert imported <= {f.name for f in files}


def test_no_console_script_parses_data_as_html() -> None:
    """The console renders data only as text nodes and attributes (see dom.js); these sinks are banned outright."""
    for script in ASSETS.glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{script.name} uses {sink}"


async def test_task_audit_trail_lists_transitions_and_result_rows(guarded: str, conn: Connection, db_url: str) -> None:
    async with running(db_url, ["linear_workflow"]):
        created = await create(conn, "linear_workflow", "mathematical_sequence", {"even_number": 6})
        await wait_settled(conn, created.task_uuid)
    async with httpx.AsyncClient(base_url=guarded, timeout=30) as http:
        url = f"/v1/tasks/{created.task_uuid}/audit"
        response = await http.get(url, headers=FULL)
        assert response.status_code == 200, response.text
        body = response.json()
        events = body["events"]
        counts = await (
            await conn.execute(
                "SELECT (SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = %(t)s) AS task,"
                " (SELECT count(*) FROM tasker.workflow_step_transitions st JOIN tasker.workflow_steps ws"
                "   USING (workflow_step_uuid) WHERE ws.task_uuid = %(t)s) AS step,"
                " (SELECT count(*) FROM tasker.workflow_step_result_audit WHERE task_uuid = %(t)s) AS result",
                {"t": created.task_uuid},
            )
        ).fetchone()
        assert counts is not None
        kinds = ("task_transition", "step_transition", "step_result")
        by_kind = {k: sum(e["kind"] == k for e in events) for k in kinds}
        assert by_kind == {
            "task_transition": counts["task"],
            "step_transition": counts["step"],
            "step_result": counts["result"],
        }
        assert counts["result"] == 4 and body["truncated"] is False
        assert [e["at"] for e in events] == sorted(e["at"] for e in events)
        assert events[0]["kind"] == "task_transition" and events[0]["to_state"] == "pending"
        assert events[-1]["to_state"] == "complete"
        assert all(e["at"].endswith("Z") for e in events)
        assert all(e["step_name"] for e in events if e["kind"] != "task_transition")

        cut = (await http.get(url, params={"limit": 3}, headers=FULL)).json()
        assert cut["truncated"] is True and cut["events"] == events[:3]

        assert (await http.get(url)).status_code == 401
        forbidden = await http.get(url, headers=TASKS_ONLY)
        assert forbidden.status_code == 403 and "steps:read" in forbidden.json()["error"]["message"]
        missing = await http.get(f"/v1/tasks/{uuid.uuid4()}/audit", headers=FULL)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        bad = await http.get(url, params={"limit": 0}, headers=FULL)
        assert bad.status_code == 400
