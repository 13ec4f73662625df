"""Task identity hashes and request JSON limits (reference §6, §2.3)."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tasker.errors import InvalidTaskRequestError
from tasker.model.identity import (
    MAX_JSON_DEPTH,
    canonical_json,
    check_json_limits,
    identity_hash,
)

NAMED_TASK = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")


def test_canonical_json_sorts_keys_recursively_and_keeps_array_order() -> None:
    value = {"b": [3, {"z": 1, "a": 2}], "a": {"y": None, "x": "é"}}
    assert canonical_json(value) == '{"a":{"x":"é","y":null},"b":[3,{"a":2,"z":1}]}'
    assert canonical_json([2, 1]) != canonical_json([1, 2])


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_strict_ignores_key_order_but_not_values() -> None:
    first = identity_hash("strict", NAMED_TASK, {"b": 2, "a": {"d": 4, "c": 3}})
    second = identity_hash("strict", NAMED_TASK, {"a": {"c": 3, "d": 4}, "b": 2})
    assert first == second
    assert len(first) == 64
    expected = hashlib.sha256(f'{NAMED_TASK}:{{"a":{{"c":3,"d":4}},"b":2}}'.encode()).hexdigest()
    assert first == expected
    assert identity_hash("strict", NAMED_TASK, {"a": {"c": 3, "d": 5}, "b": 2}) != first
    assert identity_hash("strict", uuid.uuid4(), {"a": {"c": 3, "d": 4}, "b": 2}) != first


def test_always_unique_never_collides() -> None:
    hashes = {identity_hash("always_unique", NAMED_TASK, {"same": True}) for _ in range(500)}
    assert len(hashes) == 500


def test_caller_provided_requires_key() -> None:
    with pytest.raises(InvalidTaskRequestError, match="idempotency_key"):
        identity_hash("caller_provided", NAMED_TASK, {"a": 1})
    with pytest.raises(InvalidTaskRequestError, match="idempotency_key"):
        identity_hash("caller_provided", NAMED_TASK, {"a": 1}, "")
    keyed = identity_hash("caller_provided", NAMED_TASK, {"a": 1}, "order-42")
    assert keyed == hashlib.sha256(f"{NAMED_TASK}:key:order-42".encode()).hexdigest()
    assert identity_hash("caller_provided", NAMED_TASK, {"a": 2}, "order-42") == keyed
    assert identity_hash("caller_provided", NAMED_TASK, {"a": 1}, "order-43") != keyed


@pytest.mark.parametrize("strategy", ["strict", "always_unique", "caller_provided"])
def test_idempotency_key_overrides_every_strategy(strategy: str) -> None:
    expected = hashlib.sha256(f"{NAMED_TASK}:key:k1".encode()).hexdigest()
    assert identity_hash(strategy, NAMED_TASK, {"x": 1}, "k1") == expected
    assert identity_hash(strategy, NAMED_TASK, {"x": 2}, "k1") == expected


def test_unknown_strategy_refused() -> None:
    with pytest.raises(InvalidTaskRequestError, match="identity_strategy"):
        identity_hash("loose", NAMED_TASK, {})


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def test_limits_accept_the_boundaries() -> None:
    check_json_limits(nested(MAX_JSON_DEPTH), "context")
    check_json_limits({f"k{i}": "x" * 10_000 for i in range(100)}, "context")
    check_json_limits({f"k{i}": i for i in range(1000)}, "context")
    check_json_limits(["a", "b"], "tags")


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (nested(MAX_JSON_DEPTH + 1), r"^context: nesting at .* exceeds the depth limit of 10$"),
        ([[[[[[[[[[["deep"]]]]]]]]]]], r"depth limit of 10"),
        ({f"k{i}": i for i in range(1001)}, r"^context: object at context has 1001 keys, over the limit of 1000$"),
        (
            {"a": {"b": "x" * 10_001}},
            r"^context: string at context\.a\.b has 10001 characters, over the limit of 10000$",
        ),
        ({"k" * 10_001: 1}, r"string at context \(a key\)"),
        ({f"k{i}": "x" * 9000 for i in range(120)}, r"^context: \d+ bytes of JSON exceeds the limit of 1048576$"),
        ({"x": object()}, r"^context: not representable as JSON"),
    ],
)
def test_limits_refuse_and_name_field_and_limit(value: object, pattern: str) -> None:
    with pytest.raises(InvalidTaskRequestError, match=pattern):
        check_json_limits(value, "context")


def test_limits_name_the_given_field() -> None:
    with pytest.raises(InvalidTaskRequestError, match=r"^tags: string at tags\[1\]"):
        check_json_limits(["ok", "t" * 10_001], "tags")
