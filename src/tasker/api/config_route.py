"""``GET /v1/config``: the server's effective settings, secrets redacted (``system:config_read``), as tasker-core
has it. Off with ``TASKER_CONFIG_ENDPOINT_ENABLED=false``."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from tasker.api.auth import require
from tasker.config import Settings, redacted_settings


def register(app: FastAPI, settings: Settings) -> None:
    if not settings.config_endpoint_enabled:
        return

    @app.get("/v1/config", tags=["system"], dependencies=[Depends(require("system:config_read"))])
    async def config() -> dict[str, Any]:
        """Every setting this server runs with; the database URL, API keys, tokens and the JWT key are redacted."""
        return redacted_settings(settings)
