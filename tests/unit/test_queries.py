"""The statement files: each statement is sent without its comment lines, headed by its name, and the hot path's
statements stay short enough for psycopg to keep their parsed form (it re-parses longer ones on every call)."""

from __future__ import annotations

import pytest
from psycopg import _queries

from tasker.store.queries import Q, parse

HOT_PATH = [
    "task_create",
    "step_claim_from_queue",
    "step_claim_kept",
    "step_result_store_many",
    "step_outcome_many",
    "step_readiness_many",
    "task_advance_many",
    "queue_send_many",
]


def test_a_statement_is_sent_headed_by_its_name_without_its_comment_lines() -> None:
    text = "-- name: thing_get\n-- why it exists\nSELECT 1 -- trailing note\n  -- indented comment\nFROM x;\n"
    assert parse(text, "t.sql") == {"thing_get": "/* thing_get */\nSELECT 1 -- trailing note\nFROM x;"}
    for name, statement in Q.items():
        assert statement.startswith(f"/* {name} */\n")
        assert not any(line.lstrip().startswith("--") for line in statement.splitlines()), name


@pytest.mark.parametrize("name", HOT_PATH)
def test_the_hot_path_statements_fit_psycopgs_parse_cache(name: str) -> None:
    assert len(Q[name].encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SELECT 1;\n-- name: a\nSELECT 2;", "before the first"),
        ("-- name: a\n-- only a comment\n", "is empty"),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "defined twice"),
    ],
)
def test_malformed_statement_files_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(text, "bad.sql")
