"""The web console in Chromium: list and filters, the task page (DAG, errors, audit), DLQ actions, escaping."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.ui.conftest import HOSTILE_ERROR, HOSTILE_INITIATOR, Console, eventually, shot


async def open_console(page: Page, console: Console, hash_path: str) -> None:
    await page.goto(f"{console.ui}#{hash_path}")
    await expect(page.locator("#view[data-ready='true']")).to_be_attached(timeout=30_000)


async def test_task_list_shows_tasks_and_filters_work(page: Page, console: Console) -> None:
    await open_console(page, console, "/tasks")
    rows = page.locator("#task-table tbody tr[data-task-uuid]")
    await expect(rows).to_have_count(2)
    assert {await r.get_attribute("data-task-uuid") for r in await rows.all()} == {
        str(console.failed),
        str(console.complete),
    }
    await shot(page, "task-list")

    await page.fill("#task-filters input[name=namespace]", "console_ui")
    await page.click("#task-filters button[type=submit]")
    await expect(page.locator("#view[data-ready='true'] #task-table tbody tr[data-task-uuid]")).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-task-uuid", str(console.failed))
    assert "namespace=console_ui" in page.url

    await page.fill("#task-filters input[name=namespace]", "")
    await page.select_option("#task-filters select[name=state]", "complete")
    await page.click("#task-filters button[type=submit]")
    await expect(page.locator("#view[data-ready='true'] #task-table tbody tr[data-task-uuid]")).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-task-uuid", str(console.complete))

    await page.fill("#task-filters input[name=name]", "no_such_task")
    await page.click("#task-filters button[type=submit]")
    await expect(page.locator("#view[data-ready='true'] #task-table td.empty")).to_have_text(
        "No task matches these filters."
    )

    # paging: one task a page, newest first (the complete task was created last)
    await open_console(page, console, "/tasks?per_page=1")
    await expect(page.locator(".pager-info")).to_have_text("Page 1 of 2 · 2 tasks")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-task-uuid", str(console.complete))
    await page.click(".pager a[rel=next]")
    await expect(page.locator("#view[data-ready='true'] .pager-info")).to_have_text("Page 2 of 2 · 2 tasks")
    await expect(rows.first).to_have_attribute("data-task-uuid", str(console.failed))


async def test_task_page_draws_the_dag_shows_the_error_and_the_audit_trail(page: Page, console: Console) -> None:
    await open_console(page, console, f"/tasks/{console.failed}")
    states = await console.step_states(console.failed)
    assert states == {
        "validate_order": "complete",
        "price_order": "complete",
        "charge_card": "error",
        "ship_order": "pending",
    }
    nodes = page.locator("svg.dag g.dag-node")
    await expect(nodes).to_have_count(len(states))
    for name, state in states.items():
        node = page.locator(f"svg.dag g.dag-node[data-step='{name}']")
        await expect(node).to_have_attribute("data-state", state)
        assert f"state-{state}" in (await node.get_attribute("class") or "").split()
    edges = {
        (await e.get_attribute("data-from"), await e.get_attribute("data-to"))
        for e in await page.locator("svg.dag path.dag-edge").all()
    }
    assert edges == {
        ("validate_order", "price_order"),
        ("validate_order", "charge_card"),
        ("price_order", "ship_order"),
        ("charge_card", "ship_order"),
    }

    error = page.locator("#step-errors .step-error[data-step='charge_card'] .error-message")
    await expect(error).to_have_text(HOSTILE_ERROR)
    await expect(page.locator("#step-table tr[data-step='charge_card'] td.error-cell")).to_have_text(HOSTILE_ERROR)
    await expect(page.locator("#step-table tr[data-step='charge_card'] td.num").first).to_have_text("1/1")

    audit = page.locator("#audit-trail tbody tr")
    await expect(audit.first).to_be_visible()
    kinds = {await r.get_attribute("data-kind") for r in await audit.all()}
    assert kinds == {"task_transition", "step_transition", "step_result"}
    failure = page.locator("#audit-trail tr[data-kind='step_result'][data-step='charge_card']")
    await expect(failure).to_have_count(1)
    await expect(failure.locator(".bad")).to_have_text("failure")
    await expect(
        page.locator("#audit-trail tr[data-kind='task_transition']").filter(has_text="blocked_by_failures")
    ).to_have_count(1)
    await shot(page, "task-page")


async def test_markup_in_data_renders_as_text(page: Page, console: Console) -> None:
    """A template description, an initiator and an error message holding <script>/<img onerror> show as text."""
    await open_console(page, console, "/tasks")
    await expect(page.locator(f"tr[data-task-uuid='{console.failed}'] td").nth(5)).to_have_text(HOSTILE_INITIATOR)
    await open_console(page, console, f"/tasks/{console.failed}")
    await expect(page.locator("#template-description")).to_have_text(
        'Review <script>window.__injected = 1</script> orders <img src=x onerror="window.__injected = 2">'
    )
    await expect(page.locator(".step-error .error-message")).to_have_text(HOSTILE_ERROR)
    await open_console(page, console, "/dlq")
    await expect(page.locator(".dlq-entry .error-message")).to_have_text(HOSTILE_ERROR)
    assert await page.locator("#view script, #view img, #view b").count() == 0
    assert await page.evaluate("window.__injected") is None


async def test_dlq_action_in_the_browser_changes_the_database(page: Page, console: Console) -> None:
    await open_console(page, console, "/dlq")
    entry = page.locator(f".dlq-entry[data-task-uuid='{console.failed}']")
    await expect(entry).to_have_count(1)
    await expect(entry.locator(".failed-steps li[data-step='charge_card']")).to_be_visible()
    await shot(page, "dlq")

    # cancelling the confirmation changes nothing
    await entry.locator("li[data-step='charge_card'] button[data-action='resolve']").click()
    await page.click("dialog#confirm button[data-action='cancel']")
    await expect(page.locator("dialog#confirm")).not_to_be_visible()
    assert (await console.step_states(console.failed))["charge_card"] == "error"

    await entry.locator("li[data-step='charge_card'] button[data-action='resolve']").click()
    dialog = page.locator("dialog#confirm")
    await expect(dialog).to_be_visible()
    await dialog.locator("input[name=by]").fill("operator@example.com")
    await dialog.locator("input[name=reason]").fill("charged by phone")
    await shot(page, "dlq-confirm")
    await dialog.locator("button[data-action='confirm']").click()
    await expect(page.locator("#flash")).to_contain_text("step charge_card done")

    states = await eventually(
        lambda: console.step_states(console.failed), lambda s: s["ship_order"] == "complete", timeout=60
    )
    assert states["charge_card"] == "resolved_manually"
    assert states["ship_order"] == "complete"  # the task resumed: the dependent step ran
    rows = await console.dlq_rows(console.failed)
    assert [(r["resolution_status"], r["resolved_by"]) for r in rows] == [("manually_resolved", "operator@example.com")]
    # the pending list no longer shows the entry; the task page shows the operator's transition
    await open_console(page, console, "/dlq")
    await expect(page.locator(f".dlq-entry[data-task-uuid='{console.failed}']")).to_have_count(0)
    await open_console(page, console, f"/tasks/{console.failed}")
    await expect(
        page.locator("#audit-trail tr[data-kind='step_transition'][data-step='charge_card']").filter(
            has_text="operator@example.com"
        )
    ).to_have_count(1)


async def test_complete_a_step_manually_from_the_task_page(page: Page, console: Console) -> None:
    await open_console(page, console, f"/tasks/{console.failed}")
    await page.click("#step-table tr[data-step='charge_card'] button[data-action='complete']")
    dialog = page.locator("dialog#confirm")
    await dialog.locator("textarea[name=result]").fill("{not json")
    await dialog.locator("button[data-action='confirm']").click()
    await expect(dialog.locator(".dialog-problem")).to_contain_text("not valid JSON")
    await dialog.locator("textarea[name=result]").fill('{"charged": 42}')
    await dialog.locator("button[data-action='confirm']").click()
    await expect(page.locator("#flash")).to_contain_text("Complete manually: step charge_card done")
    await eventually(lambda: console.step_states(console.failed), lambda s: s["ship_order"] == "complete", 60)
    row = await (
        await console.conn.execute(
            "SELECT ws.results FROM tasker.workflow_steps ws JOIN tasker.named_steps n USING (named_step_uuid)"
            " WHERE ws.task_uuid = %s AND n.name = 'charge_card'",
            [console.failed],
        )
    ).fetchone()
    assert row is not None and row["results"]["result"] == {"charged": 42}
