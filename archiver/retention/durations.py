"""Calendar durations of retention rules (``P3Y``, ``P6M``, ``P90D``) and their date maths.

* **Calendar durations.** ``P1Y``/``P6M`` add calendar years/months, clamping to the end of the
  month (2024-02-29 + P1Y = 2025-02-28, 2024-08-31 + P6M = 2025-02-28); then days (and weeks,
  as 7 days) are added as 24-hour days. Time of day is kept.
* **Comparing durations** (``max >= min``) depends on the start date (P1M vs P30D), so
  :func:`never_shorter` checks it from every start date of a whole leap cycle.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "DURATION_EXPECTED",
    "DURATION_RE",
    "Duration",
    "add_duration",
    "never_shorter",
    "parse_duration",
]

DURATION_RE = re.compile(r"P(?=\d)(?:(\d{1,4})Y)?(?:(\d{1,4})M)?(?:(\d{1,4})W)?(?:(\d{1,5})D)?")
DURATION_EXPECTED = (
    "an ISO 8601 duration of years, months, weeks or days such as P3Y, P6M, P1Y6M, P90D"
)
# A bound keeps date maths far from datetime's year 9999 limit; no record rule comes close.
_MAX_YEARS = 100


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years and months (end-of-month clamped), then days."""

    years: int = 0
    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if min(self.years, self.months, self.days) < 0:
            raise ValueError("duration components must not be negative")

    def __str__(self) -> str:
        parts = [(self.years, "Y"), (self.months, "M"), (self.days, "D")]
        text = "".join(f"{n}{unit}" for n, unit in parts if n)
        return f"P{text or '0D'}"

    @property
    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days)


def parse_duration(text: str) -> Duration:
    """Parse ``P3Y``, ``P6M``, ``P1Y6M``, ``P2W``, ``P90D`` (weeks become 7 days).

    Raises :class:`ValueError` saying what is expected: time parts (``PT1H``), fractions,
    signs, lowercase and durations over 100 years are refused.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected {DURATION_EXPECTED}, got {type(text).__name__}")
    if "T" in text:
        raise ValueError(
            f"{text!r} has a time part; only years, months, weeks and days are allowed"
        )
    match = DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not {DURATION_EXPECTED}")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    duration = Duration(years=years, months=months, days=weeks * 7 + days)
    if years + months / 12 + duration.days / 365 > _MAX_YEARS:
        raise ValueError(f"{text!r} is longer than {_MAX_YEARS} years")
    return duration


def add_duration(when: datetime, duration: Duration) -> datetime:
    """``when + duration`` with calendar semantics (see the module docstring)."""
    month_index = when.month - 1 + duration.months + 12 * duration.years
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day) + timedelta(days=duration.days)


# Every day of a whole leap cycle: comparing two calendar durations depends on the start date
# (P1M vs P30D), so "max >= min" must hold from every start date; four years cover every
# month length and leap position.
_REFERENCE_DAYS = [
    datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)
    for i in range((date(2028, 1, 1) - date(2024, 1, 1)).days)
]


def never_shorter(longer: Duration, shorter: Duration) -> bool:
    """Whether ``longer`` reaches at least as far as ``shorter`` from every start date."""
    # Fast path: more months (in total) and more days is longer from any start date.
    months = (longer.years - shorter.years) * 12 + longer.months - shorter.months
    if months >= 0 and longer.days >= shorter.days:
        return True
    return all(add_duration(d, longer) >= add_duration(d, shorter) for d in _REFERENCE_DAYS)
