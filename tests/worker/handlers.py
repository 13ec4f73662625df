"""Handlers for the worker's robustness tests: gated runs that count themselves, an async function handler,
one that raises SystemExit, one that blocks the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from tasker import StepContext, StepHandler, step_handler
from tasker.worker.handler import CheckpointRejectedError


def _note(path: str, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


class Gated(StepHandler):
    """Notes each run in ``context.run_file``, then waits (up to 60 s) until ``context.release_file`` exists; with
    ``context.checkpoint_file`` it then saves a checkpoint and notes there whether it was stored or refused."""

    def call(self, context: StepContext) -> Any:
        _note(context.get_input("run_file"), f"{os.getpid()} {context.attempt}")
        release = Path(context.get_input("release_file"))
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        checkpoint_file = context.get_input("checkpoint_file")
        if checkpoint_file:
            try:
                context.checkpoint_yield(cursor=1, items_processed=1)
                _note(checkpoint_file, "stored")
            except CheckpointRejectedError:
                _note(checkpoint_file, "refused")
        return {"released": release.exists(), "attempt": context.attempt}


class Quick(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"quick": True}


class Exit(StepHandler):
    """Raises SystemExit, as a handler calling ``sys.exit()`` would."""

    def call(self, context: StepContext) -> Any:
        raise SystemExit(3)


class BlockTheLoop(StepHandler):
    """An async handler doing blocking work: ``time.sleep`` holds the worker's event loop for ``block_seconds``."""

    async def call(self, context: StepContext) -> Any:
        _note(context.get_input("run_file"), f"{os.getpid()} {context.attempt}")
        time.sleep(float(context.get_input("block_seconds")))
        return {"blocked": True}


@step_handler("tests.worker.async_function")
async def async_function(context: StepContext) -> Any:
    """An ``async def`` registered with ``@step_handler``: notes where it runs, then sleeps until cancelled."""
    marker = context.get_input("marker_file")
    on_loop = threading.current_thread() is threading.main_thread()
    _note(marker, f"started on_loop={on_loop}")
    try:
        await asyncio.sleep(float(context.get_input("sleep_seconds", 30)))
    except asyncio.CancelledError:
        _note(marker, "cancelled")
        raise
    return {"slept": True}
