"""What a sync run hands the archive pipeline for each debt
(:class:`archiver.archive.plan.FollowupSource`): the followups its window listing brought
(a *partial* listing: a followup outside the window is carried, not "missing upstream"),
or, for a debt archived whole (full mode, a debt left pending), its own complete listing;
debt records through :class:`~archiver.sync.debts.DebtRecords`; refreshes from the client.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from archiver.getbill.client import Listing
from archiver.getbill.records import Debt, Followup
from archiver.sync.debts import DebtRecords

__all__ = ["FollowupReads", "WindowSource"]


class FollowupReads(Protocol):
    """The client reads a sync needs for followups."""

    def list_followups(self, debt_id: str) -> Listing[Followup]: ...
    def get_followup(self, followup_id: str) -> Followup: ...


class WindowSource:
    """Followups of the debts a sync touches. Thread-safe."""

    def __init__(self, api: FollowupReads, debts: DebtRecords) -> None:
        self.api = api
        self.debts = debts
        self._window: dict[str, dict[str, Followup]] = {}  # debt -> followup id -> copy
        self._whole: set[str] = set()
        self._lock = threading.Lock()

    def add(self, followup: Followup) -> None:
        """A followup the window listing brought (a later copy replaces an earlier one)."""
        with self._lock:
            self._window.setdefault(followup.debt_id, {})[followup.id] = followup

    def archive_whole(self, debt_id: str) -> None:
        """Archive this debt from its own complete listing (``GET /followups/debt/{id}``)."""
        with self._lock:
            self._whole.add(debt_id)

    def archives_whole(self, debt_id: str) -> bool:
        with self._lock:
            return debt_id in self._whole

    def window_count(self, debt_id: str) -> int:
        with self._lock:
            return len(self._window.get(debt_id, {}))

    def list_followups(self, debt_id: str) -> Listing[Followup]:
        with self._lock:
            whole = debt_id in self._whole
            items = list(self._window.get(debt_id, {}).values())
        if whole:
            return self.api.list_followups(debt_id)
        return Listing(items=items, partial=True)

    def get_followup(self, followup_id: str) -> Followup:
        return self.api.get_followup(followup_id)

    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[Any]]:
        return self.debts.get(debt_id)
