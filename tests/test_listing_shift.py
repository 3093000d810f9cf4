"""A debt's followup listing that changes while it is read, over real HTTP (simulator socket).

The simulator's ``insert_during_listing`` knob inserts followups at the top of a debt after
page 1 of its listing is served, so page 2 repeats the end of page 1 and the new followups
are on no page of that pass. The client must notice, list again (a bounded number of times)
and return every followup; when the listing never settles it must say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from archiver.common.problems import ProblemKind
from archiver.devkit.simulator import SimulatorServer
from archiver.getbill.client import GetbillClient
from archiver.getbill.records import is_fatal
from archiver.getbill.settings import ApiEvent, ApiSettings

API = "/external-api/v1"


@pytest.fixture
def events() -> list[ApiEvent]:
    return []


@pytest.fixture
def client(sim_server: SimulatorServer, events: list[ApiEvent]) -> Iterator[GetbillClient]:
    settings = ApiSettings(
        base_url=sim_server.base_url, client_id="demo-client", client_secret="demo-secret"
    )
    with GetbillClient(settings, on_event=events.append) as c:
        yield c


def _listing_requests(sim_server: SimulatorServer, debt_id: str) -> int:
    return len(sim_server.simulator.requests_to(f"{API}/followups/debt/{debt_id}"))


def test_followups_inserted_while_listing_are_all_returned(
    sim_server: SimulatorServer, client: GetbillClient, events: list[ApiEvent]
) -> None:
    sim = sim_server.simulator
    big = sim.debt_ids()[0]  # 130 followups: 2 pages of 100
    sim.config.insert_during_listing = 3  # one batch: inserted during the first pass only
    listing = client.list_followups(big)

    expected = sim.followup_ids(big)
    assert len(expected) == 133
    ids = [f.id for f in listing.items]
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))
    assert set(expected[:3]) <= set(ids)  # the inserted ones, on page 1 of pass 2 only
    assert not listing.unstable and listing.unstable_problem is None
    # Pass 1 (2 pages) saw the shift; pass 2 (2 pages) was clean: 4 listing requests in all.
    assert listing.passes == 2 and listing.pages_fetched == 4
    assert _listing_requests(sim_server, big) == 4
    assert sum(e.kind == "page" for e in events) == 4
    [relist] = [e for e in events if e.kind == "relist"]
    assert "130 to 133" in relist.message
    [warning] = listing.problems
    assert "changed while it was read" in warning.message and "130 to 133" in warning.message
    assert warning.context["severity"] == "warning"
    assert listing.total == 133


def test_listing_that_keeps_changing_is_unstable_not_endless(
    sim_server: SimulatorServer, client: GetbillClient
) -> None:
    sim = sim_server.simulator
    big = sim.debt_ids()[0]
    sim.config.insert_during_listing = 10_000  # 3 more on every pass
    listing = client.list_followups(big)

    assert listing.unstable and listing.passes == 3
    assert _listing_requests(sim_server, big) == 6 and listing.pages_fetched == 6
    now = sim.followup_ids(big)
    assert len(now) == 139  # 130 + 3 per pass
    ids = {f.id for f in listing.items}
    # The union of the passes: everything but the 3 inserted during the last pass.
    assert ids == set(now[3:]) and len(listing.items) == len(ids) == 136
    problem = listing.unstable_problem
    assert problem is not None and problem.kind is ProblemKind.LISTING_UNSTABLE
    assert problem.kind.value == "ListingUnstable" and problem.blocking
    assert problem.debt_id == big
    assert problem.details["may_be_missing"] == 3 and problem.details["passes"] == 3
    assert "3 followups may be missing" in problem.message
    assert problem.to_dict()["type"] == "ListingUnstable"


def test_stable_listing_costs_one_pass(
    sim_server: SimulatorServer, client: GetbillClient, events: list[ApiEvent]
) -> None:
    big = sim_server.simulator.debt_ids()[0]
    listing = client.list_followups(big)
    assert len(listing.items) == 130 and listing.passes == 1 and not listing.unstable
    assert listing.problems == [] and _listing_requests(sim_server, big) == 2
    assert not [e for e in events if e.kind == "relist"]


def test_reproducible_oddities_settle_after_two_passes(
    sim_server: SimulatorServer, client: GetbillClient
) -> None:
    # A server that always repeats an item across pages and always grows its total: two
    # passes give the same ids, so the listing is complete even though no pass is clean.
    sim = sim_server.simulator
    big = sim.debt_ids()[0]
    sim.config.duplicate_across_pages = True
    sim.config.unstable_total = True
    listing = client.list_followups(big)
    assert {f.id for f in listing.items} == set(sim.followup_ids(big))
    assert listing.passes == 2 and not listing.unstable
    assert _listing_requests(sim_server, big) == 4
    assert [d.id for d in listing.duplicates] == [sim.followup_ids(big)[99]]
    [warning] = listing.problems
    assert "changed while it was read" in warning.message


# --- the union of passes, exactly (httpx.MockTransport) ---------------------------------------


def _fu(fid: str, **extra: Any) -> dict[str, Any]:
    return {"id": fid, "debt_id": "d1", "status": "delivered", "type": "sms", **extra}


def test_union_keeps_records_only_earlier_passes_saw_with_their_problems() -> None:
    # Pass 1: "gone" is listed (with a kept problem) but the total moves; by pass 2 "gone" was
    # removed upstream and "new" inserted, and pass 2 is clean.
    passes = {
        1: {1: [_fu("keep"), _fu("gone", status="not-a-status")], 2: [_fu("late")]},
        2: {1: [_fu("new"), _fu("keep")], 2: [_fu("late")]},
    }
    totals = {1: {1: 3, 2: 4}, 2: {1: 3, 2: 3}}
    seen: list[tuple[int, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        n = sum(p == 1 for _, p in seen) + (page == 1)  # the pass: page-1 requests so far
        seen.append((n, page))
        body = {"data": passes[n][page], "pagination": {"total": totals[n][page], "pages": 2}}
        return httpx.Response(200, json=body)

    settings = ApiSettings(base_url="https://getbill.test", token="t", page_limit=2)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    with GetbillClient(settings, http=http) as client:
        listing = client.list_followups("d1")
    assert seen == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [f.id for f in listing.items] == ["new", "keep", "late", "gone"]
    assert listing.passes == 2 and listing.pages_fetched == 4 and not listing.unstable
    gone = [p for p in listing.problems if p.context.get("followup_id") == "gone"]
    assert gone and not any(is_fatal(p) for p in gone)
    [warning] = [p for p in listing.problems if "changed while it was read" in p.message]
    assert "3 to 4" in warning.message and "pass 2 was consistent" in warning.message


def test_one_pass_allowed_makes_any_shift_unstable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [_fu("a")], "pagination": {"total": 2}})

    settings = ApiSettings(base_url="https://getbill.test", token="t")
    http = httpx.Client(transport=httpx.MockTransport(handler))
    with GetbillClient(settings, http=http, listing_passes=1) as client:
        listing = client.list_followups("d1")
    assert listing.unstable and listing.passes == 1 and listing.pages_fetched == 1
    assert listing.unstable_problem is not None
    assert listing.unstable_problem.details["may_be_missing"] == 1
    with pytest.raises(ValueError):
        GetbillClient(settings, listing_passes=0)
