"""Every route over real HTTP against a real server and database: success paths and error paths."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.api.server import register_templates, serving

LINEAR = {"namespace": "linear_workflow", "name": "mathematical_sequence", "version": "1.0.0"}


def counts(db_url: str) -> tuple[int, int, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM tasker.tasks), (SELECT count(*) FROM tasker.workflow_steps),"
            " (SELECT count(*) FROM tasker.task_transitions)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def create(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {**LINEAR, "context": {"even_number": 6}, "initiator": "tests", **extra}
    response = http.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    return dict(error)


def test_create_returns_201_with_the_task_and_its_enqueued_first_step(http: httpx.Client) -> None:
    task = create(http, tags=["smoke"], priority=5)
    assert task["namespace"] == "linear_workflow" and task["name"] == "mathematical_sequence"
    assert task["status"] == "steps_in_process"
    assert task["total_steps"] == 4 and task["tags"] == ["smoke"] and task["priority"] == 5
    states = {s["name"]: s["current_state"] for s in task["steps"]}
    assert states == {
        "linear_step_1": "enqueued",
        "linear_step_2": "pending",
        "linear_step_3": "pending",
        "linear_step_4": "pending",
    }


def test_get_list_summary_and_steps(http: httpx.Client) -> None:
    first = create(http, context={"even_number": 2})
    second = create(http, context={"even_number": 4})
    got = http.get(f"/v1/tasks/{first['task_uuid']}").json()
    assert got["task_uuid"] == first["task_uuid"] and got["context"] == {"even_number": 2}

    listed = http.get("/v1/tasks", params={"namespace": "linear_workflow", "per_page": 1}).json()
    assert listed["pagination"] == {
        "page": 1,
        "per_page": 1,
        "total_count": 2,
        "total_pages": 2,
        "has_next": True,
        "has_previous": False,
    }
    assert listed["tasks"][0]["task_uuid"] == second["task_uuid"], "newest first"
    page2 = http.get("/v1/tasks", params={"namespace": "linear_workflow", "per_page": 1, "page": 2}).json()
    assert page2["tasks"][0]["task_uuid"] == first["task_uuid"] and page2["pagination"]["has_previous"]
    assert http.get("/v1/tasks", params={"namespace": "nope"}).json()["pagination"]["total_count"] == 0
    assert http.get("/v1/tasks", params={"status": "steps_in_process"}).json()["pagination"]["total_count"] == 2
    assert http.get("/v1/tasks", params={"task_name": "other"}).json()["pagination"]["total_count"] == 0

    summary = http.get(f"/v1/tasks/{first['task_uuid']}/summary").json()
    assert summary["task"]["task_uuid"] == first["task_uuid"]
    assert next(s["name"] for s in summary["template"]["steps"]) == "linear_step_1"
    assert {"from_step": "linear_step_1", "to_step": "linear_step_2"} in summary["edges"]
    assert summary["dlq"]["in_dlq"] is False

    steps = http.get(f"/v1/tasks/{first['task_uuid']}/workflow_steps").json()
    assert [s["name"] for s in steps] == ["linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"]
    one = http.get(f"/v1/tasks/{first['task_uuid']}/workflow_steps/{steps[1]['step_uuid']}").json()
    assert one["name"] == "linear_step_2" and one["dependencies_satisfied"] is False and one["total_parents"] == 1


def test_cancel_then_cancel_again_is_a_conflict(http: httpx.Client) -> None:
    task = create(http)
    cancelled = http.delete(f"/v1/tasks/{task['task_uuid']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    error = error_of(http.delete(f"/v1/tasks/{task['task_uuid']}"), 409)
    assert "already ended" in error["message"]


def test_step_actions_and_audit(http: httpx.Client) -> None:
    task = create(http)
    step = task["steps"][0]
    url = f"/v1/tasks/{task['task_uuid']}/workflow_steps/{step['step_uuid']}"
    refused = error_of(http.patch(url, json={"action_type": "reset_for_retry", "reason": "x", "reset_by": "ops"}), 409)
    assert "only a step in 'error'" in refused["message"]
    done = http.patch(
        url,
        json={
            "action_type": "complete_manually",
            "completion_data": {"result": {"value": 36}},
            "reason": "done by hand",
            "completed_by": "ops",
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["current_state"] == "complete"
    assert done.json()["results"]["result"] == {"value": 36}
    resolved = http.patch(
        f"/v1/tasks/{task['task_uuid']}/workflow_steps/{task['steps'][1]['step_uuid']}",
        json={"action_type": "resolve_manually", "reason": "skip", "resolved_by": "ops"},
    )
    assert resolved.status_code == 200 and resolved.json()["current_state"] == "resolved_manually"
    bad = error_of(http.patch(url, json={"action_type": "explode"}), 400)
    assert "action_type" in bad["message"]
    audit = http.get(f"{url}/audit")
    assert audit.status_code == 200 and audit.json() == []


def test_audit_rows_after_a_real_run(db_url: str) -> None:
    import asyncio

    from tests.e2e.runtime import running

    register_templates(db_url)

    async def run_one(base: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with running(db_url, ["linear_workflow"]), httpx.AsyncClient(base_url=base) as client:
            created = (await client.post("/v1/tasks", json={**LINEAR, "context": {"even_number": 6}})).json()
            for _ in range(300):
                task = (await client.get(f"/v1/tasks/{created['task_uuid']}")).json()
                if task["status"] == "complete":
                    break
                await asyncio.sleep(0.05)
            step = task["steps"][0]
            rows = (await client.get(f"/v1/tasks/{task['task_uuid']}/workflow_steps/{step['step_uuid']}/audit")).json()
            return task, rows

    with serving(db_url) as base:
        task, rows = asyncio.run(run_one(base))
    assert task["status"] == "complete", task
    assert task["steps"][3]["results"]["result"]["result"] == 69
    assert len(rows) == 1
    row = rows[0]
    assert row["success"] is True and row["step_name"] == "linear_step_1"
    assert row["from_state"] == "in_progress" and row["to_state"] == "enqueued_for_orchestration"
    assert row["result"]["result"]["result"] == 36
    assert set(row) >= {"audit_uuid", "workflow_step_uuid", "transition_uuid", "task_uuid", "recorded_at",
                        "worker_uuid", "correlation_id", "execution_time_ms"}  # fmt: skip


def test_templates_routes(http: httpx.Client) -> None:
    listed = http.get("/v1/templates", params={"namespace": "linear_workflow"}).json()
    assert listed["total_count"] == 1
    assert listed["templates"][0] == {
        "name": "mathematical_sequence",
        "namespace": "linear_workflow",
        "version": "1.0.0",
        "description": "Four arithmetic steps, each using the previous step's result",
        "step_count": 4,
    }
    assert listed["namespaces"] == [{"name": "linear_workflow", "description": None, "template_count": 1}]
    detail = http.get("/v1/templates/linear_workflow/mathematical_sequence/1.0.0").json()
    assert [s["name"] for s in detail["steps"]][:2] == ["linear_step_1", "linear_step_2"]
    assert detail["configuration"]["namespace_name"] == "linear_workflow"
    missing = error_of(http.get("/v1/templates/linear_workflow/mathematical_sequence/9.9.9"), 404)
    assert "9.9.9" in missing["message"]


def test_template_validate_accepts_yaml_and_json_and_reports_errors(http: httpx.Client, db_url: str) -> None:
    before = counts(db_url)
    yaml_text = "name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: {callable: x.Y}\n"
    ok = http.post("/v1/templates/validate", json={"yaml": yaml_text}).json()
    assert ok == {"valid": True, "errors": [], "namespace": "ns", "name": "t", "version": "1.0.0", "step_count": 1}
    raw = http.post("/v1/templates/validate", content=yaml_text, headers={"content-type": "application/yaml"})
    assert raw.json()["valid"] is True
    as_json = http.post(
        "/v1/templates/validate",
        json={"template": {"name": "t", "namespace_name": "ns", "version": "1.0.0",
                           "steps": [{"name": "a", "handler": {"callable": "x"}, "depends_on": ["ghost"]}]}},
    ).json()  # fmt: skip
    assert as_json["valid"] is False and "ghost" in as_json["errors"][0]
    assert counts(db_url) == before


def test_analytics(http: httpx.Client) -> None:
    create(http)
    performance = http.get("/v1/analytics/performance", params={"hours": 1}).json()
    assert performance["total_tasks"] == 1 and performance["active_tasks"] == 1
    assert performance["system_health_score"] == 1.0
    bottlenecks = http.get("/v1/analytics/bottlenecks", params={"limit": 5, "min_executions": 1}).json()
    assert bottlenecks["resource_utilization"]["system_health"]["total_tasks"] == 1
    assert bottlenecks["resource_utilization"]["system_health"]["steps"]["enqueued"] == 1
    assert isinstance(bottlenecks["slow_steps"], list)
    error_of(http.get("/v1/analytics/performance", params={"hours": 0}), 400)


def test_health_metrics_and_openapi(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "healthy"
    assert http.get("/health/live").status_code == 200
    ready = http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["web_database"]["status"] == "healthy"
    detailed = http.get("/health/detailed").json()
    assert "queue_depth" in detailed["info"] and "system_health" in detailed["info"]
    create(http)
    text = http.get("/metrics").text
    assert 'tasker_tasks{namespace="linear_workflow",state="steps_in_process"} 1.0' in text
    assert 'tasker_steps{namespace="linear_workflow",state="pending"} 3.0' in text
    assert 'tasker_steps{namespace="linear_workflow",state="enqueued"} 1.0' in text
    requested = 'tasker_tasks_requests_total{namespace="linear_workflow"} '
    before = float(text.split(requested)[1].split()[0])
    create(http, context={"even_number": 12})
    after = float(http.get("/metrics").text.split(requested)[1].split()[0])
    assert after == before + 1, "the engine's counters move as tasks are created"
    assert 'tasker_http_requests_total{method="POST",route="/v1/tasks",status="201"} 1.0' in text
    document = http.get("/api-docs/openapi.json").json()
    assert "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}/audit" in document["paths"]
    assert "requestBody" in document["paths"]["/v1/tasks"]["post"]
    assert http.get("/openapi.json").json()["paths"] == document["paths"]


def test_unknown_objects_are_404(http: httpx.Client) -> None:
    ghost = "01900000-0000-7000-8000-000000000000"
    assert "does not exist" in error_of(http.get(f"/v1/tasks/{ghost}"), 404)["message"]
    error_of(http.get(f"/v1/tasks/{ghost}/workflow_steps"), 404)
    error_of(http.get(f"/v1/tasks/{ghost}/summary"), 404)
    error_of(http.delete(f"/v1/tasks/{ghost}"), 404)
    task = create(http)
    step = error_of(http.get(f"/v1/tasks/{task['task_uuid']}/workflow_steps/{ghost}"), 404)
    assert "has no step" in step["message"]
    error_of(http.get(f"/v1/tasks/{task['task_uuid']}/workflow_steps/{ghost}/audit"), 404)
    patched = http.patch(
        f"/v1/tasks/{task['task_uuid']}/workflow_steps/{ghost}", json={"action_type": "resolve_manually"}
    )
    error_of(patched, 404)
    template = error_of(http.post("/v1/tasks", json={**LINEAR, "name": "nope", "context": {}}), 404)
    assert template["code"] == "NOT_FOUND" and "nope" in template["message"]


def test_duplicate_identity_is_409_naming_the_existing_task(http: httpx.Client, db_url: str) -> None:
    first = create(http)
    before = counts(db_url)
    error = error_of(http.post("/v1/tasks", json={**LINEAR, "context": {"even_number": 6}}), 409)
    assert first["task_uuid"] in error["message"]
    assert error["details"]["existing_task_uuid"] == first["task_uuid"]
    assert counts(db_url) == before


def test_context_failing_the_schema_is_422_listing_every_field(http: httpx.Client, db_url: str) -> None:
    before = counts(db_url)
    response = http.post("/v1/tasks", json={**LINEAR, "context": {"even_number": "six"}})
    error = error_of(response, 422)
    assert "/even_number" in error["message"]
    missing = error_of(http.post("/v1/tasks", json={**LINEAR, "context": {}}), 422)
    assert "even_number" in missing["message"]
    assert [e["field"] for e in missing["details"]["errors"]] == ["/even_number"]
    assert counts(db_url) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"namespace": "linear_workflow", "context": {}}, "name"),
        ({**LINEAR, "context": [1, 2]}, "context"),
        ({**LINEAR, "context": {}, "priority": 1000}, "priority"),
        ({**LINEAR, "context": {}, "surprise": True}, "surprise"),
        ({**LINEAR, "context": {}, "correlation_id": "not-a-uuid"}, "correlation_id"),
        ({**LINEAR, "name": "x'; DROP TABLE tasker.tasks; --", "context": {}}, None),
    ],
)
def test_bad_bodies_are_4xx_and_write_nothing(
    http: httpx.Client, db_url: str, body: dict[str, Any], field: str | None
) -> None:
    before = counts(db_url)
    response = http.post("/v1/tasks", json=body)
    if field is None:  # SQL-looking names are just names nobody registered
        assert error_of(response, 404)["code"] == "NOT_FOUND"
    else:
        error = error_of(response, 400)
        assert error["code"] == "BAD_REQUEST" and field in error["message"]
    assert counts(db_url) == before


def test_non_json_empty_and_oversize_bodies(http: httpx.Client, db_url: str) -> None:
    before = counts(db_url)
    assert "JSON" in error_of(http.post("/v1/tasks", content=b"{not json"), 400)["message"]
    error_of(http.post("/v1/tasks", content=b""), 400)
    huge = {**LINEAR, "context": {"even_number": 6, "blob": "x" * 2_000_000}}
    assert error_of(http.post("/v1/tasks", json=huge), 413)["code"] == "PAYLOAD_TOO_LARGE"
    error_of(http.get("/v1/tasks/not-a-uuid"), 400)
    error_of(http.get("/v1/tasks", params={"per_page": 1000}), 400)
    error_of(http.get("/v1/tasks", params={"status": "\x00"}), 400)  # PostgreSQL text cannot hold NUL
    error_of(http.post("/v1/tasks", json={**LINEAR, "name": "a\x00b", "context": {}}), 400)
    assert counts(db_url) == before


def test_backpressure_is_503_with_retry_after(db_url: str) -> None:
    register_templates(db_url)
    with (
        serving(db_url, backpressure_queue_depth=2, backpressure_retry_after_seconds=7) as base,
        httpx.Client(base_url=base) as http,
    ):
        create(http, context={"even_number": 2})
        create(http, context={"even_number": 4})  # two messages now wait on worker_linear_workflow_queue
        before = counts(db_url)
        response = http.post("/v1/tasks", json={**LINEAR, "context": {"even_number": 8}})
        error = error_of(response, 503)
        assert response.headers["retry-after"] == "7"
        assert error["code"] == "BACKPRESSURE" and error["retry_after_seconds"] == 7
        assert "worker_linear_workflow_queue" in error["message"]
        assert counts(db_url) == before
        other = http.post("/v1/tasks", json={"namespace": "diamond_workflow", "name": "nope", "context": {}})
        assert other.status_code == 404, "other namespaces' queues are not held back"


def test_retry_failed_without_failed_steps_is_409(http: httpx.Client) -> None:
    task = create(http, context={"even_number": 14})
    refused = error_of(http.post(f"/v1/tasks/{task['task_uuid']}/retry_failed"), 409)
    assert "no failed steps" in refused["message"]
    error_of(http.post("/v1/tasks/01900000-0000-7000-8000-000000000000/retry_failed"), 404)
