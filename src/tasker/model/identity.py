"""Task identity (reference §6) and the size limits on request JSON (reference §2.3).

``tasks.identity_hash`` carries a UNIQUE index, so the hash decides which requests are "the same task". It is a
SHA-256 hex digest (64 characters, fits ``varchar(128)``) over the named task and either the canonical context,
the caller's idempotency key, or a fresh random value, depending on the template's identity strategy.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from tasker.errors import InvalidTaskRequestError

MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 10
MAX_OBJECT_KEYS = 1000
MAX_STRING_CHARS = 10_000

STRATEGIES = ("strict", "caller_provided", "always_unique")


def canonical_json(value: Any) -> str:
    """One text per JSON value: keys sorted at every level, no whitespace, arrays in order, NaN refused.

    Two contexts that differ only in key order or formatting therefore hash the same.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def identity_hash(strategy: str, named_task_uuid: UUID | str, context: Any, idempotency_key: str | None = None) -> str:
    """The identity of a task request; equal hashes mean the database refuses the second task.

    A given ``idempotency_key`` wins over every strategy (the caller said what "the same request" means).
    """
    if strategy not in STRATEGIES:
        raise InvalidTaskRequestError(f"identity_strategy: unknown strategy {strategy!r} (expected {STRATEGIES})")
    if idempotency_key is not None and idempotency_key != "":
        return _sha256(f"{named_task_uuid}:key:{idempotency_key}")
    if strategy == "caller_provided":
        raise InvalidTaskRequestError(
            "idempotency_key: required because this template's identity_strategy is caller_provided"
        )
    if strategy == "always_unique":
        return _sha256(f"{named_task_uuid}:unique:{uuid.uuid4()}")
    return _sha256(f"{named_task_uuid}:{canonical_json(context)}")


def check_json_limits(value: Any, field_name: str) -> None:
    """Refuse request JSON that would bloat rows or indexes: ≤ 1 MiB, depth ≤ 10, ≤ 1000 keys, strings ≤ 10000.

    Depth counts containers: ``{"a": 1}`` has depth 1, ``{"a": {"b": 1}}`` depth 2.
    """
    _check_shape(value, field_name)
    try:
        size = len(canonical_json(value).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise InvalidTaskRequestError(f"{field_name}: not representable as JSON: {exc}") from None
    if size > MAX_JSON_BYTES:
        raise InvalidTaskRequestError(f"{field_name}: {size} bytes of JSON exceeds the limit of {MAX_JSON_BYTES}")


def _check_shape(value: Any, field_name: str) -> None:
    pending: list[tuple[Any, str, int]] = [(value, field_name, 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            _check_string(item, path, field_name)
        elif isinstance(item, Mapping | list | tuple):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidTaskRequestError(
                    f"{field_name}: nesting at {path} exceeds the depth limit of {MAX_JSON_DEPTH}"
                )
            pending.extend(_members(item, path, depth, field_name))


def _members(item: Any, path: str, depth: int, field_name: str) -> list[tuple[Any, str, int]]:
    if isinstance(item, Mapping):
        if len(item) > MAX_OBJECT_KEYS:
            raise InvalidTaskRequestError(
                f"{field_name}: object at {path} has {len(item)} keys, over the limit of {MAX_OBJECT_KEYS}"
            )
        for key in item:
            _check_string(str(key), f"{path} (a key)", field_name)
        return [(member, f"{path}.{key}", depth) for key, member in item.items()]
    return [(member, f"{path}[{index}]", depth) for index, member in enumerate(item)]


def _check_string(text: str, path: str, field_name: str) -> None:
    if len(text) > MAX_STRING_CHARS:
        raise InvalidTaskRequestError(
            f"{field_name}: string at {path} has {len(text)} characters, over the limit of {MAX_STRING_CHARS}"
        )
