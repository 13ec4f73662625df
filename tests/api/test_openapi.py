"""The OpenAPI document declares what the server really answers, and the Swagger UI works without the internet.

The checks are empirical where they can be: every operation is called on a real server with auth on (no
credentials; then an admin key with unknown ids, malformed ids and bad bodies), and every status it answers must be
declared for it. Structural rules cover the rest: auth -> 401/403 and security, body or params -> 400, a path id ->
404, a body -> 413, never FastAPI's 422 validation schema (the app answers 400).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tasker.config import ApiKey
from tests.api.server import register_templates, serving

ADMIN = {"X-API-Key": "openapi-admin-key"}
METHODS = ("get", "post", "put", "patch", "delete")
OFFSET = re.compile(r"(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def secured(admin_url: str, template_db: str) -> Iterator[str]:
    from tests.conftest import _create_database, _drop_database, url_for

    name = _create_database(admin_url, template_db)
    db_url = url_for(admin_url, name)
    register_templates(db_url)
    try:
        keys = [ApiKey(key=ADMIN["X-API-Key"], permissions=["*"])]
        with serving(db_url, auth_enabled=True, api_keys=keys) as base:
            yield base
    finally:
        _drop_database(admin_url, name)


@pytest.fixture(scope="module")
def doc(secured: str) -> dict[str, Any]:
    response = httpx.get(f"{secured}/api-docs/openapi.json", timeout=30)
    assert response.status_code == 200
    return dict(response.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def declared(op: dict[str, Any]) -> set[int]:
    return {int(code) for code in op["responses"]}


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def test_the_document_declares_the_security_schemes(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes["ApiKeyAuth"].items()
    assert {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}.items() <= schemes["BearerAuth"].items()


def test_every_status_a_route_answers_is_declared(secured: str, doc: dict[str, Any]) -> None:
    """Call every operation: anonymously, then as admin with unknown ids, malformed ids and a bad body."""
    undeclared = []
    for path, method, op in operations(doc):
        attempts: list[tuple[str, dict[str, str], dict[str, Any]]] = [
            ("anonymous", {}, {}),
            ("unknown ids", ADMIN, {}),
        ]
        if "{" in path:
            attempts.append(("malformed ids", ADMIN, {"url": fill(path, "not-a-uuid")}))
        if "requestBody" in op:
            attempts.append(("bad body", ADMIN, {"content": b"{garbage"}))
            attempts.append(("empty object", ADMIN, {"json": {}}))
            attempts.append(("body too large", ADMIN, {"content": b"x" * 2_000_000}))
        for label, headers, extra in attempts:
            url = extra.pop("url", fill(path, str(uuid.uuid4())))
            response = httpx.request(method.upper(), secured + url, headers=headers, timeout=30, **extra)
            if response.status_code not in declared(op):
                undeclared.append(f"{method.upper()} {path} ({label}): {response.status_code} {response.text[:120]}")
            if "security" in op and label == "anonymous":
                assert response.status_code == 401, (path, method)
            if "security" not in op and label == "anonymous" and response.status_code in (401, 403):
                undeclared.append(f"{method.upper()} {path}: needs credentials but declares no security")
    assert not undeclared, "\n".join(undeclared)


def test_declared_statuses_follow_the_route_shape(doc: dict[str, Any]) -> None:
    problems = []
    for path, method, op in operations(doc):
        codes = declared(op)
        name = f"{method.upper()} {path}"
        if path.startswith("/v1/"):
            if not {401, 403} <= codes or not op.get("security"):
                problems.append(f"{name}: an authenticated route must declare 401, 403 and its security")
            schemes = {name for requirement in op.get("security", []) for name in requirement}
            if schemes and schemes != {"ApiKeyAuth", "BearerAuth"}:
                problems.append(f"{name}: security {schemes}")
        if (op.get("parameters") or "requestBody" in op) and 400 not in codes:
            problems.append(f"{name}: has parameters or a body but declares no 400")
        if any(p["in"] == "path" for p in op.get("parameters", [])) and 404 not in codes:
            problems.append(f"{name}: has a path id but declares no 404")
        if "requestBody" in op and 413 not in codes:
            problems.append(f"{name}: has a body but declares no 413")
        for code, response in op["responses"].items():
            if "HTTPValidationError" in str(response):
                problems.append(f"{name}: {code} uses FastAPI's validation schema, but the app answers 400")
            if code.startswith(("4", "5")) and not response.get("content"):
                problems.append(f"{name}: {code} does not describe its body")
            if code.startswith(("4", "5")) and path.startswith("/v1/") and "ErrorBody" not in str(response):
                problems.append(f"{name}: {code} does not describe the error body")
    assert not problems, "\n".join(problems)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def _date_time_properties(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for schema_name, schema in doc["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            if prop.endswith(("_at", "timestamp")) or "date-time" in str(spec):
                yield schema_name, prop, spec


def test_timestamps_are_declared_as_date_time(doc: dict[str, Any]) -> None:
    found = list(_date_time_properties(doc))
    assert len(found) >= 10
    for schema_name, prop, spec in found:
        assert "'format': 'date-time'" in str(spec), (schema_name, prop, spec)


def _timestamps(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _timestamps(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _timestamps(item, key)
    elif isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", value):
        yield key, value


def test_timestamps_are_sent_with_a_utc_offset(secured: str) -> None:
    created = httpx.post(
        f"{secured}/v1/tasks",
        headers=ADMIN,
        timeout=30,
        json={"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {"even_number": 6}},
    )
    assert created.status_code == 201, created.text
    task_uuid = created.json()["task_uuid"]
    bodies = [
        created.json(),
        httpx.get(f"{secured}/v1/tasks/{task_uuid}", headers=ADMIN, timeout=30).json(),
        httpx.get(f"{secured}/v1/tasks", headers=ADMIN, timeout=30).json(),
        httpx.get(f"{secured}/v1/tasks/{task_uuid}/workflow_steps", headers=ADMIN, timeout=30).json(),
        httpx.get(f"{secured}/v1/analytics/performance", headers=ADMIN, timeout=30).json(),
        httpx.get(f"{secured}/health", timeout=30).json(),
    ]
    stamps = [stamp for body in bodies for stamp in _timestamps(body)]
    assert len(stamps) >= 8
    naive = [(key, value) for key, value in stamps if not OFFSET.search(value)]
    assert not naive, naive


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/api-docs/ui"])
def test_the_swagger_ui_needs_nothing_from_the_internet(secured: str, page: str) -> None:
    html = httpx.get(secured + page, timeout=30)
    assert html.status_code == 200 and "SwaggerUIBundle" in html.text
    links = _Links()
    links.feed(html.text)
    assert any(url.endswith(".js") for url in links.urls) and any(url.endswith(".css") for url in links.urls)
    assert "http://" not in html.text and "https://" not in html.text
    for url in links.urls:
        assert url.startswith("/"), url
        asset = httpx.get(secured + url, timeout=30)
        assert asset.status_code == 200 and asset.content, url
    spec_url = re.search(r"url: '([^']+)'", html.text)
    assert spec_url is not None and httpx.get(secured + spec_url.group(1), timeout=30).status_code == 200


def test_every_schema_reference_resolves(doc: dict[str, Any]) -> None:
    refs = set(re.findall(r"'\$ref': '#/components/schemas/([^']+)'", str(doc)))
    assert refs and refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
