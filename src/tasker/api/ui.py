"""The web console at ``/ui``: a static single-page app shipped in the package (``static/ui``), no build step.

The pages themselves are public (they hold no data); every piece of data comes from the REST API with the
credentials the operator types in, so the console has exactly the API's auth and permissions. The responses carry
a Content-Security-Policy allowing only the app's own scripts and styles, a second line behind the app's rule of
rendering every string from data as text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

ASSETS = Path(__file__).resolve().parent / "static" / "ui"
PREFIX = "/ui"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so an upgraded server's console is picked up at once
}


class _ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the console at ``/ui/`` (``/ui`` redirects there so relative asset URLs resolve)."""

    async def to_console() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    app.add_api_route(PREFIX, to_console, methods=["GET"], include_in_schema=False)
    app.mount(PREFIX, _ConsoleFiles(directory=ASSETS, html=True), name="ui")
