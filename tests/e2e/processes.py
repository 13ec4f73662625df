"""Real ``tasker`` processes for end-to-end tests: started against the test database, always stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent


def start(
    db_url: str, *args: str, log_name: str = "process", extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TASKER_DATABASE_URL": db_url,
        "TASKER_ENV": "test",
        "PYTHONPATH": str(ROOT),
        "TASKER_LOG_FORMAT": "json",
        **(extra_env or {}),
    }
    log = open(ROOT / ".cache" / f"{log_name}-{os.getpid()}-{len(args)}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "tasker.cli.main", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM (drain and exit), then SIGKILL if it does not exit in time; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@contextmanager
def services(
    db_url: str, *commands: list[str], extra_env: dict[str, str] | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = [start(db_url, *command, log_name=command[0], extra_env=extra_env) for command in commands]
    try:
        yield processes
    finally:
        for process in processes:
            stop(process)


async def wait_until_ready(client: httpx.AsyncClient, what: str, timeout: float = 60.0) -> None:
    """Poll ``/health/ready`` of a starting server process until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get("/health/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} did not become ready"
        await asyncio.sleep(0.1)
