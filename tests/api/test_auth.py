"""Authentication and permissions over real HTTP: API keys, RS256 bearer tokens, wildcards, secrets kept out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tasker.api.auth import grants
from tasker.config import ApiKey
from tests.api.server import register_templates, serving

KEYS = [
    ApiKey(key="admin-secret-key", permissions=["*"]),
    ApiKey(key="reader-secret-key", permissions=["tasks:read", "tasks:list"]),
    ApiKey(key="tasks-secret-key", permissions=["tasks:*"]),
    ApiKey(key="steps-reader-key", permissions=["tasks:read", "tasks:list", "steps:read"]),
    ApiKey(key="context-reader-key", permissions=["tasks:read", "tasks:list", "tasks:context_read", "steps:read"]),
    ApiKey(key="dlq-reader-key", permissions=["dlq:read"]),
    ApiKey(key="dlq-context-key", permissions=["dlq:read", "tasks:context_read"]),
]
LINEAR = {"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {"even_number": 6}}


def _pem_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


PRIVATE, PUBLIC = _pem_pair()
OTHER_PRIVATE, _ = _pem_pair()


def token(private: bytes = PRIVATE, **claims: Any) -> str:
    body = {"iss": "tasker-core", "aud": "tasker-api", "exp": int(time.time()) + 300, "sub": "ci", **claims}
    return jwt.encode(body, private, algorithm="RS256")


@pytest.fixture(scope="module")
def secured(admin_url: str, template_db: str) -> Iterator[tuple[str, str]]:
    """A server with auth on, and its database URL."""
    from tests.conftest import _create_database, _drop_database, url_for

    name = _create_database(admin_url, template_db)
    db_url = url_for(admin_url, name)
    register_templates(db_url)
    try:
        with serving(db_url, auth_enabled=True, api_keys=KEYS, jwt_public_key=PUBLIC) as base:
            yield base, db_url
    finally:
        _drop_database(admin_url, name)


@pytest.fixture(scope="module")
def secured_url(secured: tuple[str, str]) -> str:
    return secured[0]


def call(base: str, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, base + path, headers=headers or {}, timeout=30, **kw)


def test_no_credentials_is_401(secured_url: str) -> None:
    response = call(secured_url, "GET", "/v1/tasks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_wrong_key_is_401_and_the_key_is_not_echoed(secured_url: str) -> None:
    response = call(secured_url, "GET", "/v1/tasks", {"X-API-Key": "guessed-key-123"})
    assert response.status_code == 401
    assert "guessed-key-123" not in response.text


def test_key_without_the_permission_is_403(secured_url: str) -> None:
    reader = {"X-API-Key": "reader-secret-key"}
    assert call(secured_url, "GET", "/v1/tasks", reader).status_code == 200
    response = call(secured_url, "POST", "/v1/tasks", reader, json=LINEAR)
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "FORBIDDEN", "message": "missing permission tasks:create"}
    assert call(secured_url, "GET", "/v1/templates", reader).status_code == 403


def test_auth_is_checked_before_the_body_is_read(secured_url: str) -> None:
    response = call(secured_url, "POST", "/v1/tasks", {"X-API-Key": "reader-secret-key"}, content=b"{garbage")
    assert response.status_code == 403
    assert call(secured_url, "POST", "/v1/tasks", content=b"{garbage").status_code == 401


def test_wildcards(secured_url: str) -> None:
    tasks_only = {"X-API-Key": "tasks-secret-key"}
    created = call(secured_url, "POST", "/v1/tasks", tasks_only, json={**LINEAR, "context": {"even_number": 10}})
    assert created.status_code == 201, created.text
    assert call(secured_url, "GET", f"/v1/tasks/{created.json()['task_uuid']}", tasks_only).status_code == 200
    assert call(secured_url, "GET", "/v1/templates", tasks_only).status_code == 403
    admin = {"X-API-Key": "admin-secret-key"}
    assert call(secured_url, "GET", "/v1/templates", admin).status_code == 200
    assert call(secured_url, "GET", "/v1/analytics/performance", admin).status_code == 200


def test_public_routes_need_no_credentials(secured_url: str) -> None:
    for path in ("/health", "/health/live", "/health/ready", "/metrics", "/api-docs/openapi.json"):
        assert call(secured_url, "GET", path).status_code == 200, path


def test_valid_jwt_grants_its_permissions(secured_url: str) -> None:
    bearer = {"Authorization": f"Bearer {token(permissions=['tasks:list', 'templates:*'])}"}
    assert call(secured_url, "GET", "/v1/tasks", bearer).status_code == 200
    assert call(secured_url, "GET", "/v1/templates", bearer).status_code == 200
    assert call(secured_url, "POST", "/v1/tasks", bearer, json=LINEAR).status_code == 403


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (token(exp=int(time.time()) - 60, permissions=["*"]), "expired"),
        (token(aud="someone-else", permissions=["*"]), "audience"),
        (token(iss="mallory", permissions=["*"]), "issuer"),
        (token(OTHER_PRIVATE, permissions=["*"]), "invalid"),
        ("not.a.jwt", "invalid"),
        (jwt.encode({"iss": "tasker-core", "aud": "tasker-api", "permissions": ["*"]}, "k" * 32, "HS256"), "invalid"),
    ],
)
def test_bad_jwts_are_401(secured_url: str, bad: str, words: str) -> None:
    response = call(secured_url, "GET", "/v1/tasks", {"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    assert words in response.json()["error"]["message"]
    assert bad not in response.text


def test_permission_matching() -> None:
    assert grants(["*"], "dlq:update")
    assert grants(["tasks:*"], "tasks:cancel")
    assert not grants(["tasks:*"], "steps:read")
    assert grants(["steps:read"], "steps:read")
    assert not grants(["steps:read"], "steps:resolve")
    assert not grants(["tasks"], "tasks:read")


def test_dlq_routes_need_dlq_permissions(secured_url: str) -> None:
    assert call(secured_url, "GET", "/v1/dlq").status_code == 401
    assert call(secured_url, "GET", "/v1/dlq", {"X-API-Key": "tasks-secret-key"}).status_code == 403
    assert call(secured_url, "GET", "/v1/dlq/stats", {"X-API-Key": "tasks-secret-key"}).status_code == 403
    assert call(secured_url, "GET", "/v1/dlq", {"X-API-Key": "admin-secret-key"}).status_code == 200
    dlq_reader = token(permissions=["dlq:read"])
    assert call(secured_url, "GET", "/v1/dlq", {"Authorization": f"Bearer {dlq_reader}"}).status_code == 200
    assert call(secured_url, "GET", "/v1/dlq/stats", {"Authorization": f"Bearer {dlq_reader}"}).status_code == 403


ADMIN = {"X-API-Key": "admin-secret-key"}


def _task_with_a_result(base: str, context: dict[str, Any]) -> dict[str, Any]:
    """A task (created by the admin) whose first step was completed by hand with a result."""
    created = call(base, "POST", "/v1/tasks", ADMIN, json={**LINEAR, "context": context})
    assert created.status_code == 201, created.text
    task = created.json()
    step = task["steps"][0]["step_uuid"]
    done = call(
        base,
        "PATCH",
        f"/v1/tasks/{task['task_uuid']}/workflow_steps/{step}",
        ADMIN,
        json={"action_type": "complete_manually", "result": {"secret_total": 42}, "completed_by": "ops"},
    )
    assert done.status_code == 200, done.text
    return dict(task)


def test_summary_needs_steps_read(secured_url: str) -> None:
    task = _task_with_a_result(secured_url, {"even_number": 8})
    path = f"/v1/tasks/{task['task_uuid']}/summary"
    refused = call(secured_url, "GET", path, {"X-API-Key": "reader-secret-key"})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "missing permission steps:read"
    assert "secret_total" not in refused.text
    allowed = call(secured_url, "GET", path, {"X-API-Key": "steps-reader-key"})
    assert allowed.status_code == 200
    assert allowed.json()["steps"][0]["results"]["result"] == {"secret_total": 42}


def test_context_is_returned_only_with_context_read(secured_url: str) -> None:
    task = _task_with_a_result(secured_url, {"even_number": 12})
    path = f"/v1/tasks/{task['task_uuid']}"
    for key in ("reader-secret-key", "steps-reader-key"):
        got = call(secured_url, "GET", path, {"X-API-Key": key})
        assert got.status_code == 200
        assert got.json()["context"] is None, key
        listed = call(secured_url, "GET", "/v1/tasks", {"X-API-Key": key}, params={"per_page": 100}).json()
        assert listed["tasks"] and all(t["context"] is None for t in listed["tasks"]), key
    summary = call(secured_url, "GET", f"{path}/summary", {"X-API-Key": "steps-reader-key"}).json()
    assert summary["task"]["context"] is None
    reader = {"X-API-Key": "context-reader-key"}
    assert call(secured_url, "GET", path, reader).json()["context"] == {"even_number": 12}
    listed = call(secured_url, "GET", "/v1/tasks", reader, params={"per_page": 100}).json()["tasks"]
    assert {"even_number": 12} in [t["context"] for t in listed]
    assert call(secured_url, "GET", f"{path}/summary", reader).json()["task"]["context"] == {"even_number": 12}
    bearer = {"Authorization": f"Bearer {token(permissions=['tasks:read'])}"}
    assert call(secured_url, "GET", path, bearer).json()["context"] is None
    bearer = {"Authorization": f"Bearer {token(permissions=['tasks:*'])}"}  # the wildcard includes context_read
    assert call(secured_url, "GET", path, bearer).json()["context"] == {"even_number": 12}


def test_step_results_inside_a_task_need_steps_read(secured_url: str) -> None:
    task = _task_with_a_result(secured_url, {"even_number": 14})
    path = f"/v1/tasks/{task['task_uuid']}"
    hidden = call(secured_url, "GET", path, {"X-API-Key": "reader-secret-key"})
    assert hidden.status_code == 200 and "secret_total" not in hidden.text
    assert all(step["results"] is None for step in hidden.json()["steps"])
    shown = call(secured_url, "GET", path, {"X-API-Key": "steps-reader-key"}).json()
    assert {"secret_total": 42} in [(step["results"] or {}).get("result") for step in shown["steps"]]


def test_dlq_snapshots_hide_the_context_without_context_read(secured: tuple[str, str]) -> None:
    from tests.api.test_dlq_routes import _stale_task

    base, db_url = secured
    task_uuid = _stale_task(db_url)
    for key, visible in (("dlq-reader-key", False), ("dlq-context-key", True), ("admin-secret-key", True)):
        headers = {"X-API-Key": key}
        entries = call(base, "GET", f"/v1/dlq/task/{task_uuid}", headers).json()["entries"]
        listed = call(base, "GET", "/v1/dlq", headers, params={"limit": 1000}).json()["entries"]
        entry = call(base, "GET", f"/v1/dlq/entry/{entries[0]['dlq_entry_uuid']}", headers).json()
        for found in (entries[0], next(e for e in listed if e["task_uuid"] == task_uuid), entry):
            snapshot_task = found["task_snapshot"]["task"]
            assert (snapshot_task["context"] == {"sleep_seconds": 0}) is visible, key
