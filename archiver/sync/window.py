"""Where a window sync starts: from the run records in the bucket, never from a local file.
Pure functions over parsed records (newest first), so any machine plans the same window.

1. The newest record of this run's lane stopped listing (budget spent, the API failing):
   resume it: the same window, from one page before the page it stopped at (one page of
   overlap absorbs a listing that shifted by a record meanwhile; a record seen twice is
   archived once).
2. Otherwise the window runs from the end of the last window that was listed completely,
   by every shard of its split, minus the look-back (statuses and email counters of recent
   followups still change), to today. ``--since`` overrides the start; the first sync needs
   it.

Either way, the debts the lane's last run left pending (failed, partial, or without their
debt record) are archived again: a debt that keeps failing is retried by every run without
holding the window back.

A record shifted past an already-read page while a resumed window was listed (a followup
deleted upstream meanwhile) is caught by the next window's look-back or by ``sync --full``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from archiver.errors import ConfigError
from archiver.retention.durations import parse_duration
from archiver.sync.runs import RECENT
from archiver.sync.shards import Shard, day_slice

__all__ = ["DEFAULT_LOOKBACK", "WindowPlan", "lookback_days", "plan_window"]

DEFAULT_LOOKBACK = "P3D"


@dataclass(frozen=True)
class WindowPlan:
    """The window of a run: all days (``first``..``last``), this shard's days (``slice``,
    None when it has none), the page to list from (None: nothing left to list), the
    debts to archive again, whole, and those archived without their debt record (left by
    the run resumed, ``resumes``: its key)."""

    first: date
    last: date
    slice: tuple[date, date] | None
    first_page: int | None = 1
    pending_debts: list[str] = field(default_factory=list)
    pending_debt_records: list[str] = field(default_factory=list)
    resumes: str | None = None
    lookback: str | None = DEFAULT_LOOKBACK

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "slice": (
                {"from": self.slice[0].isoformat(), "to": self.slice[1].isoformat()}
                if self.slice
                else None
            ),
            "lookback": self.lookback,
            "first_page": self.first_page or 1,
            "resumes": self.resumes,
        }


def lookback_days(text: str) -> int:
    """``P3D`` -> 3, ``P1W`` -> 7; months and years are refused (their length varies)."""
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"--lookback: {exc}") from None
    if duration.years or duration.months:
        raise ConfigError(f"--lookback {text}: give days or weeks (P3D, P2W), not months/years")
    return duration.days


def _day(value: Any) -> date:
    return date.fromisoformat(str(value))


def plan_window(
    records: Iterable[tuple[str, dict[str, Any]]],
    *,
    lane: str,
    shard: Shard,
    today: date,
    lookback: str = DEFAULT_LOOKBACK,
    since: date | None = None,
) -> WindowPlan:
    """The window of the next run of ``lane`` (see the module docstring).

    ``records``: (key, record) of the run records (valid ones), newest start first; only what
    is needed is read: the scan stops at the first window listed completely by every shard
    of its split, once the lane's recent runs are seen."""
    days = lookback_days(lookback)
    covered: date | None = None
    groups: dict[tuple[str, str, int], set[int]] = {}
    recent: list[tuple[str, dict[str, Any]]] = []
    for n, (key, record) in enumerate(records):
        if record.get("mode") != "window" or not record.get("window"):
            continue
        if record.get("lane") == lane and n < RECENT:
            recent.append((key, record))
        if covered is None and _listed(record):
            win, count = record["window"], int(record["shard"]["count"])
            indexes = groups.setdefault((win["from"], win["to"], count), set())
            indexes.add(int(record["shard"]["index"]))
            if len(indexes) == count:
                covered = _day(win["to"])
        if covered is not None and n >= RECENT:
            break
    latest = max(recent, key=lambda kr: str(kr[1].get("finished_at", ""))) if recent else None
    pending = (latest[1].get("pending") or {}) if latest else {}
    carried = {
        "pending_debts": list(pending.get("debts") or []),
        "pending_debt_records": list(pending.get("debt_records") or []),
        "resumes": latest[0] if latest and not latest[1].get("complete") else None,
    }
    if since is None and latest is not None and pending.get("next_page"):
        win = latest[1]["window"]
        first, last = _day(win["from"]), _day(win["to"])
        return WindowPlan(
            first,
            last,
            day_slice(shard, first, last),
            first_page=max(1, int(pending["next_page"]) - 1),
            lookback=win.get("lookback") or lookback,
            **carried,  # type: ignore[arg-type]
        )
    if since is not None:
        first = since
    elif covered is not None:
        first = covered - timedelta(days=days)
    else:
        raise ConfigError(
            "no complete window sync is recorded in this bucket yet: the first sync needs "
            "--since YYYY-MM-DD (how far back to archive), or use --full"
        )
    first = min(first, today)
    return WindowPlan(first, today, day_slice(shard, first, today), lookback=lookback, **carried)  # type: ignore[arg-type]


def _listed(record: dict[str, Any]) -> bool:
    """Whether a run listed its whole window (debts it left pending are carried, not relisted)."""
    return not (record.get("pending") or {}).get("next_page")
