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
def secured_url(admin_url: str, template_db: str) -> Iterator[str]:
    from tests.conftest import _create_database, _drop_database, url_for

    name = _create_database(admin_url, template_db)
    db_url = url_for(admin_url, name)
    register_templates(db_url)
    try:
        with serving(db_url, auth_enabled=True, api_keys=KEYS, jwt_public_key=PUBLIC) as base:
            yield base
    finally:
        _drop_database(admin_url, name)


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
