"""The web console in a real headless Chromium (Debian's, driven by Playwright) against a real API server.

``python3 dev.py test`` installs Debian's chromium when /usr/bin/chromium is missing and it runs as root; without
it these tests skip, naming the missing browser. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tasker.store.db import Connection, connect
from tasker.store.templates import template_register_paths
from tests.api.server import serving
from tests.e2e.runtime import register_fixture_templates, running, wait_settled

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = ROOT / "artifacts" / "ui"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# markup in data the console must show as text, never run
HOSTILE_ERROR = '<script>window.__injected = 3</script><b>card declined</b> & "quoted"'
HOSTILE_INITIATOR = '<img src=x onerror="window.__injected = 4">'
T = TypeVar("T")
WAIT_MS = 30_000  # a generous deadline for DOM expectations: the machine may be busy with parallel tests
expect.set_options(timeout=WAIT_MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium ({CHROMIUM}) is not installed: `python3 dev.py test` installs it as root")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not problems, f"JavaScript errors on the page: {problems}"


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def eventually(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Poll ``read`` until ``ok`` holds (the database, after an action in the browser); returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@dataclass
class Console:
    """A running API on a database holding a failed (blocked, DLQ'd) task and a complete one."""

    base: str
    conn: Connection
    failed: UUID
    complete: UUID

    @property
    def ui(self) -> str:
        return f"{self.base}/ui/"

    async def step_states(self, task_uuid: UUID) -> dict[str, str]:
        rows = await (
            await self.conn.execute(
                "SELECT n.name, COALESCE(t.to_state, 'pending') AS state FROM tasker.workflow_steps ws"
                " JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid"
                " LEFT JOIN tasker.workflow_step_transitions t"
                "   ON t.workflow_step_uuid = ws.workflow_step_uuid AND t.most_recent"
                " WHERE ws.task_uuid = %s",
                [task_uuid],
            )
        ).fetchall()
        return {r["name"]: r["state"] for r in rows}

    async def dlq_rows(self, task_uuid: UUID) -> list[dict[str, Any]]:
        return await (
            await self.conn.execute(
                "SELECT resolution_status::text, resolved_by FROM tasker.tasks_dlq WHERE task_uuid = %s", [task_uuid]
            )
        ).fetchall()


def create_via_api(base: str, headers: dict[str, str], body: dict[str, Any]) -> UUID:
    response = httpx.post(f"{base}/v1/tasks", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return UUID(response.json()["task_uuid"])


@asynccontextmanager
async def console_on(db_url: str, headers: dict[str, str] | None = None, **settings: Any) -> AsyncIterator[Console]:
    """Serve the API (``settings``), run an orchestrator and a worker, and create the two tasks through the API."""
    conn = await connect(db_url)
    try:
        await register_fixture_templates(conn)
        await template_register_paths(conn, TEMPLATES)
        with serving(db_url, **settings) as base:
            async with running(db_url, ["console_ui", "linear_workflow"]):
                sent = headers or {}
                failed = create_via_api(
                    base,
                    sent,
                    {
                        "namespace": "console_ui",
                        "name": "order_review",
                        "version": "1.0.0",
                        "context": {"error_message": HOSTILE_ERROR},
                        "initiator": HOSTILE_INITIATOR,
                    },
                )
                complete = create_via_api(
                    base,
                    sent,
                    {
                        "namespace": "linear_workflow",
                        "name": "mathematical_sequence",
                        "version": "1.0.0",
                        "context": {"even_number": 6},
                        "initiator": "ui-test",
                    },
                )
                assert (await wait_settled(conn, failed, timeout=120))["state"] == "blocked_by_failures"
                assert (await wait_settled(conn, complete, timeout=120))["state"] == "complete"
                yield Console(base=base, conn=conn, failed=failed, complete=complete)
    finally:
        await conn.close()


@pytest.fixture
async def console(db_url: str) -> AsyncIterator[Console]:
    async with console_on(db_url) as running_console:
        yield running_console
