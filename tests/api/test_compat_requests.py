"""What tasker-core's client sends to ``POST /v1/tasks`` is accepted as it is (real HTTP, real database)."""

from __future__ import annotations

import httpx
import psycopg

LONG_REASON = "r" * 500


def test_a_tasker_core_client_body_is_accepted(http: httpx.Client, db_url: str) -> None:
    body = {
        "namespace": "linear_workflow",
        "name": "mathematical_sequence",
        "version": "1.0.0",
        "context": {"even_number": 6},
        "initiator": "tasker-core-client",
        "source_system": "billing",
        "reason": LONG_REASON,
        "tags": [],
        "requested_at": "2026-12-01T10:30:00+02:00",
        "options": None,
        "priority": 0,
    }
    response = http.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task_uuid = response.json()["task_uuid"]
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT t.requested_at, t.reason, tt.metadata -> 'request' ->> 'reason' AS full_reason"
            " FROM tasker.tasks t JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.sort_key = 1"
            " WHERE t.task_uuid = %s",
            [task_uuid],
        ).fetchone()
    assert row is not None
    assert row[0].isoformat() == "2026-12-01T08:30:00", "requested_at is kept, in UTC"
    assert row[1] == LONG_REASON[:128], "the column holds the first 128 characters"
    assert row[2] == LONG_REASON, "the whole reason is kept on the first transition"


def test_options_are_kept_and_a_reason_over_500_characters_is_refused(http: httpx.Client, db_url: str) -> None:
    base = {"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {"even_number": 2}}
    created = http.post("/v1/tasks", json={**base, "options": {"dry": True}})
    assert created.status_code == 201, created.text
    refused = http.post("/v1/tasks", json={**base, "reason": "x" * 501})
    assert refused.status_code in (400, 422) and "reason" in refused.text


def test_config_is_served_with_secrets_redacted(db_url: str) -> None:
    from pydantic import SecretStr

    from tests.api.server import register_templates, serving

    register_templates(db_url)
    shown_url = SecretStr("postgresql://tasker:s3cret-password@db.example.com/tasker")
    with serving(db_url, database_url=shown_url, api_key=SecretStr("client-key")) as base:
        response = httpx.get(f"{base}/v1/config", timeout=10)
    assert response.status_code == 200, response.text
    config = response.json()
    assert config["database_url"] == "**********" and config["api_key"] == "**********"
    assert "s3cret-password" not in response.text and "client-key" not in response.text
    assert config["env"] == "test" and "staleness_steps_in_process_minutes" in config
