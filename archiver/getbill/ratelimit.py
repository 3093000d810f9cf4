"""getbill rate limits: the ``X-RateLimit-*`` state and how long a 429 asks us to wait.

Pure functions of headers, bodies and the current time; the client (``api.py``) does the
waiting. Documented by getbill: every response carries ``X-RateLimit-Limit``, ``-Remaining``,
``-Reset`` (unix time) and ``-Window`` (seconds); a 429 body carries ``details.retry_after``
(seconds) and ``details.reset_time`` (ISO 8601). ``Retry-After`` is not documented but honoured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from archiver.common.time import parse_iso_lenient

__all__ = ["RateLimitState", "to_number", "wait_from_429"]

# Below this, an X-RateLimit-Reset cannot be a unix time (2001-09-09): read it as "seconds".
_UNIX_TIME_FLOOR = 1e9


@dataclass
class RateLimitState:
    """The last ``X-RateLimit-*`` headers seen. ``reset_at`` is a unix time."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    window: int | None = None
    updated_at: float | None = None

    def update(self, headers: Mapping[str, str], now: float) -> None:
        """Take in the rate-limit headers of one response (missing or garbled ones are ignored)."""
        seen = False
        for header, attr in (
            ("X-RateLimit-Limit", "limit"),
            ("X-RateLimit-Remaining", "remaining"),
            ("X-RateLimit-Window", "window"),
        ):
            value = to_number(headers.get(header))
            if value is not None:
                setattr(self, attr, int(value))
                seen = True
        reset = to_number(headers.get("X-RateLimit-Reset"))
        if reset is not None:
            self.reset_at = reset if reset > _UNIX_TIME_FLOOR else now + reset
            seen = True
        if seen:
            self.updated_at = now

    def quota_wait(self, now: float) -> float | None:
        """Seconds until the window resets if the last response said no request is left."""
        if self.remaining != 0 or self.reset_at is None:
            return None
        wait = self.reset_at - now
        return wait if wait > 0 else None


def wait_from_429(
    body: Any, headers: Mapping[str, str], state: RateLimitState, now: float
) -> tuple[float, str] | None:
    """``(seconds, where that came from)`` for a 429, or None if the server gave no hint.

    Order: ``details.retry_after``, ``details.reset_time``, ``Retry-After``,
    ``X-RateLimit-Reset`` (already in ``state``).
    """
    details = body.get("details") if isinstance(body, dict) else None
    details = details if isinstance(details, dict) else {}
    retry_after = to_number(details.get("retry_after"))
    if retry_after is not None:
        return max(0.0, retry_after), f"server asked {retry_after:.0f} s"
    reset_time = details.get("reset_time")
    reset = parse_iso_lenient(reset_time)
    if reset is not None:
        return max(0.0, reset.timestamp() - now), f"until reset at {reset_time}"
    header = headers.get("Retry-After")
    if header:
        seconds = to_number(header)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(header).timestamp() - now
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            return max(0.0, seconds), "Retry-After header"
    if state.reset_at is not None:
        return max(0.0, state.reset_at - now), "until X-RateLimit-Reset"
    return None


def to_number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; else None (bools are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
