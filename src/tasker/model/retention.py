"""The cutoff of a prune, from what an operator types: an age (``30d``, ``12h``, ``2w``) or an ISO date or time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tasker.errors import InvalidTaskRequestError

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_cutoff(text: str, now: datetime | None = None) -> datetime:
    """An aware UTC instant: ``now`` minus an age (``90m``, ``30d``...), or an ISO 8601 date or time (a time
    without offset is UTC, a bare date is its midnight UTC). The future is refused: it would prune everything."""
    current = now or datetime.now(UTC)
    age = _AGE.match(text.lower())
    if age:
        cutoff = current - timedelta(seconds=float(age.group(1)) * _UNIT_SECONDS[age.group(2)])
    else:
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidTaskRequestError(
                f"cutoff {text!r}: expected an age such as 30d, 12h, 90m, 2w or an ISO date such as"
                " 2024-01-31 or 2024-01-31T12:00:00+02:00"
            ) from None
        cutoff = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if cutoff > current:
        raise InvalidTaskRequestError(f"cutoff {text!r} is in the future: it would prune every task")
    return cutoff
