"""The OpenAPI document, made to say what the server really answers, and the Swagger UI served from the package.

FastAPI's generated document declares 422 with its own validation schema, while :mod:`tasker.api.errors` turns
every validation error into a 400 with ``{"error": {...}}``; it also knows nothing of the ``require`` dependencies,
the body limit or the error body. :func:`install` completes each operation from the route itself: 401/403 and
the security schemes where a permission is required, 400 where there are parameters or a body, 404 where the path
names an object, 413 where there is a body, and the error body on every error. Statuses only a route's handler
knows (409, 422, 503) are declared on the route (``responses=``); they get the error body here too.

The Swagger UI's assets (swagger-ui-dist, Apache-2.0, see ``static/swagger-ui/README.md``) ship in the package so
``/docs`` works on machines without internet access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from tasker.api.auth import Requirement
from tasker.config import Settings
from tasker.model import wire

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = "/api-docs/assets"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
SECURITY: list[dict[str, list[str]]] = [{"ApiKeyAuth": []}, {"BearerAuth": []}]  # either one


def install(app: FastAPI, settings: Settings, *, openapi_url: str, docs_urls: tuple[str, ...]) -> None:
    """Replace ``app.openapi`` by the completed document and serve the Swagger UI at ``docs_urls``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
    app.mount(ASSETS, StaticFiles(directory=STATIC / "swagger-ui"), name="swagger-ui-assets")

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    for url in docs_urls:
        app.add_api_route(url, swagger_ui, methods=["GET"], include_in_schema=False)


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = wire.ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    components["securitySchemes"] = {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": settings.api_key_header},
        "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    }
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            item = doc["paths"][route.path_format]
            for method in route.methods or ():
                if method.lower() in item:
                    _complete(item[method.lower()], route, settings)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def _permissions(route: APIRoute) -> list[str]:
    return [d.dependency.permission for d in route.dependencies if isinstance(d.dependency, Requirement)]


def _complete(op: dict[str, Any], route: APIRoute, settings: Settings) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    if "HTTPValidationError" in str(responses.get("422", "")):
        del responses["422"]  # the app answers validation errors with 400
    parameters = op.get("parameters", [])
    added: dict[str, str] = {}
    if parameters or "requestBody" in op:
        added["400"] = "malformed body or parameter; the message names the field"
    if permissions := _permissions(route):
        op["security"] = SECURITY
        added["401"] = "no valid credentials (API key or bearer token), when auth is enabled"
        added["403"] = f"the credentials do not grant {' and '.join(permissions)}"
    if any(p.get("in") == "path" for p in parameters):
        added["404"] = "no such object"
    if "requestBody" in op:
        added["413"] = f"body over api_max_body_bytes ({settings.api_max_body_bytes} bytes here)"
    for code, description in added.items():
        responses.setdefault(code, {"description": description})
    for code, response in responses.items():
        if code[0] in "45" and not response.get("content"):
            response["content"] = {"application/json": {"schema": ERROR_REF}}
    op["responses"] = dict(sorted(responses.items()))
