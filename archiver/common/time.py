"""Time: the clock and the one date format the archive stores.

Stored dates are UTC ISO 8601 with a ``Z`` and whole seconds (``2026-11-28T10:15:00Z``);
event keys use the compact form ``20261128T101500.123456Z`` that sorts as a string.
Pure functions except :func:`utcnow`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, overload

__all__ = [
    "compact_stamp",
    "iso",
    "iso_from_compact",
    "iso_precise",
    "parse_iso",
    "parse_iso_lenient",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the default clock of every component)."""
    return datetime.now(UTC)


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z``, microseconds dropped: the one date format we store."""
    if dt is None:
        return None
    return dt.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def iso_precise(dt: datetime) -> str:
    """The same format keeping microseconds, for event times: an event written in the same
    second as a manifest's ``created_at`` must still compare after it."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(value: Any, *, naive_is_utc: bool = True) -> datetime | None:
    """ISO 8601 (``...Z`` or ``...+02:00``) -> aware datetime; ``None``/``""`` -> ``None``.

    Raises :class:`ValueError` for anything else, and for a time without offset unless
    ``naive_is_utc`` (records from the API must carry their offset; our own files are UTC).
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"datetime {value!r} has no UTC offset")
        dt = dt.replace(tzinfo=UTC)
    return dt


def parse_iso_lenient(value: Any) -> datetime | None:
    """Like :func:`parse_iso` in UTC, but anything unreadable gives ``None`` (for display and
    for hints such as rate-limit reset times, where a bad value must not stop the work)."""
    try:
        dt = parse_iso(value)
    except ValueError:
        return None
    return dt.astimezone(UTC) if dt is not None else None


def compact_stamp(when: datetime) -> str:
    """``20261128T101500.123456Z``: sorts by time as a string, unique to the microsecond."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\.\d+)?Z$")


def iso_from_compact(stamp: str) -> str:
    """``20261128T101500.123Z`` -> ``2026-11-28T10:15:00.123Z``; anything else unchanged."""
    m = _COMPACT.match(stamp)
    if not m:
        return stamp
    y, mo, d, h, mi, sec, frac = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{sec}{frac or ''}Z"
