"""Authentication (API keys, RS256 JWT bearer tokens) and ``resource:action`` permissions with wildcards.

Off by default: every check passes. Keys and tokens are never logged nor echoed in error bodies.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import jwt
from fastapi import Request

from tasker.api.errors import ApiError
from tasker.config import Settings

PERMISSIONS = (
    "tasks:create", "tasks:read", "tasks:list", "tasks:cancel", "tasks:context_read",
    "steps:read", "steps:resolve",
    "dlq:read", "dlq:update", "dlq:stats",
    "templates:read", "templates:validate",
    "events:read",
    "system:config_read", "system:handlers_read", "system:analytics_read",
    "worker:config_read", "worker:templates_read",
)  # fmt: skip


def grants(held: Iterable[str], needed: str) -> bool:
    """``*`` grants everything, ``tasks:*`` every action on tasks, otherwise the exact permission."""
    resource = needed.split(":", 1)[0]
    return any(p == "*" or p == needed or p == f"{resource}:*" for p in held)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


def _from_api_key(settings: Settings, presented: str) -> list[str]:
    for entry in settings.api_keys:
        if hmac.compare_digest(entry.key.get_secret_value().encode(), presented.encode()):
            return list(entry.permissions)
    raise _unauthorized("invalid API key")


def _from_token(settings: Settings, token: str) -> list[str]:
    if settings.jwt_public_key is None:
        raise _unauthorized("bearer tokens are not accepted: no JWT public key is configured")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_public_key.get_secret_value(),
            algorithms=settings.jwt_allowed_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the bearer token has expired") from None
    except jwt.InvalidAudienceError:
        raise _unauthorized("the bearer token is not meant for this API (audience)") from None
    except jwt.InvalidIssuerError:
        raise _unauthorized("the bearer token has the wrong issuer") from None
    except jwt.PyJWTError:
        raise _unauthorized("invalid bearer token") from None
    permissions = claims.get(settings.jwt_permissions_claim, [])
    if isinstance(permissions, str):
        permissions = permissions.split()
    if not isinstance(permissions, list):
        raise _unauthorized("the bearer token's permissions claim is not a list")
    return [str(p) for p in permissions]


def permissions_of(settings: Settings, request: Request) -> list[str]:
    presented = request.headers.get(settings.api_key_header)
    if presented:
        return _from_api_key(settings, presented)
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return _from_token(settings, token.strip())
    raise _unauthorized(f"credentials required: send an API key in {settings.api_key_header} or a bearer token")


class Requirement:
    """A route dependency: 401 without valid credentials, 403 without ``permission`` (auth off: passes).

    The caller's permissions are kept on ``request.state`` for :func:`may`, which decides what a response shows;
    ``permission`` is also read by the OpenAPI document to declare the 401 and 403 answers.
    """

    def __init__(self, permission: str) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> None:
        settings: Settings = request.app.state.settings
        if not settings.auth_enabled:
            return
        held: list[str] | None = getattr(request.state, "permissions", None)
        if held is None:
            held = permissions_of(settings, request)
            request.state.permissions = held
        if not grants(held, self.permission):
            raise ApiError(403, "FORBIDDEN", f"missing permission {self.permission}")


def require(permission: str) -> Requirement:
    return Requirement(permission)


def may(request: Request, permission: str) -> bool:
    """Whether the authenticated caller holds ``permission``, for parts of a response (auth off: always).

    Only for routes guarded by :func:`require`, which authenticated the caller; unauthenticated callers may nothing.
    """
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        return True
    held: list[str] | None = getattr(request.state, "permissions", None)
    return held is not None and grants(held, permission)
