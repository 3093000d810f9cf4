"""Debt records for a sync run: read the cheaper way, and no more often than they can change.

**When a debt's record is read again** (:meth:`DebtRecords.needed`): when the debt has a new
or changed followup in this run (the record changes with the activity on the debt: counters,
status, the last contact), when none is archived yet, or when an earlier run could not read
it (its budget ran out). Otherwise the archived record stands and costs no request. A change
without any followup activity (a payment, an address) is archived by the next ``--full``
pass, which reads every debt record through the listing: schedule one weekly.

**How** (:meth:`DebtRecords.get`): one ``GET /debts/{id}`` per debt while few are needed;
once more would be needed than the pages of ``GET /debts`` (100 debts a page) would cost,
the listing is read instead, once, and serves every later debt from memory. The number of
pages is known from the first listing page, read as soon as the run expects more than
``switch_after`` debts (a window sync knows how many it touched once its listing ended), or
when the single reads reach that number: it brings 100 records too, so it is never wasted.
A sync needs at most ``switch_after + pages`` requests for debt records, whatever the number
of debts, and ``pages`` when it knows up front that it needs many.

A token without ``debts:read`` is asked once per run: after the first 403 no debt record is
requested again (every manifest notes why it has none).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from archiver.errors import ApiAuthError, BudgetExhaustedError
from archiver.getbill.pagination import Page, PageNumberPaginator
from archiver.getbill.records import Debt, accept_listed, build_debt, stable_fingerprint

__all__ = ["DebtRecords", "DebtReader"]
PAGE = 100


class DebtReader(Protocol):
    """The reads :class:`DebtRecords` needs (a :class:`~archiver.getbill.client.GetbillClient`)."""

    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[Any]]: ...
    def iter_pages(
        self, resource: str, params: Any = None, *, paginator: PageNumberPaginator | None = None
    ) -> Iterator[Page]: ...


class DebtRecords:
    """Debt records of one run (see the module docstring). Thread-safe."""

    def __init__(
        self,
        api: DebtReader,
        *,
        switch_after: int = 5,
        expected_debts: int | None = None,
    ) -> None:
        self.api = api
        self.switch_after = switch_after
        self.expected_debts = expected_debts  # debts this run will likely need records of
        self._cache: dict[str, tuple[Debt, list[Any]]] = {}
        self._lock = threading.Lock()
        self._forbidden: ApiAuthError | None = None
        self.refused: set[str] = set()
        self._must_read: set[str] = set()  # debts whose record the spent budget kept unread
        self._single_reads = 0
        self._pages: int | None = None  # pages of GET /debts, once known
        self._listed = False  # the whole listing is in the cache
        self.strategy = "single"

    @property
    def forbidden(self) -> ApiAuthError | None:
        """Why this run reads no debt record (the token lacks ``debts:read``), if so."""
        return self._forbidden

    def remember(self, debt: Debt, problems: list[Any]) -> None:
        """Keep a record read elsewhere (the full mode's listing)."""
        with self._lock:
            self._cache[debt.id] = (debt, problems)

    def mark_listed(self) -> None:
        """The whole ``GET /debts`` listing went through :meth:`remember`."""
        with self._lock:
            self._listed = True
            self.strategy = "listing"

    # -- the rule (archiver.archive.plan.DebtRecordRule)

    def read_again(self, debt_ids: list[str]) -> None:
        """Debts whose record an earlier run could not read (its budget ran out): read them."""
        with self._lock:
            self._must_read.update(debt_ids)

    def needed(self, debt_id: str, previous: dict[str, Any] | None, changed: bool) -> bool:
        """Whether the debt's record is read again (see the module docstring)."""
        if previous is None or changed or debt_id in self._must_read:
            return True
        archived = previous.get("debt")
        if not archived:
            # None archived: read it, unless this run already knows it cannot.
            return self._forbidden is None
        return False  # kept (or deleted at its maximum retention: never read again)

    # -- the read (archiver.archive.plan.FollowupSource.get_debt_checked)

    def get(self, debt_id: str) -> tuple[Debt, list[Any]]:
        """The debt's record (see the module docstring for how it is read)."""
        with self._lock:
            if self._forbidden is not None:
                raise self._forbidden
            hit = self._cache.get(debt_id)
            if hit is not None:
                return hit
            try:
                cheaper = self._single_reads >= self.switch_after and self._listing_cheaper()
                if cheaper:
                    self._read_listing()
            except BudgetExhaustedError:
                self.refused.add(debt_id)
                raise
            except ApiAuthError as exc:
                self._forbidden = exc  # the token lacks debts:read: asked once
                raise
            hit = self._cache.get(debt_id)  # page 1 may have brought it
            if hit is not None:
                return hit
            # Not listed (the listing shifted while read, or does not show this debt):
            # GET /debts/{id} says for itself, a 404 included.
            self._single_reads += 1
        try:
            found = self.api.get_debt_checked(debt_id)
        except ApiAuthError as exc:
            with self._lock:
                self._forbidden = exc
            raise
        except BudgetExhaustedError:
            with self._lock:
                self.refused.add(debt_id)
            raise
        with self._lock:
            self._cache[debt_id] = found
        return found

    def _listing_cheaper(self) -> bool:
        """Whether the rest of the listing costs fewer requests than single reads would."""
        if self._pages is None:
            self._read_page_one()
        remaining_pages = max(0, (self._pages or 1) - 1)
        expected = self.expected_debts
        if expected is None:
            return True  # unknown: the listing bounds the cost
        return expected - self._single_reads > remaining_pages

    def _read_page_one(self) -> None:
        for page in self.api.iter_pages("/debts", paginator=self._paginator(1)):
            self._take(page.records)
            self._pages = page.pages or math.ceil((page.total or len(page.records)) / PAGE)
            break
        if (self._pages or 1) <= 1:
            self._listed = True  # that page was the whole listing
            self.strategy = "listing"

    def _read_listing(self) -> None:
        """The pages after the first (read already by :meth:`_read_page_one`)."""
        if not self._listed:
            for page in self.api.iter_pages("/debts", paginator=self._paginator(2)):
                self._take(page.records)
        self._listed = True
        self.strategy = "listing"

    @staticmethod
    def _paginator(first_page: int) -> PageNumberPaginator:
        return PageNumberPaginator(
            limit=PAGE, max_pages=100_000, fingerprint=stable_fingerprint, first_page=first_page
        )

    def expect(self, debts: int) -> None:
        """How many debts this run will likely need records of (the engine's estimate)."""
        with self._lock:
            self.expected_debts = debts

    def _take(self, records: list[Any]) -> None:
        for index, raw in enumerate(records):
            debt, problems = accept_listed("debt", raw, index, build_debt, None)
            if debt is not None:  # an unusable record: that debt's manifest says so
                self._cache[debt.id] = (debt, problems)
