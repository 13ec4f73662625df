"""Domain events, pure: which conditions an outcome matches, the envelope, schema checks, glob patterns."""

from __future__ import annotations

import re
from uuid import UUID, uuid4

import pytest

from tasker.model.events import (
    EventSource,
    Patterns,
    condition_matches,
    events_for,
    glob_to_like,
    outcome_of,
    schema_problem,
)
from tasker.model.template import EventDeclaration

SOURCE = EventSource(uuid4(), uuid4(), "charge", "shop", "order", "1.0.0", uuid4(), "worker-1", 2)


def _declare(name: str, **fields: object) -> EventDeclaration:
    return EventDeclaration.model_validate({"name": name, **fields})


@pytest.mark.parametrize(
    ("success", "error_retryable", "step_retryable", "attempts", "max_attempts", "expected"),
    [
        (True, False, True, 1, 3, "success"),
        (False, True, True, 1, 3, "retryable_failure"),
        (False, True, True, 3, 3, "permanent_failure"),  # attempts used up
        (False, False, True, 1, 3, "permanent_failure"),  # the handler said it cannot be retried
        (False, True, False, 1, 3, "permanent_failure"),  # the step is not retryable
    ],
)
def test_outcome_follows_the_orchestrators_retry_rule(
    success: bool, error_retryable: bool, step_retryable: bool, attempts: int, max_attempts: int, expected: str
) -> None:
    got = outcome_of(success=success, error_retryable=error_retryable, step_retryable=step_retryable,
                     attempts=attempts, max_attempts=max_attempts)  # fmt: skip
    assert got == expected


def test_conditions() -> None:
    table = {
        c: [o for o in ("success", "retryable_failure", "permanent_failure") if condition_matches(c, o)]  # type: ignore[arg-type]
        for c in ("success", "failure", "retryable_failure", "permanent_failure", "always")
    }
    assert table == {
        "success": ["success"],
        "failure": ["retryable_failure", "permanent_failure"],
        "retryable_failure": ["retryable_failure"],
        "permanent_failure": ["permanent_failure"],
        "always": ["success", "retryable_failure", "permanent_failure"],
    }


def test_events_for_builds_the_envelope_and_leaves_out_misshapen_payloads() -> None:
    declarations = [
        _declare("payment.captured", schema={"type": "object", "required": ["charge_id"]}),
        _declare("payment.failed", condition="failure"),
        _declare("payment.misshapen", schema={"type": "object", "required": ["other"]}),
        _declare("payment.seen", condition="always", delivery_mode="fast"),
    ]
    stored = {"success": True, "result": {"charge_id": "ch_1"}, "metadata": {"retryable": False}}
    ids = iter([UUID(int=1), UUID(int=2)])
    events, skipped = events_for(declarations, "success", SOURCE, stored, fired_at="now", new_uuid=lambda: next(ids))
    assert [(e.name, e.delivery_mode, e.durable, e.fast) for e in events] == [
        ("payment.captured", "durable", True, False),
        ("payment.seen", "fast", False, True),
    ]
    assert [s.name for s in skipped] == ["payment.misshapen"] and "/: 'other' is a required" in skipped[0].reason
    envelope = events[0].payload
    assert envelope["event_id"] == str(UUID(int=1)) and envelope["event_version"] == "1.0"
    assert envelope["payload"] == {"payload": {"charge_id": "ch_1"}, "execution_result": stored}
    assert envelope["metadata"]["step_uuid"] == str(SOURCE.step_uuid)
    assert envelope["metadata"]["correlation_id"] == str(SOURCE.correlation_id)
    assert envelope["metadata"]["fired_by"] == "worker-1" and envelope["metadata"]["attempt"] == 2

    failure = {"success": False, "result": None, "error": {"message": "declined"}}
    events, _ = events_for(declarations, "permanent_failure", SOURCE, failure, fired_at="now", new_uuid=uuid4)
    assert [e.name for e in events] == ["payment.failed", "payment.seen"]
    assert events[0].payload["payload"]["payload"] == {"message": "declined"}


def test_a_broken_schema_is_reported_not_raised() -> None:
    problem = schema_problem(_declare("x", schema={"type": 12}), {})
    assert problem is not None and problem.startswith("its schema is not valid JSON Schema")


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        ([], "anything", True),
        (["*"], "order.created", True),
        (["order.*"], "order.created", True),
        (["order.*"], "order.item.added", True),
        (["order.*"], "orders.created", False),
        (["order.?"], "order.a", True),
        (["order.?"], "order.ab", False),
        (["order.created"], "order.created", True),
        (["order.created"], "order.created.late", False),
        (["a.*", "b.*"], "b.x", True),
        (["[ab]"], "a", False),  # brackets are literal: only * and ? are wildcards
    ],
)
def test_patterns_match_like_tasker_core_globs(patterns: list[str], name: str, expected: bool) -> None:
    assert Patterns(patterns).matches(name) is expected
    # the SQL side agrees: LIKE semantics checked with a regular expression built from the LIKE pattern
    likes = Patterns(patterns).like()
    assert (not likes or any(_like(p, name) for p in likes)) is expected


def _like(pattern: str, text: str) -> bool:
    out, escaped = "", False
    for char in pattern:
        if escaped:
            out += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out += ".*" if char == "%" else "." if char == "_" else re.escape(char)
    return re.fullmatch(out, text, re.DOTALL) is not None


def test_like_escapes_its_own_wildcards() -> None:
    assert glob_to_like("a%b_c\\d*e?") == "a\\%b\\_c\\\\d%e_"
