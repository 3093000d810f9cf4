"""The paginator and its generic loop, without any HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from archiver.errors import ApiError
from archiver.getbill.pagination import (
    PageNumberPaginator,
    PassOutcome,
    listing_settled,
    may_be_missing,
    paginate,
)


def server(records: list[dict[str, Any]], limit_pages: int | None = None):
    """A fake list endpoint over ``records``; returns ``fetch`` and the list of params seen."""
    seen: list[dict[str, int]] = []

    def fetch(params: dict[str, int]) -> dict[str, Any]:
        seen.append(dict(params))
        page, limit = params["page"], params["limit"]
        pages = -(-len(records) // limit)
        data = records[(page - 1) * limit : page * limit]
        return {
            "error": False,
            "data": data,
            "pagination": {"total": len(records), "page": page, "limit": limit, "pages": pages},
        }

    return fetch, seen


def recs(n: int, prefix: str = "f") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i:04d}", "debt_id": "d1"} for i in range(n)]


def collect(fetch, paginator: PageNumberPaginator) -> list[dict[str, Any]]:
    return [r for page in paginate(fetch, paginator) for r in page.records]


def test_empty_listing_is_one_request():
    fetch, seen = server([])
    assert collect(fetch, PageNumberPaginator(limit=100)) == []
    assert seen == [{"page": 1, "limit": 100}]


def test_one_page():
    fetch, seen = server(recs(7))
    out = collect(fetch, PageNumberPaginator(limit=100))
    assert [r["id"] for r in out] == [f"f{i:04d}" for i in range(7)]
    assert len(seen) == 1


def test_250_records_across_3_pages_in_order():
    fetch, seen = server(recs(250))
    p = PageNumberPaginator(limit=100)
    pages = list(paginate(fetch, p))
    assert [len(pg.records) for pg in pages] == [100, 100, 50]
    assert [s["page"] for s in seen] == [1, 2, 3]
    ids = [r["id"] for pg in pages for r in pg.records]
    assert ids == [f"f{i:04d}" for i in range(250)]
    assert p.pages_fetched == 3 and not p.total_changed


def test_total_growing_mid_way_is_followed():
    records = recs(150)

    def fetch(params):
        page = params["page"]
        if page == 2:
            records.extend(recs(120, prefix="n"))  # 270 now: 3 pages instead of 2
        data = records[(page - 1) * 100 : page * 100]
        pages = -(-len(records) // 100)
        return {"data": data, "pagination": {"total": len(records), "page": page, "pages": pages}}

    p = PageNumberPaginator(limit=100)
    out = collect(fetch, p)
    assert len(out) == 270
    assert p.total_changed and p.first_total == 150 and p.last_total == 270


def test_total_shrinking_stops_early_without_error():
    def fetch(params):
        if params["page"] == 1:
            return {"data": recs(100), "pagination": {"total": 250, "pages": 3}}
        return {"data": recs(20, prefix="x"), "pagination": {"total": 120, "pages": 2}}

    p = PageNumberPaginator(limit=100)
    out = collect(fetch, p)
    assert len(out) == 120 and p.pages_fetched == 2 and p.total_changed


def test_duplicate_ids_across_pages_keep_first_copy():
    page1 = [{"id": "a", "v": 1}, {"id": "b", "v": 1}]
    page2 = [{"id": "b", "v": 2}, {"id": "c", "v": 1}, {"id": "a", "v": 1}]

    def fetch(params):
        data = page1 if params["page"] == 1 else page2
        return {"data": data, "pagination": {"total": 5, "pages": 2}}

    pages = list(paginate(fetch, PageNumberPaginator(limit=2)))
    out = [r for pg in pages for r in pg.records]
    assert out == [{"id": "a", "v": 1}, {"id": "b", "v": 1}, {"id": "c", "v": 1}]
    dups = pages[1].duplicates
    assert [(d.id, d.page, d.first_page, d.same_content) for d in dups] == [
        ("b", 2, 1, False),
        ("a", 2, 1, True),
    ]


def test_records_without_id_are_passed_through_for_validation():
    def fetch(params):
        return {"data": [{"x": 1}, {"x": 1}, "junk"], "pagination": {"pages": 1}}

    assert collect(fetch, PageNumberPaginator()) == [{"x": 1}, {"x": 1}, "junk"]


def test_without_pages_a_short_page_ends_the_listing():
    calls = []

    def fetch(params):
        calls.append(params["page"])
        n = 10 if params["page"] < 3 else 4
        return {"data": recs(n, prefix=f"p{params['page']}-")}

    out = collect(fetch, PageNumberPaginator(limit=10))
    assert len(out) == 24 and calls == [1, 2, 3]


def test_never_ending_server_hits_the_cap():
    calls = []

    def fetch(params):
        calls.append(params["page"])
        # Always claims one more page, with fresh ids so dedup cannot end it either.
        page = params["page"]
        return {"data": recs(2, prefix=f"p{page}-"), "pagination": {"pages": page + 1}}

    with pytest.raises(ApiError, match="did not end after 5 pages") as info:
        collect(fetch, PageNumberPaginator(limit=2, max_pages=5))
    assert calls == [1, 2, 3, 4, 5]
    assert "max_pages" in str(info.value)


def test_listing_of_exactly_the_cap_is_fine():
    fetch, seen = server(recs(10))
    out = collect(fetch, PageNumberPaginator(limit=2, max_pages=5))
    assert len(out) == 10 and len(seen) == 5


def test_bad_arguments_rejected():
    with pytest.raises(ValueError):
        PageNumberPaginator(limit=0)
    with pytest.raises(ValueError):
        PageNumberPaginator(max_pages=0)


# --- passes over a listing that may shift ----------------------------------------------------


def outcome(ids: str, total: int | None = None, *, first: int | None = None, dups: int = 0):
    """A pass that kept the records named by the letters of ``ids``."""
    last = len(ids) if total is None else total
    start = last if first is None else first
    return PassOutcome(frozenset(ids), len(ids), start, last, start != last, dups)


def test_paginator_outcome_sums_up_the_pass():
    page1 = [{"id": "a"}, {"id": "b"}]
    page2 = [{"id": "b"}, {"id": "c"}, {"x": 1}]

    def fetch(params):
        data = page1 if params["page"] == 1 else page2
        return {"data": data, "pagination": {"total": 3 + params["page"], "pages": 2}}

    p = PageNumberPaginator(limit=2)
    collect(fetch, p)
    o = p.outcome()
    assert o.ids == {"a", "b", "c"} and o.records == 4 and o.duplicates == 1
    assert (o.first_total, o.last_total, o.total_changed) == (4, 5, True)
    assert o.shifted and o.count_mismatch


def test_clean_pass_settles_alone():
    clean = outcome("abc")
    assert not clean.shifted and listing_settled([clean])
    assert not listing_settled([])


def test_each_kind_of_shift_needs_another_pass():
    grown = outcome("abc", 5, first=3)
    short = outcome("abc", 4)
    repeated = outcome("abc", dups=1)
    for shifted in (grown, short, repeated):
        assert shifted.shifted and not listing_settled([shifted])


def test_shifted_passes_settle_when_they_agree_or_one_is_clean():
    assert listing_settled([outcome("abc", 4), outcome("abc", 4)])  # same oddity twice
    assert listing_settled([outcome("abc", 5, first=3), outcome("abcde")])  # then clean
    assert not listing_settled([outcome("abc", 5, first=3), outcome("abcde", 7, first=5)])


def test_may_be_missing_estimates_what_the_last_pass_lacked():
    passes = [outcome("abc", 5, first=3), outcome("abcde", 7, first=5)]
    assert may_be_missing(passes) == 2  # 7 announced, 5 received; 2 new since pass 1
    assert may_be_missing([outcome("abcdef", 6, first=3), outcome("abcdef", 6, dups=1)]) == 0
    assert may_be_missing([outcome("abc", 9, first=3), outcome("abcd", 5, first=4)]) == 1
    assert may_be_missing([outcome("ab", 3)]) == 1 and may_be_missing([]) == 0
