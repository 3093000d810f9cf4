"""The request budget of one sync run: every getbill request counts, by kind, and none is
sent once the budget is spent (:class:`~archiver.errors.BudgetExhaustedError` instead).

getbill allows 1,000 reads an hour per OAuth client, token requests included. A run's budget
is ``--max-requests`` when given, else what ``X-RateLimit-Remaining`` says after the run's
first request, less a reserve (:func:`default_reserve`) so that a manual ``archiver archive``
or another shard still has room in the same hour. The budget is checked before each request
is sent (:attr:`archiver.getbill.http.ApiHttp.gate`), so the server never has to refuse one.

Other processes may spend the same client's hour meanwhile (``archiver listen``, another
shard): after every answer the budget follows what the server says is left
(:meth:`RequestBudget.follow`), so a run never spends into its reserve. The reserves are
tiered: a sync keeps :func:`default_reserve`, the listener only :func:`listener_reserve`, so
the sync stops first and the real-time capture gets the last slice of the hour, still short
of a 429.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass

from archiver.errors import BudgetExhaustedError

__all__ = [
    "REQUEST_KINDS",
    "RequestBudget",
    "default_reserve",
    "listener_reserve",
    "request_kind",
]

REQUEST_KINDS = (
    "token",  # POST /token
    "followups_listing",  # GET /followups (the window listing)
    "debt_followups",  # GET /followups/debt/{id} (per-debt listing: full mode, pending debts)
    "refresh",  # GET /followups/{id} (fresh signed media URLs)
    "debts_listing",  # GET /debts (pages of debt records)
    "debt",  # GET /debts/{id}
)


def request_kind(path: str) -> str:
    """The kind of a request by its path (``/external-api/v1/followups/debt/X`` -> kind)."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1] == "token":
        return "token"
    if "followups" in parts:
        rest = parts[parts.index("followups") + 1 :]
        if not rest:
            return "followups_listing"
        return "debt_followups" if rest[0] == "debt" else "refresh"
    if "debts" in parts:
        return "debts_listing" if parts[-1] == "debts" else "debt"
    return "other"


def default_reserve(limit: int | None) -> int:
    """Requests a run leaves unspent by default: a tenth of the hourly limit, at least 20."""
    return max(20, math.ceil((limit or 1000) / 10))


def listener_reserve(limit: int | None) -> int:
    """Requests ``archiver listen`` leaves unspent: a fiftieth of the hourly limit, at least 5.
    Smaller than :func:`default_reserve`: a sync running at the same time stops first, and
    the gap between the two absorbs what each sends before it sees the other's spending."""
    return max(5, math.ceil((limit or 1000) / 50))


@dataclass(frozen=True)
class Spent:
    """What a run spent: requests by kind, and what was left of its budget."""

    by_kind: dict[str, int]
    total: int
    limit: int | None
    exhausted: bool

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.total)

    def to_json(self) -> dict[str, object]:
        return {
            "by_kind": dict(self.by_kind),
            "total": self.total,
            "limit": self.limit,
            "left": self.left,
            "exhausted": self.exhausted,
        }


class RequestBudget:
    """Counts requests and refuses the one past the limit. Thread-safe.

    ``limit``: the most requests the run may send; None until :meth:`settle` learns it from
    the rate-limit headers (the first request is always allowed: it is what tells).
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("a request budget is at least 1 request")
        self.limit = limit
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.exhausted = False

    def take(self, path: str, *, server_remaining: int | None = None, floor: int = 0) -> None:
        """Count one request to ``path``, or raise :class:`BudgetExhaustedError` (not sent):
        when this run's budget is spent, or when the server says no more than ``floor``
        requests are left this hour (``server_remaining``: from the last answer's headers;
        others spend the same client's hour)."""
        with self._lock:
            total = sum(self._counts.values())
            if self.limit is not None and total >= self.limit:
                self.exhausted = True
                raise BudgetExhaustedError(
                    f"request budget exhausted: {total} of {self.limit} requests spent",
                    path=path,
                    limit=self.limit,
                )
            if server_remaining is not None and server_remaining <= floor:
                self.exhausted = True
                raise BudgetExhaustedError(
                    f"request budget exhausted: the API has {server_remaining} requests left "
                    f"this hour for this client (this run keeps {floor} in reserve)",
                    path=path,
                    limit=self.limit,
                )
            self._counts[request_kind(path)] += 1

    def settle(self, remaining: int | None, hourly_limit: int | None) -> None:
        """Without ``--max-requests``: the budget is what the server says is left now, less
        the reserve. Called once the first answer's headers are known."""
        with self._lock:
            if self.limit is not None or remaining is None:
                return
            spent = sum(self._counts.values())
            self.limit = max(1, spent + remaining - default_reserve(hourly_limit))

    def follow(self, remaining: int | None, hourly_limit: int | None) -> None:
        """Lower the budget when the server says less is left than it still allows (another
        process spends the same client's hour): never below the reserve the server reports.
        It never grows: a window that resets meanwhile is left to the next run."""
        with self._lock:
            if self.limit is None or remaining is None:
                return
            spent = sum(self._counts.values())
            self.limit = min(self.limit, max(1, spent + remaining - default_reserve(hourly_limit)))

    @property
    def spent(self) -> Spent:
        with self._lock:
            counts = {k: self._counts[k] for k in REQUEST_KINDS if self._counts[k]}
            counts.update({k: v for k, v in self._counts.items() if k not in REQUEST_KINDS})
            return Spent(counts, sum(self._counts.values()), self.limit, self.exhausted)

    def left(self) -> int | None:
        """Requests still allowed (None: not known yet)."""
        return self.spent.left
