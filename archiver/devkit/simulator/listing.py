"""Fast listings of the simulator's followups: a per-company index and a cache of query results.

``GET /followups`` at company scale (thousands of debts, tens of thousands of followups) must
not walk and re-parse every record for each page. :class:`Listings` keeps, per company, the
followup ids in both orders of ``GET /followups`` with each one's date, and the id lists of
the queries already answered. Both are rebuilt lazily when ``Dataset.revision`` has moved (a
followup added, removed, reordered or edited), so a page of a listing already computed costs
a slice.

The date of a followup is its ``call_date``, else its ``scheduled_at`` (timestamps without an
offset are taken as UTC); its *day* is the UTC date of that instant. ``from``/``to`` bounds are
days, both inclusive; a followup with neither date is excluded once a bound is given. In date
order the dated followups come oldest first (ties by id), then the undated ones by id.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple

from archiver.devkit.simulator.config import FOLLOWUP_ORDERS
from archiver.devkit.simulator.data import Dataset

# Distinct queries kept per revision; beyond that the cache starts afresh (a client paging
# many filters at once costs rebuilds, never memory without bound).
MAX_CACHED_QUERIES = 256


class FollowupQuery(NamedTuple):
    """The filters of one ``GET /followups`` listing (None: no filter)."""

    company: str
    order: str = "debt"
    status: str | None = None
    type: str | None = None
    debt_id: str | None = None
    first_day: date | None = None
    last_day: date | None = None


def followup_instant(record: dict[str, Any]) -> datetime | None:
    """The moment a followup is dated at: ``call_date``, else ``scheduled_at`` (None: neither
    or unparsable). Timestamps without an offset are taken as UTC."""
    stamp = record.get("call_date") or record.get("scheduled_at")
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _day_start(day: date) -> float:
    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class CompanyIndex:
    """One company's followups in both orders, with their dates (unix seconds)."""

    by_debt: list[str]
    by_date: list[str]  # the dated ones first, sorted; then the undated ones by id
    dated_stamps: list[float]  # stamps of by_date[: len(dated_stamps)], ascending
    stamp_of: dict[str, float | None]

    @classmethod
    def build(cls, ds: Dataset, company: str) -> CompanyIndex:
        by_debt: list[str] = []
        stamp_of: dict[str, float | None] = {}
        for debt_id, owner in ds.company_of.items():
            if owner != company:
                continue
            for fid in ds.by_debt.get(debt_id, ()):
                by_debt.append(fid)
                moment = followup_instant(ds.followups[fid])
                stamp_of[fid] = None if moment is None else moment.timestamp()
        dated = sorted((s, fid) for fid, s in stamp_of.items() if s is not None)
        undated = sorted(fid for fid, s in stamp_of.items() if s is None)
        return cls(
            by_debt=by_debt,
            by_date=[fid for _, fid in dated] + undated,
            dated_stamps=[s for s, _ in dated],
            stamp_of=stamp_of,
        )

    def select(self, ds: Dataset, query: FollowupQuery) -> list[str]:
        """The ids the query lists, in its order."""
        low = None if query.first_day is None else _day_start(query.first_day)
        high = None if query.last_day is None else _day_start(query.last_day) + 86_400.0
        bounded = low is not None or high is not None
        if query.order == "date":
            candidates = self.by_date
            if bounded:
                # Sorted by date: the day bounds are one slice of the dated prefix.
                stamps = self.dated_stamps
                start = 0 if low is None else bisect.bisect_left(stamps, low)
                stop = len(stamps) if high is None else bisect.bisect_left(stamps, high)
                candidates = candidates[start:stop]
                bounded = False
        else:
            candidates = self.by_debt
        if query.debt_id is None and query.status is None and query.type is None and not bounded:
            return list(candidates)
        out = []
        followups, stamp_of = ds.followups, self.stamp_of
        for fid in candidates:
            rec = followups[fid]
            if query.debt_id is not None and rec["debt_id"] != query.debt_id:
                continue
            if query.status is not None and rec["status"] != query.status:
                continue
            if query.type is not None and rec["type"] != query.type:
                continue
            if bounded:
                stamp = stamp_of[fid]
                if stamp is None or (low is not None and stamp < low):
                    continue
                if high is not None and stamp >= high:
                    continue
            out.append(fid)
        return out


class Listings:
    """Followup listings of every company, cached until the dataset's revision moves.

    Not thread-safe on its own: the simulator calls it under its lock.
    """

    def __init__(self) -> None:
        self._revision = -1
        self._indexes: dict[str, CompanyIndex] = {}
        self._results: dict[FollowupQuery, list[str]] = {}

    def _fresh(self, ds: Dataset) -> None:
        if ds.revision != self._revision:
            self._indexes.clear()
            self._results.clear()
            self._revision = ds.revision

    def index(self, ds: Dataset, company: str) -> CompanyIndex:
        """The (cached) index of one company's followups."""
        self._fresh(ds)
        found = self._indexes.get(company)
        if found is None:
            found = self._indexes[company] = CompanyIndex.build(ds, company)
        return found

    def followups(self, ds: Dataset, query: FollowupQuery) -> list[str]:
        """The followup ids ``query`` lists, in its order (a cached list: do not modify)."""
        if query.order not in FOLLOWUP_ORDERS:
            raise ValueError(f"unknown followups order {query.order!r}")
        self._fresh(ds)
        found = self._results.get(query)
        if found is None:
            if len(self._results) >= MAX_CACHED_QUERIES:
                self._results.clear()
            found = self._results[query] = self.index(ds, query.company).select(ds, query)
        return found
