"""Backoff as a pure function: the template's per-step policy with jitter, unless the handler asked for a delay.

tasker-core parses ``retry.backoff``, ``backoff_base_ms`` and ``max_backoff_ms`` and then ignores them; we honour
them. ``attempt`` is the number of the attempt that just failed (1 for the first run).
"""

from __future__ import annotations

import math
import random
from typing import Literal

Backoff = Literal["none", "linear", "exponential", "fibonacci"]
JITTER_FRACTION = 0.1
# A handler's retry_after is honoured up to a day: a larger (or infinite) value would park the step for years, and
# before this cap a huge one overflowed the retry timestamp, so its result message failed on every read, forever.
MAX_RETRY_AFTER_SECONDS = 86_400.0


def _fibonacci(n: int) -> int:
    a, b = 1, 1
    for _ in range(max(n - 1, 0)):
        a, b = b, a + b
    return a


def policy_delay_ms(kind: Backoff, base_ms: int, max_ms: int, attempt: int) -> float:
    """The delay before the next attempt, before jitter, capped at ``max_ms``."""
    attempt = max(attempt, 1)
    if kind == "none":
        return 0.0
    if kind == "linear":
        raw = base_ms * attempt
    elif kind == "fibonacci":
        raw = base_ms * _fibonacci(attempt)
    else:
        raw = base_ms * 2 ** min(attempt - 1, 40)
    return float(min(raw, max_ms))


def backoff_seconds(
    kind: Backoff,
    base_ms: int,
    max_ms: int,
    attempt: int,
    *,
    retry_after_seconds: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait: the handler's ``retry_after`` when given, else the policy delay with ±10 % jitter."""
    requested = clamp_retry_after(retry_after_seconds)
    if requested is not None:
        return requested
    delay_ms = policy_delay_ms(kind, base_ms, max_ms, attempt)
    jitter = (rng or random).uniform(-JITTER_FRACTION, JITTER_FRACTION) * delay_ms
    return max(min(delay_ms + jitter, float(max_ms)), 0.0) / 1000.0


def clamp_retry_after(value: object) -> float | None:
    """A handler's requested delay as seconds in ``[0, MAX_RETRY_AFTER_SECONDS]``; None when absent or not a number
    (the stored result is JSON written by any worker, so it is not trusted to be well formed)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
