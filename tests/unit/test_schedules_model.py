"""Cron checks, tick planning (catch-up, time zones) and prune cutoffs: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasker.errors import InvalidScheduleError, InvalidTaskRequestError
from tasker.model.retention import parse_cutoff
from tasker.model.schedules import ScheduleSpec, check_cron, check_timezone, next_tick, plan_tick

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["*/5 * * * *", "0 9 * * 1-5", "* * * * * */10", "@hourly", "  0  0 * * *  "])
def test_valid_expressions_are_normalised(expression: str) -> None:
    assert check_cron(expression) == " ".join(expression.split())


@pytest.mark.parametrize("expression", ["", "* * * *", "* * * * * * * *", "61 * * * *", "bad cron", "@sometimes"])
def test_invalid_expressions_name_the_expression(expression: str) -> None:
    with pytest.raises(InvalidScheduleError, match="cron expression"):
        check_cron(expression)


def test_unknown_time_zone() -> None:
    with pytest.raises(InvalidScheduleError, match="time zone 'Mars/Olympus'"):
        check_timezone("Mars/Olympus")


def test_next_tick_is_strictly_after() -> None:
    assert next_tick("*/5 * * * *", "UTC", T0) == T0 + timedelta(minutes=5)
    assert next_tick("* * * * * *", "UTC", T0) == T0 + timedelta(seconds=1)


def test_ticks_follow_the_schedules_time_zone_across_dst() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC after the change of 31 March 2024
    before = datetime(2024, 3, 30, 12, 0, tzinfo=UTC)
    first = next_tick("0 9 * * *", "Europe/Paris", before)
    second = next_tick("0 9 * * *", "Europe/Paris", first)
    assert (first, second) == (datetime(2024, 3, 31, 7, 0, tzinfo=UTC), datetime(2024, 4, 1, 7, 0, tzinfo=UTC))


def test_an_on_time_tick_fires_itself() -> None:
    tick = plan_tick("*/5 * * * *", "UTC", T0, T0 + timedelta(seconds=2))
    assert (tick.scheduled_for, tick.next_run_at, tick.missed_since) == (T0, T0 + timedelta(minutes=5), None)


def test_missed_ticks_fold_into_one_catch_up_for_the_latest() -> None:
    now = T0 + timedelta(hours=3, minutes=7)
    tick = plan_tick("*/5 * * * *", "UTC", T0, now)
    assert tick.scheduled_for == T0 + timedelta(hours=3, minutes=5)
    assert tick.next_run_at == T0 + timedelta(hours=3, minutes=10)
    assert tick.missed_since == T0


def test_spec_checks_cron_and_zone_and_builds_the_request() -> None:
    spec = ScheduleSpec(name="nightly", cron=" 0 3 * * * ", namespace="ns", task_name="t", context={"a": 1})
    checked = spec.checked()
    assert checked.cron == "0 3 * * *"
    request = checked.task_request(idempotency_key="k")
    assert (request.namespace, request.name, request.version, request.context) == ("ns", "t", "1.0.0", {"a": 1})
    with pytest.raises(InvalidScheduleError):
        spec.model_copy(update={"timezone": "Nowhere/Land"}).checked()


def test_cutoff_from_an_age_or_an_iso_date() -> None:
    now = datetime(2024, 6, 30, tzinfo=UTC)
    assert parse_cutoff("30d", now) == now - timedelta(days=30)
    assert parse_cutoff("12h", now) == now - timedelta(hours=12)
    assert parse_cutoff("2w", now) == now - timedelta(weeks=2)
    assert parse_cutoff("2024-01-31", now) == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_cutoff("2024-01-31T12:00:00+02:00", now) == datetime(2024, 1, 31, 10, tzinfo=UTC)


@pytest.mark.parametrize("text", ["soon", "30 days", "-3d", "2999-01-01"])
def test_bad_or_future_cutoffs_are_refused(text: str) -> None:
    with pytest.raises(InvalidTaskRequestError, match="cutoff"):
        parse_cutoff(text, datetime(2024, 6, 30, tzinfo=UTC))
