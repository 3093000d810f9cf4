"""Reads of the getbill.io external API (``{base}/external-api/v1``): followups and debts.

The client reads, it never writes to getbill. Transport concerns (auth, retries, rate limits,
translating httpx errors) are :class:`archiver.getbill.http.ApiHttp`'s; which records are
accepted is :mod:`archiver.getbill.records`' (each record of a listing is validated on its
own: records without a usable id are skipped and reported, others are kept and their
problems reported beside them, see :class:`Listing`). Settings and events live in
:mod:`archiver.getbill.settings`, the page loop in :mod:`archiver.getbill.pagination`.

A listing that shifts while it is read (``total`` moves, ids repeat across pages, the count
received is not the final ``total``) is read again, up to ``listing_passes`` passes in all,
until it settles (:func:`archiver.getbill.pagination.listing_settled`); the result is the union
of every pass, so a record seen once is never dropped. One that never settles is marked
``unstable`` with a :class:`~archiver.common.problems.Problem` saying how many records may be
missing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from archiver.common.ids import check_id
from archiver.common.problems import Problem, ProblemKind
from archiver.common.schemas import validate
from archiver.errors import ApiError, ConfigError, ValidationError
from archiver.getbill.http import ApiHttp
from archiver.getbill.pagination import (
    Duplicate,
    Page,
    PageNumberPaginator,
    PassOutcome,
    listing_settled,
    may_be_missing,
    paginate,
)
from archiver.getbill.ratelimit import RateLimitState
from archiver.getbill.records import (
    Builder,
    Debt,
    Followup,
    RecordKind,
    accept_listed,
    accept_single,
    build_debt,
    build_followup,
    is_fatal,
    record_label,
    stable_fingerprint,
)
from archiver.getbill.settings import API_PREFIX, ApiEvent, ApiSettings

__all__ = ["DEFAULT_LISTING_PASSES", "GetbillClient", "Listing"]


T = TypeVar("T")

DEFAULT_LISTING_PASSES = 3
"""Passes over one listing at most: the first, and two more if it keeps shifting."""


@dataclass
class Listing(Generic[T]):
    """All records of a listing, and every problem found while reading them.

    ``problems`` are :class:`ValidationError` with ``kept`` in their context (False: the record
    was skipped, it cannot be archived) and ``severity`` (``error`` or ``warning``). Listing-level
    warnings (the listing changed while read but settled when read again, count mismatch) have
    no ``kept``.

    ``items`` are the union of every pass: the last pass's copies, then records only earlier
    passes saw (removed upstream meanwhile, or pushed past the last pass). ``pages_fetched``
    counts the pages of all passes (each one API request), ``passes`` the passes,
    ``duplicates`` and ``total`` are the last pass's.

    ``unstable``: the listing kept shifting for every pass allowed; records may be missing
    from ``items`` and ``unstable_problem`` (kind ``ListingUnstable``, blocking) estimates how
    many (``details["may_be_missing"]``, 0 when unknown). A consumer must not conclude from
    such a listing that a record it lacks is gone upstream.

    ``partial``: the listing holds only part of the records on purpose (the followups of a
    date window, :mod:`archiver.sync`); a record it lacks is not gone upstream either.
    """

    items: list[T] = field(default_factory=list)
    problems: list[ValidationError] = field(default_factory=list)
    pages_fetched: int = 0
    total: int | None = None
    duplicates: list[Duplicate] = field(default_factory=list)
    passes: int = 1
    unstable: bool = False
    unstable_problem: Problem | None = None
    partial: bool = False

    @property
    def skipped(self) -> list[ValidationError]:
        """Problems that made a record unusable."""
        return [p for p in self.problems if is_fatal(p)]


class GetbillClient:
    """Reads followups and debts from getbill. Use as a context manager, or call :meth:`close`.

    ``http``: the ``httpx.Client`` to use (not closed by us); default: our own.
    ``sleep``/``clock``: injected so tests never really wait. ``on_event``: receives
    :class:`ApiEvent` (rate-limit waits, retries, token renewals, pages).
    ``rng``: the random source of the backoff jitter. ``listing_passes``: how many times at
    most one listing is read while it keeps shifting (see the module docstring).
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[ApiEvent], None] | None = None,
        rng: random.Random | None = None,
        listing_passes: int = DEFAULT_LISTING_PASSES,
    ) -> None:
        if listing_passes < 1:
            raise ValueError("listing_passes must be at least 1")
        if settings.auth_mode == "none":
            raise ConfigError(
                "no getbill credentials: set GETBILL_TOKEN, or GETBILL_CLIENT_ID and "
                "GETBILL_CLIENT_SECRET"
            )
        self.settings = settings
        self.listing_passes = listing_passes
        self.http = ApiHttp(
            settings, http=http, sleep=sleep, clock=clock, on_event=on_event, rng=rng
        )

    @property
    def rate_limit(self) -> RateLimitState:
        """What the last response's ``X-RateLimit-*`` headers said."""
        return self.http.rate_limit

    # -- lifecycle

    def close(self) -> None:
        """Close the HTTP client if we created it."""
        self.http.close()

    def __enter__(self) -> GetbillClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the token or secret: only where we talk to and how we authenticate.
        return (
            f"GetbillClient(base_url={self.settings.base_url!r}, auth={self.settings.auth_mode!r})"
        )

    # -- public reads

    def list_followups(self, debt_id: str) -> Listing[Followup]:
        """Every followup of a debt (``GET /followups/debt/{id}``, all pages).

        Records naming another debt are skipped and reported (they would be archived under
        the wrong debt).
        """
        did = check_id(debt_id, what="debt id")
        return self._listing(
            f"/followups/debt/{quote(did, safe='')}",
            "followup",
            build_followup,
            expected_debt_id=did,
        )

    def get_followup(self, followup_id: str) -> Followup:
        """A fresh copy of one followup (``GET /followups/{id}``): fresh signed media URLs."""
        return self.get_followup_checked(followup_id)[0]

    def get_followup_checked(self, followup_id: str) -> tuple[Followup, list[ValidationError]]:
        """Like :meth:`get_followup`, also returning the problems of a record that was kept.

        Raises :class:`ValidationError` if the record cannot be used (no/unsafe id, another id).
        """
        fid = check_id(followup_id, what="followup id")
        raw, problems = self._one(f"/followups/{quote(fid, safe='')}", "followup", fid)
        followup, more = build_followup(raw, record_label("followup", raw, None))
        return followup, problems + more

    def get_debt(self, debt_id: str) -> Debt:
        """One debt (``GET /debts/{id}``; needs ``debts:read``). Holds personal data."""
        return self.get_debt_checked(debt_id)[0]

    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[ValidationError]]:
        """Like :meth:`get_debt`, also returning the problems of a record that was kept."""
        did = check_id(debt_id, what="debt id")
        raw, problems = self._one(f"/debts/{quote(did, safe='')}", "debt", did)
        return Debt.from_record(raw), problems

    def list_debts(self) -> Listing[Debt]:
        """Every debt visible to the credentials (``GET /debts``, all pages)."""
        return self._listing("/debts", "debt", build_debt)

    def iter_pages(
        self,
        resource: str,
        params: Mapping[str, Any] | None = None,
        *,
        paginator: PageNumberPaginator | None = None,
    ) -> Iterator[Page]:
        """The raw pages of any list endpoint under ``/external-api/v1`` (``resource`` like
        ``/followups``), deduplicated by id, with the page cap applied. Records are not
        validated here; pass ``paginator`` to read its totals afterwards."""
        path = API_PREFIX + resource
        if paginator is None:
            paginator = self._paginator()
        extra = dict(params or {})

        def fetch(page_params: dict[str, int]) -> dict[str, Any]:
            body = self.http.get_json(resource, {**extra, **page_params})
            shape = validate("list_response", body, label=f"page {page_params['page']}")
            if shape:
                raise ApiError(
                    "getbill answered a list request with an unexpected shape: "
                    + "; ".join(p.message for p in shape[:3]),
                    path=path,
                )
            return body

        for page in paginate(fetch, paginator, path=path):
            self.http.emit(
                ApiEvent(
                    "page",
                    f"{path}: page {page.number}"
                    + (f"/{page.pages}" if page.pages else "")
                    + f", {len(page.records)} records",
                    path=path,
                    page=page.number,
                    pages=page.pages,
                )
            )
            yield page

    def _paginator(self) -> PageNumberPaginator:
        return PageNumberPaginator(
            limit=self.settings.page_limit,
            max_pages=self.settings.max_pages,
            fingerprint=stable_fingerprint,
        )

    # -- listings and single records

    def _listing(
        self,
        resource: str,
        kind: RecordKind,
        build: Builder,
        *,
        expected_debt_id: str | None = None,
    ) -> Listing[Any]:
        path = API_PREFIX + resource
        passes: list[tuple[Listing[Any], PassOutcome]] = []
        while True:
            passes.append(self._pass(resource, kind, build, expected_debt_id))
            outcomes = [outcome for _, outcome in passes]
            if listing_settled(outcomes) or len(passes) >= self.listing_passes:
                break
            self.http.emit(
                ApiEvent(
                    "relist",
                    f"{_shift_text(path, outcomes[-1])}; listing it again "
                    f"(pass {len(passes) + 1} of at most {self.listing_passes})",
                    path=path,
                )
            )
        return _merge(passes, kind, path, expected_debt_id)

    def _pass(
        self,
        resource: str,
        kind: RecordKind,
        build: Builder,
        expected_debt_id: str | None,
    ) -> tuple[Listing[Any], PassOutcome]:
        """Read the listing once: its records and their problems, and what the pass saw."""
        listing: Listing[Any] = Listing()
        index = 0
        paginator = self._paginator()
        for page in self.iter_pages(resource, paginator=paginator):
            listing.pages_fetched += 1
            listing.total = page.total if page.total is not None else listing.total
            for raw in page.records:
                item, problems = accept_listed(kind, raw, index, build, expected_debt_id)
                listing.problems.extend(problems)
                if item is not None:
                    listing.items.append(item)
                index += 1
            for dup in page.duplicates:
                listing.duplicates.append(dup)
                if not dup.same_content:
                    listing.problems.append(
                        ValidationError(
                            f"{kind} (id={dup.id}) appears again on page {dup.page} with "
                            f"different content; the copy from page {dup.first_page} is kept",
                            severity="warning",
                            kept=True,
                            **{_id_field(kind): dup.id},
                        )
                    )
        return listing, paginator.outcome()

    def _one(
        self, resource: str, kind: RecordKind, wanted_id: str
    ) -> tuple[dict[str, Any], list[ValidationError]]:
        path = API_PREFIX + resource
        body = self.http.get_json(resource)
        raw = body.get("data")
        if not isinstance(raw, dict):
            raise ApiError(
                f"getbill answered without a {kind} object in 'data'",
                path=path,
                status=200,
            )
        return raw, accept_single(kind, raw, wanted_id, path)


def _id_field(kind: RecordKind) -> str:
    return "followup_id" if kind == "followup" else "debt_id"


def _shift_reason(outcome: PassOutcome) -> str:
    """How a pass shifted, in a few words (the first reason that applies)."""
    if outcome.total_changed:
        return f"total went from {outcome.first_total} to {outcome.last_total}"
    if outcome.count_mismatch:
        return f"{outcome.last_total} records announced, {outcome.records} distinct received"
    return f"{outcome.duplicates} records repeated across pages"


def _shift_text(path: str, outcome: PassOutcome) -> str:
    """How a pass shifted, as the start of a sentence."""
    if outcome.total_changed:
        return f"the listing {path} changed while it was read ({_shift_reason(outcome)})"
    if outcome.count_mismatch:
        return (
            f"the listing {path} announced {outcome.last_total} records but "
            f"{outcome.records} distinct ones were received"
        )
    return f"the listing {path} repeated {outcome.duplicates} records across pages"


def _merge(
    passes: list[tuple[Listing[Any], PassOutcome]],
    kind: RecordKind,
    path: str,
    expected_debt_id: str | None,
) -> Listing[Any]:
    """One listing from every pass: the last pass, plus what only earlier passes saw."""
    last, last_outcome = passes[-1]
    merged: Listing[Any] = Listing(
        items=list(last.items),
        problems=list(last.problems),
        pages_fetched=sum(listing.pages_fetched for listing, _ in passes),
        total=last.total,
        duplicates=list(last.duplicates),
        passes=len(passes),
    )
    have = {item.id for item in merged.items}
    for earlier, _ in reversed(passes[:-1]):
        for item in earlier.items:
            if item.id in have:
                continue
            have.add(item.id)
            merged.items.append(item)
            merged.problems.extend(
                p for p in earlier.problems if p.context.get(_id_field(kind)) == item.id
            )
    outcomes = [outcome for _, outcome in passes]
    if not listing_settled(outcomes):
        merged.unstable = True
        merged.unstable_problem = _unstable_problem(outcomes, kind, path, expected_debt_id)
        return merged
    first = outcomes[0]
    if first.total_changed or first.count_mismatch:
        # Settled after more than one pass: a single settled pass did not shift.
        if not last_outcome.shifted:
            settled = f"read again, pass {len(passes)} was consistent: no record was missed"
        else:
            settled = (
                f"read again, passes {len(passes) - 1} and {len(passes)} gave the same records"
            )
        merged.problems.append(
            ValidationError(f"{_shift_text(path, first)}; {settled}", severity="warning")
        )
    return merged


def _unstable_problem(
    outcomes: list[PassOutcome], kind: RecordKind, path: str, debt_id: str | None
) -> Problem:
    missing = may_be_missing(outcomes)
    what = f"the followups of debt {debt_id}" if debt_id else f"the listing {path}"
    count = str(missing) if missing else "an unknown number of"
    return Problem(
        ProblemKind.LISTING_UNSTABLE,
        f"{what} kept changing while read: none of {len(outcomes)} passes settled (the "
        f"last: {_shift_reason(outcomes[-1])}); {count} {kind}s may be missing from this run, "
        "the next run should find them",
        debt_id=debt_id,
        details={
            "path": path,
            "passes": len(outcomes),
            "may_be_missing": missing,
            "total": outcomes[-1].last_total,
        },
    )
