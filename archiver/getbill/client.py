"""Reads of the getbill.io external API (``{base}/external-api/v1``): followups and debts.

The client reads, it never writes to getbill. Transport concerns (auth, retries, rate limits,
translating httpx errors) are :class:`archiver.getbill.http.ApiHttp`'s; which records are
accepted is :mod:`archiver.getbill.records`' (each record of a listing is validated on its
own: records without a usable id are skipped and reported, others are kept and their
problems reported beside them, see :class:`Listing`). Settings and events live in
:mod:`archiver.getbill.settings`, the page loop in :mod:`archiver.getbill.pagination`.
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
from archiver.common.schemas import validate
from archiver.errors import ApiError, ConfigError, ValidationError
from archiver.getbill.http import ApiHttp
from archiver.getbill.pagination import Duplicate, Page, PageNumberPaginator, paginate
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

__all__ = ["GetbillClient", "Listing"]


T = TypeVar("T")


@dataclass
class Listing(Generic[T]):
    """All records of a listing, and every problem found while reading them.

    ``problems`` are :class:`ValidationError` with ``kept`` in their context (False: the record
    was skipped, it cannot be archived) and ``severity`` (``error`` or ``warning``). Listing-level
    warnings (the listing changed while read, count mismatch) have no ``kept``.
    """

    items: list[T] = field(default_factory=list)
    problems: list[ValidationError] = field(default_factory=list)
    pages_fetched: int = 0
    total: int | None = None
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def skipped(self) -> list[ValidationError]:
        """Problems that made a record unusable."""
        return [p for p in self.problems if is_fatal(p)]


class GetbillClient:
    """Reads followups and debts from getbill. Use as a context manager, or call :meth:`close`.

    ``http``: the ``httpx.Client`` to use (not closed by us); default: our own.
    ``sleep``/``clock``: injected so tests never really wait. ``on_event``: receives
    :class:`ApiEvent` (rate-limit waits, retries, token renewals, pages).
    ``rng``: the random source of the backoff jitter.
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
    ) -> None:
        if settings.auth_mode == "none":
            raise ConfigError(
                "no getbill credentials: set GETBILL_TOKEN, or GETBILL_CLIENT_ID and "
                "GETBILL_CLIENT_SECRET"
            )
        self.settings = settings
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
        listing: Listing[Any] = Listing()
        index = 0
        unique_records = 0
        paginator = self._paginator()
        for page in self.iter_pages(resource, paginator=paginator):
            listing.pages_fetched += 1
            listing.total = page.total if page.total is not None else listing.total
            for raw in page.records:
                unique_records += 1
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
                            **{"followup_id" if kind == "followup" else "debt_id": dup.id},
                        )
                    )
        path = API_PREFIX + resource
        if paginator.total_changed:
            listing.problems.append(
                ValidationError(
                    f"the listing {path} changed while it was read (total went from "
                    f"{paginator.first_total} to {paginator.last_total}); records may have "
                    "shifted between pages: run again to be sure none was missed",
                    severity="warning",
                )
            )
        elif listing.total is not None and unique_records != listing.total:
            listing.problems.append(
                ValidationError(
                    f"the listing {path} announced {listing.total} records but "
                    f"{unique_records} distinct ones were received",
                    severity="warning",
                )
            )
        return listing

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
