"""The one typed settings object: defaults < TOML file < ``TASKER_*`` environment variables.

Every process (orchestrator, worker, API, CLI) reads its configuration through :func:`load_settings`; nothing else
reads the environment. Secrets are ``SecretStr`` so they are redacted wherever settings are printed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

import platformdirs
import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

_CONNINFO_PASSWORD = re.compile(r"\bpassword\s*=\s*(?:'((?:[^'\\]|\\.)*)'?|(\S+))")
_QUERY_PASSWORD = re.compile(r"[?&]password=([^&#\s]*)")


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data when no database URL is given."""
    return Path(platformdirs.user_data_dir("tasker", appauthor=False))


def _passwords(url: str) -> set[str]:
    """Every spelling of the password a PostgreSQL URL or conninfo string carries, parseable or not."""
    found: set[str] = set()
    _, separator, rest = url.partition("://")
    if separator and "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]  # up to the last "@": over-reach only hides more
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    found.update(match.group(1) for match in _QUERY_PASSWORD.finditer(url))
    for match in _CONNINFO_PASSWORD.finditer(url):
        value = match.group(1) if match.group(1) is not None else match.group(2)
        found.update({value, value.replace("\\'", "'").replace("\\\\", "\\")})
    spellings = {form for password in found for form in (password, unquote(password), quote(password, safe=""))}
    return {form for form in spellings if form}


def redact_secrets(text: str, url: str | None) -> str:
    """``text`` with every spelling of ``url``'s password replaced by ``***`` (libpq quotes URLs in its errors)."""
    if not url:
        return text
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def check_database_url(url: str) -> None:
    """Raise ``ValueError`` naming what is wrong with a URL or conninfo string libpq cannot use, password hidden."""
    try:
        options = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a PostgreSQL URL or conninfo string: {redact_secrets(str(exc).strip(), url)}") from None
    port = str(options.get("port") or "")
    if any(part and not (part.isdigit() and 0 < int(part) < 65536) for part in port.split(",")):
        raise ValueError(f"invalid port {port!r}: expected a number from 1 to 65535")


class ApiKey(BaseModel):
    """One entry of the API key registry: the key and the permissions it grants (``resource:action``, wildcards)."""

    key: SecretStr
    permissions: list[str] = Field(default_factory=list)
    description: str | None = None


class Settings(BaseSettings):
    """Effective configuration of a Tasker process."""

    # the values given are left out of validation errors: they may be secrets (URL passwords, keys)
    model_config = SettingsConfigDict(env_prefix="TASKER_", extra="ignore", hide_input_in_errors=True)

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; without it an embedded PostgreSQL 18 is started"
    )
    data_dir: Path = Field(default_factory=default_data_dir, description="embedded PostgreSQL data lives here")
    env: str = Field(default="development", description="selects template `environments` overrides")
    config_file: Path | None = Field(default=None, description="TOML file read below the environment variables")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)

    # messaging (see README "RabbitMQ transport")
    transport: str = Field(default="pgmq", pattern="^(pgmq|rabbitmq)$", description="pgmq or rabbitmq")
    rabbitmq_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"), description="AMQP URL of the RabbitMQ broker"
    )
    rabbitmq_prefetch: int = Field(default=20, ge=1, description="unacknowledged deliveries per consumer")
    queue_prefix: str = Field(
        default="",
        pattern="^[A-Za-z0-9_.-]*$",
        description="prepended to every broker queue name (RabbitMQ), e.g. one per environment or test run",
    )

    # REST API (served by `tasker api`)
    api_host: str = Field(default="127.0.0.1", description="address `tasker api` binds")
    api_port: int = Field(default=8080, ge=1, le=65535, description="port `tasker api` binds")
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024, description="larger request bodies get 413")
    backpressure_queue_depth: int = Field(
        default=5000, ge=0, description="POST /v1/tasks answers 503 when a queue it feeds holds this many (0: off)"
    )
    backpressure_retry_after_seconds: int = Field(default=5, ge=1)
    config_endpoint_enabled: bool = Field(default=True, description="serve GET /v1/config (secrets redacted)")

    # authentication of the REST API (off by default; when off every permission check passes)
    auth_enabled: bool = False
    api_key_header: str = "X-API-Key"
    api_keys: list[ApiKey] = Field(default_factory=list, description="registry of API keys and their permissions")
    jwt_public_key: SecretStr | None = Field(default=None, description="PEM public key verifying RS256 bearer tokens")
    jwt_issuer: str = "tasker-core"
    jwt_audience: str = "tasker-api"
    jwt_permissions_claim: str = "permissions"
    jwt_allowed_algorithms: list[str] = Field(default_factory=lambda: ["RS256"])

    # observability
    log_level: str = Field(default="info", description="debug, info, warning, error")
    log_format: str = Field(default="text", pattern="^(text|json)$", description="text, or json lines with ids")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="Prometheus port of orchestrator/worker")
    otel_exporter: str | None = Field(
        default=None, pattern="^(console|otlp)$", description="OpenTelemetry span exporter (off when unset)"
    )

    # staleness sweep in every orchestrator (a template's `lifecycle` minutes win over these)
    staleness_enabled: bool = True
    staleness_dry_run: bool = Field(default=False, description="report stale tasks without moving them")
    staleness_interval_seconds: float = Field(default=300.0, gt=0)
    staleness_batch_size: int = Field(default=100, ge=1)
    staleness_waiting_for_dependencies_minutes: int = Field(default=60, ge=1)
    staleness_waiting_for_retry_minutes: int = Field(default=30, ge=1)
    staleness_steps_in_process_minutes: int = Field(default=30, ge=1)
    staleness_task_max_lifetime_hours: int = Field(default=24, ge=1)

    # schedules and retention in every orchestrator (README "Schedules", "Retention")
    schedules_enabled: bool = Field(default=True, description="orchestrators fire due schedules")
    retention_days: float | None = Field(
        default=None, gt=0, description="orchestrators prune tasks finished this many days ago (off when unset)"
    )
    retention_mode: str = Field(default="archive", pattern="^(archive|delete)$", description="archive or delete")
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)

    # workers
    worker_fast_path: bool = Field(
        default=True,
        description="a worker applies a successful result itself when its task's lock is free (off: always "
        "through an orchestrator)",
    )

    # clients (CLI): talk to this API instead of the database when set
    api_url: str | None = Field(default=None, description="REST API base URL used by the CLI when set")
    api_key: SecretStr | None = Field(default=None, description="API key the CLI and client send")
    auth_token: SecretStr | None = Field(default=None, description="bearer token the CLI and client send")

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_database_url(value.get_secret_value())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    # workers: which modules a template may name handlers from (unset: any importable callable)
    handler_allowed_modules: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="module prefixes workers import handlers from, e.g. myapp.handlers (JSON list or comma-separated)",
    )

    @field_validator("handler_allowed_modules", mode="before")
    @classmethod
    def _module_list(cls, value: Any) -> Any:
        """``a.b,c`` or ``["a.b", "c"]`` from the environment; a list from TOML or code passes through."""
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else text.split(",")
            return [str(item).strip() for item in items if str(item).strip()]
        return value


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``TASKER_CONFIG_FILE`` (or ``./tasker.toml`` when present); keys are the field names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path_text = os.environ.get("TASKER_CONFIG_FILE")
        path = Path(path_text) if path_text else Path("tasker.toml")
        if not path.exists():
            if path_text:
                raise FileNotFoundError(f"TASKER_CONFIG_FILE points to {path}, which does not exist")
            return {}
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        section = data.get("tasker", data)
        return dict(section)


REDACTED = "**********"


def _redact(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return _redact(value.model_dump())
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """Every setting as plain JSON with secrets (database URL, keys, tokens) shown as asterisks: what ``tasker
    config show`` prints and ``GET /v1/config`` answers."""
    return {name: _redact(getattr(settings, name)) for name in type(settings).model_fields}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from defaults, the TOML file and the environment, then explicit overrides."""
    return Settings(**overrides)
