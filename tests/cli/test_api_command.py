"""``tasker api`` as a real process serves the API on the port it is given."""

from __future__ import annotations

import time

import httpx

from tests.api.server import free_port, register_templates
from tests.cli.coverage import covers, record
from tests.e2e.processes import services


@covers("api")
def test_tasker_api_serves_on_the_given_port(db_url: str) -> None:
    register_templates(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    record(["api"])
    with services(db_url, ["api", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]):
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tasker api did not come up"
            time.sleep(0.1)
        body = {"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {"even_number": 6}}
        created = httpx.post(f"{base}/v1/tasks", json=body, timeout=10)
        assert created.status_code == 201, created.text
        assert httpx.get(f"{base}/v1/tasks/{created.json()['task_uuid']}", timeout=10).json()["total_steps"] == 4
