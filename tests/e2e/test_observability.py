"""Observability end to end: one trace per task across API, orchestrator and worker; metrics of orchestrator and
worker processes on their ports; JSON logs."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from uuid import UUID

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tasker.store.db import Connection
from tests.api.server import serving
from tests.e2e.processes import ROOT, services
from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled

EXPORTER = InMemorySpanExporter()


def _install_exporter() -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


_install_exporter()


async def test_one_trace_spans_api_orchestrator_and_worker(conn: Connection, db_url: str) -> None:
    await register_fixture_templates(conn)
    EXPORTER.clear()
    with serving(db_url) as api:
        async with running(db_url, ["linear_workflow"]), httpx.AsyncClient(base_url=api, timeout=10) as client:
            body = {"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {"even_number": 2}}
            created = await client.post("/v1/tasks", json=body)
            assert created.status_code == 201
            task_uuid = UUID(created.json()["task_uuid"])
            correlation_id = UUID(created.json()["correlation_id"])
            await wait_settled(conn, task_uuid)
    spans = [s for s in EXPORTER.get_finished_spans() if s.context.trace_id == correlation_id.int]
    names = [s.name for s in spans]
    assert names.count("task.create") == 1
    assert names.count("step.execute") == 4
    assert names.count("step.result_processed") == 4
    assert {s.attributes["tasker.correlation_id"] for s in spans} == {str(correlation_id)}
    executed = [s for s in spans if s.name == "step.execute"]
    assert {s.attributes["tasker.task_uuid"] for s in executed} == {str(task_uuid)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _scrape(port: int, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                if needle in text:
                    return text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{needle} never appeared on port {port}"
            await asyncio.sleep(0.1)


_COMPLETE = 'tasker_step_results_processed_total{result_type="complete"}'


def _counter(text: str, name: str) -> float:
    """A counter's value in a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_processes_serve_metrics_and_write_json_logs(conn: Connection, db_url: str) -> None:
    await register_fixture_templates(conn)
    orchestrator_port, worker_port = _free_port(), _free_port()
    logs = sorted((ROOT / ".cache").glob("orchestrator-*.log"))
    for log in logs:
        log.unlink()
    with services(
        db_url,
        ["orchestrator", "--metrics-port", str(orchestrator_port), "--log-level", "info"],
        ["worker", "-n", "linear_workflow", "--metrics-port", str(worker_port)],
    ):
        created = [await create(conn, "linear_workflow", "mathematical_sequence", {"even_number": n}) for n in (2, 4)]
        for task in created:
            assert (await wait_settled(conn, task.task_uuid))["state"] == "complete"
        worker = await _scrape(worker_port, 'tasker_steps_successes_total{namespace="linear_workflow"} 8.0')
        orchestrator = await _scrape(orchestrator_port, "tasker_tasks_completions_total")
        # results are applied by the worker (fast path) or, when their task was busy, by the orchestrator
        assert _counter(orchestrator, _COMPLETE) + _counter(worker, _COMPLETE) == 8
        assert (
            _counter(orchestrator, "tasker_tasks_completions_total")
            + _counter(worker, "tasker_tasks_completions_total")
            == 2
        )
        assert _counter(worker, "tasker_step_results_applied_by_worker_total") == _counter(worker, _COMPLETE)
        # claimed from the queue, or in the store transaction of the step before (the fast path's continuation)
        claimed = {
            method: _counter(
                worker, f'tasker_steps_claimed_total{{claim_method="{method}",namespace="linear_workflow"}}'
            )
            for method in ("fresh", "in_store")
        }
        assert claimed["fresh"] + claimed["in_store"] == 8 and claimed["fresh"] >= 2
        assert "tasker_step_execution_duration_milliseconds_bucket" in worker
    lines = [line for path in (ROOT / ".cache").glob("orchestrator-*.log") for line in path.read_text().splitlines()]
    started = [json.loads(line) for line in lines if line.startswith("{") and "started" in line]
    assert started and started[0]["level"] == "info" and started[0]["logger"] == "tasker.orchestrator"


def test_json_formatter_carries_ids(tmp_path: Path) -> None:
    import logging

    from tasker.telemetry import JsonFormatter

    record = logging.LogRecord("tasker.worker", logging.WARNING, __file__, 1, "late result %s", ("x",), None)
    record.task_uuid = "t-1"
    record.step_uuid = "s-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {
        "time": entry["time"],
        "level": "warning",
        "logger": "tasker.worker",
        "message": "late result x",
        "task_uuid": "t-1",
        "step_uuid": "s-1",
    }
