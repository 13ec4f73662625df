"""The handler allow-list: a worker started with TASKER_HANDLER_ALLOWED_MODULES imports handlers only from those
modules, so a registered template naming os.system fails for good instead of running it."""

from __future__ import annotations

import pytest

from tasker.config import load_settings
from tasker.store.db import Connection
from tasker.worker.registry import HandlerNotAllowedError, HandlerRegistry
from tests.e2e import processes
from tests.e2e.runtime import create, running, wait_settled
from tests.worker.support import NAMESPACE, only_step, register_worker_templates


async def test_a_worker_refuses_handlers_outside_its_allowed_modules(
    conn: Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register_worker_templates(conn)
    monkeypatch.setenv("TASKER_HANDLER_ALLOWED_MODULES", "tests.worker, tests.handlers")
    worker = processes.start(db_url, "worker", "-n", NAMESPACE, log_name="worker-allowed")
    try:
        async with running(db_url, [NAMESPACE], workers=0):
            refused = await create(conn, NAMESPACE, "os_system", {})
            failed = await wait_settled(conn, refused.task_uuid, timeout=90)
            allowed = await create(conn, NAMESPACE, "quick", {})
            completed = await wait_settled(conn, allowed.task_uuid, timeout=90)
    finally:
        processes.stop(worker)
    assert failed["state"] in {"blocked_by_failures", "error"}
    step = await only_step(conn, refused.task_uuid)
    error = step["results"]["error"]
    assert error["error_type"] == "handler_not_allowed" and error["retryable"] is False
    assert "os.system" in error["message"] and "tests.worker" in error["message"]
    assert step["attempts"] == 1, "a refused handler is a permanent failure"
    assert completed["state"] == "complete"


def test_the_allow_list_matches_module_prefixes_before_importing() -> None:
    registry = HandlerRegistry()
    allowed = ["tests.worker"]
    assert registry.resolve("tests.worker.handlers.Quick", allowed_modules=allowed) is not None
    for name in ["os.system", "tests.workers_elsewhere.Handler", "subprocess.run"]:
        with pytest.raises(HandlerNotAllowedError, match="outside the allowed handler modules"):
            registry.resolve(name, allowed_modules=allowed)
    assert registry.resolve("os.getcwd") is not None  # no allow-list: anything importable


def test_the_setting_reads_a_list_or_comma_separated_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_HANDLER_ALLOWED_MODULES", "myapp.handlers, other")
    assert load_settings().handler_allowed_modules == ["myapp.handlers", "other"]
    monkeypatch.setenv("TASKER_HANDLER_ALLOWED_MODULES", '["myapp.handlers"]')
    assert load_settings().handler_allowed_modules == ["myapp.handlers"]
    monkeypatch.delenv("TASKER_HANDLER_ALLOWED_MODULES")
    assert load_settings().handler_allowed_modules is None
