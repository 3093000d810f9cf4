"""Pure parts of ``archiver sync``: shards, the window plan, the request budget, debt-record
decisions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from archiver.errors import ApiAuthError, BudgetExhaustedError, ConfigError
from archiver.getbill.pagination import Page
from archiver.getbill.records import Debt
from archiver.sync.budget import RequestBudget, default_reserve, request_kind
from archiver.sync.debts import DebtRecords
from archiver.sync.shards import Shard, day_slice, owns_debt, parse_shard
from archiver.sync.window import lookback_days, plan_window

# -- shards


def test_parse_shard_from_flag_env_and_indexed_job() -> None:
    assert parse_shard("2/4", None) == Shard(2, 4)
    assert parse_shard(None, 4, "3") == Shard(3, 4)  # --shards 4 + JOB_COMPLETION_INDEX=3
    assert parse_shard(None, None) == Shard(0, 1)
    assert parse_shard(None, 1) == Shard(0, 1)


@pytest.mark.parametrize(
    ("shard", "shards", "index", "says"),
    [
        ("4/4", None, None, "0 <= I < N"),
        ("a/4", None, None, "whole numbers"),
        ("1/0", None, None, "N >= 1"),
        ("1/4", 3, None, "disagree"),
        (None, 4, None, "JOB_COMPLETION_INDEX"),
        (None, 4, "4", "outside 0..3"),
        (None, 4, "x", "whole number"),
    ],
)
def test_parse_shard_refuses_what_cannot_be_a_shard(
    shard: str | None, shards: int | None, index: str | None, says: str
) -> None:
    with pytest.raises(ConfigError, match=says.replace(".", r"\.").replace("(", r"\(")):
        parse_shard(shard, shards, index)


def test_every_debt_belongs_to_exactly_one_shard_and_shards_are_balanced() -> None:
    ids = [f"debt{i:05d}" for i in range(4000)]
    owners = [[s for s in range(4) if owns_debt(Shard(s, 4), d)] for d in ids]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(1 for o in owners if o == [s]) for s in range(4)]
    assert min(counts) > 900  # about a quarter each
    assert all(owns_debt(Shard(), d) for d in ids[:10])


def test_day_slices_cover_the_window_once() -> None:
    first, last = date(2026, 11, 1), date(2026, 11, 30)
    slices = [day_slice(Shard(i, 4), first, last) for i in range(4)]
    days: list[date] = []
    for s in slices:
        assert s is not None
        days += [s[0] + timedelta(days=k) for k in range((s[1] - s[0]).days + 1)]
    assert days == [first + timedelta(days=k) for k in range(30)]
    # Fewer days than shards: some shards get none.
    two = [day_slice(Shard(i, 4), first, first + timedelta(days=1)) for i in range(4)]
    assert sum(1 for s in two if s is None) == 2
    assert day_slice(Shard(), first, first) == (first, first)


# -- the window


def rec(
    key: str,
    *,
    lane: str = "window",
    complete: bool = True,
    frm: str = "2026-11-01",
    to: str = "2026-11-20",
    shard: tuple[int, int] = (0, 1),
    next_page: int | None = None,
    debts: list[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    return key, {
        "mode": "window",
        "lane": lane,
        "complete": complete,
        "shard": {"index": shard[0], "count": shard[1]},
        "window": {"from": frm, "to": to, "lookback": "P3D"},
        "pending": {"next_page": next_page, "debts": debts or []},
    }


TODAY = date(2026, 12, 1)


def test_next_window_starts_at_the_last_complete_end_minus_the_lookback() -> None:
    plan = plan_window(
        [rec("b", to="2026-11-20"), rec("a", to="2026-11-10")],
        lane="window",
        shard=Shard(),
        today=TODAY,
    )
    assert (plan.first, plan.last) == (date(2026, 11, 17), TODAY)
    assert plan.first_page == 1 and plan.resumes is None
    wider = plan_window(
        [rec("b", to="2026-11-20")], lane="window", shard=Shard(), today=TODAY, lookback="P2W"
    )
    assert wider.first == date(2026, 11, 6)


def test_an_unfinished_run_of_the_lane_is_resumed_one_page_early() -> None:
    stopped = rec("c", complete=False, frm="2026-01-01", to="2026-11-25", next_page=7, debts=["d1"])
    plan = plan_window([stopped, rec("b")], lane="window", shard=Shard(), today=TODAY)
    assert (plan.first, plan.last) == (date(2026, 1, 1), date(2026, 11, 25))
    assert plan.first_page == 6  # one page of overlap
    assert plan.pending_debts == ["d1"] and plan.resumes == "c"
    # The listing had ended, debts were left: a new window, the debts carried into it.
    done_listing = rec("c", complete=False, next_page=None, debts=["d2"])
    plan = plan_window([done_listing], lane="window", shard=Shard(), today=TODAY)
    assert (plan.first, plan.first_page) == (date(2026, 11, 17), 1)
    assert plan.pending_debts == ["d2"] and plan.resumes == "c"
    # --since starts a window of its own (its debts left pending are still retried).
    fresh = plan_window(
        [stopped], lane="window", shard=Shard(), today=TODAY, since=date(2026, 6, 1)
    )
    assert (fresh.first, fresh.first_page) == (date(2026, 6, 1), 1)
    assert fresh.pending_debts == ["d1"]


def test_a_sharded_window_counts_only_once_every_shard_completed_it() -> None:
    parts = [
        rec(f"s{i}", lane=f"window-shard-{i}-of-3", shard=(i, 3), to="2026-11-28") for i in range(3)
    ]
    full = plan_window(
        parts + [rec("old", to="2026-11-01")], lane="window", shard=Shard(), today=TODAY
    )
    assert full.first == date(2026, 11, 25)
    missing_one = plan_window(
        parts[:2] + [rec("old", to="2026-11-01")], lane="window", shard=Shard(), today=TODAY
    )
    assert missing_one.first == date(2026, 10, 29)  # the last window all shards finished


def test_first_sync_needs_since_and_lookback_is_days_or_weeks() -> None:
    with pytest.raises(ConfigError, match="--since"):
        plan_window([], lane="window", shard=Shard(), today=TODAY)
    assert lookback_days("P3D") == 3 and lookback_days("P1W") == 7
    with pytest.raises(ConfigError, match="days or weeks"):
        lookback_days("P1M")
    with pytest.raises(ConfigError, match="--lookback"):
        lookback_days("3 days")


# -- the budget


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/token", "token"),
        ("/external-api/v1/followups", "followups_listing"),
        ("/external-api/v1/followups/debt/abc", "debt_followups"),
        ("/external-api/v1/followups/f1", "refresh"),
        ("/external-api/v1/debts", "debts_listing"),
        ("/external-api/v1/debts/abc", "debt"),
    ],
)
def test_request_kinds(path: str, kind: str) -> None:
    assert request_kind(path) == kind


def test_budget_refuses_the_request_past_the_limit_and_counts_by_kind() -> None:
    budget = RequestBudget(3)
    for path in ("/token", "/external-api/v1/followups", "/external-api/v1/followups"):
        budget.take(path)
    with pytest.raises(BudgetExhaustedError, match="3 of 3"):
        budget.take("/external-api/v1/debts/x")
    spent = budget.spent
    assert spent.by_kind == {"token": 1, "followups_listing": 2}
    assert spent.total == 3 and spent.left == 0 and spent.exhausted


def test_default_budget_is_what_the_server_says_is_left_less_a_reserve() -> None:
    budget = RequestBudget()
    budget.take("/token")  # before any header: allowed
    budget.settle(remaining=500, hourly_limit=1000)
    assert budget.limit == 1 + 500 - default_reserve(1000) == 401
    budget.settle(remaining=10, hourly_limit=1000)  # settled once
    assert budget.limit == 401
    assert default_reserve(1000) == 100 and default_reserve(50) == 20


# -- debt records


class FakeDebts:
    def __init__(self, count: int, *, forbidden: bool = False) -> None:
        self.ids = [f"d{i:04d}" for i in range(count)]
        self.single: list[str] = []
        self.pages: list[int] = []
        self.forbidden = forbidden

    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[Any]]:
        self.single.append(debt_id)
        if self.forbidden:
            raise ApiAuthError("Required scope debts:read", status=403)
        return Debt.from_record({"id": debt_id}), []

    def iter_pages(self, resource: str, params: Any = None, *, paginator: Any = None) -> Any:
        first = paginator.page if paginator is not None else 1
        pages = -(-len(self.ids) // 100)
        for n in range(first, pages + 1):
            self.pages.append(n)
            records = [{"id": d} for d in self.ids[(n - 1) * 100 : n * 100]]
            yield Page(n, records, len(self.ids), pages)


def test_many_debts_are_read_through_the_listing_once() -> None:
    api = FakeDebts(450)
    records = DebtRecords(api, expected_debts=450)
    for debt_id in api.ids:
        assert records.get(debt_id)[0].id == debt_id
    # A few singly (one stale debt must not cost the whole listing), then every page once.
    assert len(api.single) == 5 and api.pages == [1, 2, 3, 4, 5]
    assert records.strategy == "listing"


def test_few_debts_are_read_singly() -> None:
    api = FakeDebts(450)
    records = DebtRecords(api, expected_debts=5)
    for debt_id in api.ids[100:105]:
        records.get(debt_id)
    assert len(api.single) == 5 and api.pages == []
    assert records.strategy == "single"


def test_a_token_without_debts_read_is_asked_once() -> None:
    api = FakeDebts(10, forbidden=True)
    records = DebtRecords(api)
    for debt_id in api.ids[:4]:
        with pytest.raises(ApiAuthError):
            records.get(debt_id)
    assert len(api.single) == 1
    assert records.forbidden is not None
    assert not records.needed("d0001", {"debt": None, "created_at": "2026-12-01T00:00:00Z"}, False)


def test_a_debt_record_is_read_again_only_when_it_may_have_changed() -> None:
    records = DebtRecords(FakeDebts(1))
    archived = {"debt": {"key": "k"}, "created_at": "2026-01-01T06:00:00Z"}
    assert records.needed("d", None, False)  # never archived
    assert records.needed("d", archived, True)  # a new or changed followup
    assert not records.needed("d", archived, False)  # however old: --full reads it
    assert records.needed("d", {"debt": None}, False)  # none archived yet
    records.read_again(["d"])
    assert records.needed("d", archived, False)  # an earlier run's budget refused it
    purged = {"debt": {"key": "k", "purged": {"at": "x"}}}
    assert not records.needed("x", purged, False)  # deleted at its maximum: never again


def test_a_debt_missing_from_the_listing_is_asked_for_alone() -> None:
    api = FakeDebts(120)
    records = DebtRecords(api)
    for debt_id in api.ids:
        records.get(debt_id)
    assert api.pages == [1, 2] and len(api.single) == 5
    found, _ = records.get("d9999")  # not in the listing: GET /debts/d9999
    assert found.id == "d9999" and api.single[-1] == "d9999"
