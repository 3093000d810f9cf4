"""Page-number pagination of getbill list endpoints. No I/O: the caller supplies ``fetch``.

getbill list responses look like ``{"data": [...], "pagination": {"total", "page", "limit",
"pages"}}`` and are read with ``?page=N&limit=L``. A :class:`PageNumberPaginator` decides what
to ask for next from what the last page said; :func:`paginate` is the one generic loop that
drives it and yields :class:`Page` objects. Neither knows about HTTP.

Rules, in the order they are checked after each page:

* an empty ``data`` list ends the listing;
* ``page >= pages`` ends it (``pages`` is re-read on every page: records added or removed
  while we read make ``total``/``pages`` move, and the latest value is the best we have);
* without ``pages``, a page shorter than ``limit`` ends it;
* a record whose ``id`` was already seen on an earlier page is dropped (the first copy is
  kept): offset pagination repeats records when new ones are inserted before the cursor;
* after ``max_pages`` pages, if the server still says there is more, :class:`ApiError` is
  raised: a server that never ends must not keep a run going forever.

One run of that loop is a *pass*. A pass whose ``total`` moved, that repeated ids across
pages or whose distinct records differ in number from the final ``total`` has *shifted*: records
inserted or removed before the cursor while it was read may have been skipped (an insertion at
the top pushes records already seen onto the next page, and the new ones are on a page already
read). :class:`PassOutcome` sums a pass up; :func:`listing_settled` says when a listing read
again needs no further pass, :func:`may_be_missing` how many records a listing that never
settled may lack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from archiver.common.canonical import canonical_json
from archiver.errors import ApiError

__all__ = [
    "Duplicate",
    "Page",
    "PageNumberPaginator",
    "PassOutcome",
    "listing_settled",
    "may_be_missing",
    "paginate",
]


@dataclass(frozen=True)
class Duplicate:
    """A record dropped because its ``id`` already appeared on an earlier page."""

    id: str
    page: int
    first_page: int
    same_content: bool


@dataclass(frozen=True)
class Page:
    """One page as the paginator saw it. ``records`` excludes duplicates of earlier pages."""

    number: int
    records: list[Any]
    total: int | None
    pages: int | None
    duplicates: list[Duplicate] = field(default_factory=list)


@dataclass(frozen=True)
class PassOutcome:
    """What one pass over a listing saw: its ids, totals, repeats and record count."""

    ids: frozenset[str]
    records: int  # records kept (distinct ids, plus records without a usable id)
    first_total: int | None
    last_total: int | None
    total_changed: bool
    duplicates: int

    @property
    def count_mismatch(self) -> bool:
        """The final ``total`` is not the number of distinct records received."""
        return self.last_total is not None and self.records != self.last_total

    @property
    def shifted(self) -> bool:
        """The listing may have moved under the pass (see the module docstring)."""
        return self.total_changed or self.duplicates > 0 or self.count_mismatch


def listing_settled(passes: Sequence[PassOutcome]) -> bool:
    """Whether the passes read so far need no further one.

    The last pass settles the listing if it did not shift (what a single pass needs too), or if
    it gave the same ids as the pass before (a server whose oddities repeat identically, such
    as a wrong ``total``, has nothing more to show).
    """
    if not passes:
        return False
    last = passes[-1]
    return not last.shifted or (len(passes) > 1 and passes[-2].ids == last.ids)


def may_be_missing(passes: Sequence[PassOutcome]) -> int:
    """An estimate of the records a listing that never settled lacks (0: unknown).

    The larger of what the last pass fell short of its final ``total`` and how many ids the
    last pass found that the one before had not (as many may have slipped past the last one).
    """
    if not passes:
        return 0
    last = passes[-1]
    short = (last.last_total - last.records) if last.last_total is not None else 0
    new = len(last.ids - passes[-2].ids) if len(passes) > 1 else 0
    return max(short, new, 0)


def _as_int(value: Any) -> int | None:
    # bool is an int subclass; a "pages": true is a malformed envelope, not 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


class PageNumberPaginator:
    """State of one ``?page=N&limit=L`` listing. Feed it each response body with :meth:`update`."""

    def __init__(
        self,
        *,
        limit: int = 100,
        max_pages: int = 1000,
        id_field: str = "id",
        fingerprint: Callable[[dict[str, Any]], bytes] | None = None,
        first_page: int = 1,
    ) -> None:
        """``fingerprint`` turns a record into bytes to tell a repeated record from a changed
        one (default: its canonical JSON; pass one that ignores freshly signed URLs).
        ``first_page``: where a listing resumes (``max_pages`` counts from it)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self.limit = limit
        self.max_pages = max_pages
        self.id_field = id_field
        self.fingerprint = fingerprint or _fingerprint
        if first_page < 1:
            raise ValueError("first_page must be at least 1")
        self.page = first_page
        self.has_next = True
        self.pages_fetched = 0
        self.first_total: int | None = None
        self.last_total: int | None = None
        self.total_changed = False
        self.records_kept = 0
        self.duplicates_seen = 0
        # id -> (page first seen, canonical bytes of the first copy)
        self._seen: dict[str, tuple[int, bytes]] = {}

    def params(self) -> dict[str, int]:
        """Query parameters for the next request."""
        return {"page": self.page, "limit": self.limit}

    def update(self, body: dict[str, Any]) -> Page:
        """Digest one response body (already known to be a list envelope); advance the state."""
        data = body.get("data")
        records: list[Any] = list(data) if isinstance(data, list) else []
        meta = body.get("pagination")
        meta = meta if isinstance(meta, dict) else {}
        total = _as_int(meta.get("total"))
        pages = _as_int(meta.get("pages"))

        if total is not None:
            if self.first_total is None:
                self.first_total = total
            elif total != self.last_total:
                self.total_changed = True
            self.last_total = total

        kept: list[Any] = []
        duplicates: list[Duplicate] = []
        for record in records:
            rid = record.get(self.id_field) if isinstance(record, dict) else None
            if not isinstance(rid, str):
                # No usable id: cannot be deduplicated; the caller's validation reports it.
                kept.append(record)
                continue
            fingerprint = self.fingerprint(record)
            if rid in self._seen:
                first_page, first_fp = self._seen[rid]
                duplicates.append(Duplicate(rid, self.page, first_page, first_fp == fingerprint))
                continue
            self._seen[rid] = (self.page, fingerprint)
            kept.append(record)

        page = Page(self.page, kept, total, pages, duplicates)
        self.pages_fetched += 1
        self.records_kept += len(kept)
        self.duplicates_seen += len(duplicates)

        if not records:
            self.has_next = False
        elif pages is not None:
            self.has_next = self.page < pages
        else:
            self.has_next = len(records) >= self.limit
        if self.has_next:
            self.page += 1
        return page

    def outcome(self) -> PassOutcome:
        """A summary of the pages digested so far (the whole pass once it has ended)."""
        return PassOutcome(
            ids=frozenset(self._seen),
            records=self.records_kept,
            first_total=self.first_total,
            last_total=self.last_total,
            total_changed=self.total_changed,
            duplicates=self.duplicates_seen,
        )

    def check_cap(self, *, path: str | None = None) -> None:
        """Raise :class:`ApiError` if another page is needed but the cap is reached."""
        if self.has_next and self.pages_fetched >= self.max_pages:
            raise ApiError(
                f"the listing did not end after {self.max_pages} pages of {self.limit} records "
                "(the hard cap on pages); the server keeps announcing more pages. Stopped so a "
                "misbehaving server cannot keep the run going forever; raise max_pages if the "
                "listing is really that long",
                path=path,
            )


def _fingerprint(record: dict[str, Any]) -> bytes:
    try:
        return canonical_json(record)
    except Exception:  # noqa: BLE001 - a record canonical JSON refuses still needs a fingerprint
        return repr(sorted(record.items(), key=lambda kv: str(kv[0]))).encode()


def paginate(
    fetch: Callable[[dict[str, int]], dict[str, Any]],
    paginator: PageNumberPaginator,
    *,
    path: str | None = None,
) -> Iterator[Page]:
    """The generic loop: ask ``fetch(params)`` for pages until ``paginator`` says stop."""
    while paginator.has_next:
        paginator.check_cap(path=path)
        yield paginator.update(fetch(paginator.params()))
