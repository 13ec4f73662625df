"""The console with auth on: the page itself is public, no data without credentials, 403s said plainly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.ui.conftest import Console, console_on, shot

FULL = "ui-test-full-key"
DLQ_ONLY = "ui-test-dlq-only-key"
KEYS = [{"key": FULL, "permissions": ["*"]}, {"key": DLQ_ONLY, "permissions": ["dlq:read"]}]


@pytest.fixture
async def guarded(db_url: str) -> AsyncIterator[Console]:
    async with console_on(db_url, headers={"X-API-Key": FULL}, auth_enabled=True, api_keys=KEYS) as running:
        yield running


async def sign_in(page: Page, secret: str) -> None:
    await page.fill("#signin input[name=secret]", secret)
    await page.click("#signin button[type=submit]")


async def test_console_needs_credentials_for_data_and_works_with_them(page: Page, guarded: Console) -> None:
    # the console's files are served without credentials; the data is not
    assert httpx.get(guarded.ui, timeout=10).status_code == 200
    assert httpx.get(f"{guarded.base}/ui/app.js", timeout=10).status_code == 200
    assert httpx.get(f"{guarded.base}/v1/tasks", timeout=10).status_code == 401

    await page.goto(f"{guarded.ui}#/tasks")
    await expect(page.locator("#view[data-ready='true'] [data-page='signin']")).to_be_visible()
    await expect(page.locator("#auth-problem")).to_contain_text("credentials required")
    assert await page.locator("tr[data-task-uuid]").count() == 0
    await shot(page, "sign-in")

    await sign_in(page, "not-a-key")
    await expect(page.locator("#view[data-ready='true'] #auth-problem")).to_have_text("invalid API key")
    assert await page.evaluate("sessionStorage.getItem('tasker.console.credentials')") is None  # refused, forgotten
    await expect(page.locator("#session")).to_have_text("No credentials")

    await sign_in(page, DLQ_ONLY)
    await expect(page.locator("#view[data-ready='true'] #problem")).to_have_text(
        "Permission denied: missing permission tasks:list."
    )
    assert await page.locator("tr[data-task-uuid]").count() == 0
    await page.goto(f"{guarded.ui}#/dlq")  # what this key may read, it sees
    await expect(page.locator(f".dlq-entry[data-task-uuid='{guarded.failed}']")).to_have_count(1)

    await page.goto(f"{guarded.ui}#/tasks")
    await page.click("#sign-out")
    await expect(page.locator("#view[data-ready='true'] [data-page='signin']")).to_be_visible()
    await sign_in(page, FULL)
    rows = page.locator("#view[data-ready='true'] #task-table tbody tr[data-task-uuid]")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#session")).to_contain_text("Signed in with an API key")
    stored = await page.evaluate("JSON.parse(sessionStorage.getItem('tasker.console.credentials'))")
    assert stored == {"kind": "api_key", "value": FULL}

    # kept for the tab's session: a reload still has data, and the key is nowhere in the page
    await page.reload()
    await expect(rows).to_have_count(2)
    assert FULL not in await page.content()
    await page.goto(f"{guarded.ui}#/tasks/{guarded.failed}")
    await expect(page.locator("#view[data-ready='true'] svg.dag g.dag-node")).to_have_count(4)


async def test_a_bearer_token_is_sent_as_authorization(page: Page, guarded: Console) -> None:
    """No JWT key is configured here, so the server's own refusal of bearer tokens must reach the operator."""
    await page.goto(f"{guarded.ui}#/tasks")
    await page.select_option("#signin select[name=kind]", "bearer")
    await sign_in(page, "eyJhbGciOiJSUzI1NiJ9.e30.sig")
    await expect(page.locator("#view[data-ready='true'] #auth-problem")).to_have_text(
        "bearer tokens are not accepted: no JWT public key is configured"
    )
