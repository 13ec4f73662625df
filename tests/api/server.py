"""A real API server for tests: uvicorn in a background thread on a free 127.0.0.1 port, on the test database."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from tasker.api.app import create_app
from tasker.config import Settings
from tasker.store.db import connect
from tests.e2e.runtime import register_fixture_templates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_templates(db_url: str) -> None:
    async def _register() -> None:
        conn = await connect(db_url)
        try:
            await register_fixture_templates(conn)
        finally:
            await conn.close()

    asyncio.run(_register())


@contextmanager
def serving(db_url: str, **settings: Any) -> Iterator[str]:
    """Serve the API; yields its base URL. Settings default to the test environment with auth off."""
    app = create_app(Settings(env="test", pool_min_size=1, pool_max_size=4, **settings), database_url=db_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        httpx.get(f"{base}/health", timeout=5).raise_for_status()
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
