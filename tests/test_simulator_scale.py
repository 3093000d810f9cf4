"""The getbill simulator at company scale: 2,000 debts x 5 followups, over real HTTP.

Listings stay complete and fast, the two orders of ``GET /followups`` hold, the ``from``/``to``
filter does what the routes module documents, each client has its own exact rate window, and
``media_share`` gives small media in the share asked, while the default dataset is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from archiver.cli import main
from archiver.cli.simulate_cmd import (
    DEFAULT_AUDIO_SIZE,
    DEFAULT_LARGE_AUDIO_SHARE,
    SMALL_AUDIO_SIZE,
)
from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig, SimulatorServer
from archiver.devkit.simulator.config import SMALL_AUDIO_SIZE_RANGE
from archiver.devkit.simulator.data import Dataset, build_dataset
from archiver.devkit.simulator.listing import FollowupQuery, Listings

API = "/external-api/v1"
# 10 followups on the first debt, none on the second, 5 on each of the 1,998 others: 10,000.
SCALE: dict[str, Any] = dict(
    seed=5,
    debts=2000,
    other_company_debts=0,
    followups_per_debt=5,
    big_debt_followups=10,
    media_share=0.1,
    audio_size_range=SMALL_AUDIO_SIZE_RANGE,
    large_audio_share=0.0,
    rate_limit=1_000_000,
)
# sha256 of the dataset JSON (see _fingerprint) computed before media_share, followups_order
# and the listing index existed: a config that does not use them builds the same records.
DEFAULT_FINGERPRINTS = {
    "default": "276bf0483ed71b0869080b0d458ffadbf462537f85ea4fb4c6f3fc04e5f48d04",
    "seed-7": "e19c68026c2c658708e766fa20fc64ea3e6248c4094212ba013a26749ebd691d",
    "40x5": "55d4a69a966fa6cd579a589139b94ac92ff7e6248ea592f29704e0eb6a428497",
}


def _fingerprint(ds: Dataset) -> str:
    media = {f"{k[0]}:{k[1]}": [v.kind, v.fmt, v.size] for k, v in sorted(ds.media.items())}
    blob = json.dumps(
        {
            "debts": ds.debts,
            "company_of": ds.company_of,
            "followups": ds.followups,
            "by_debt": ds.by_debt,
            "media": media,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _login(base_url: str, client_id: str = "demo-client", secret: str = "demo-secret") -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = httpx.post(f"{base_url}/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _api(server: SimulatorServer, client_id: str = "demo-client", secret: str = "") -> httpx.Client:
    token = _login(server.base_url, client_id, secret or client_id.replace("client", "secret"))
    return httpx.Client(
        base_url=server.base_url + API, headers={"Authorization": f"Bearer {token}"}
    )


def _walk(http: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Every item of a listing at limit=100, and the pagination block of each page."""
    items: list[dict[str, Any]] = []
    metas: list[Any] = []
    page = 1
    while True:
        body = http.get(path, params={**params, "limit": 100, "page": page}).json()
        metas.append(body["pagination"])
        items += body["data"]
        if page >= body["pagination"]["pages"]:
            return items, metas
        page += 1


def _day(record: dict[str, Any]) -> date | None:
    stamp = record["call_date"] or record["scheduled_at"]
    return datetime.fromisoformat(stamp).astimezone(UTC).date() if stamp else None


def _key(record: dict[str, Any]) -> tuple[float, str]:
    stamp = record["call_date"] or record["scheduled_at"]
    return datetime.fromisoformat(stamp).timestamp(), record["id"]


@pytest.fixture(scope="module")
def world() -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(SimulatorConfig(**SCALE))) as server:
        yield server


@pytest.fixture
def world_http(world: SimulatorServer) -> Iterator[httpx.Client]:
    world.simulator.config.followups_order = "debt"
    with _api(world) as http:
        yield http
    world.simulator.config.followups_order = "debt"


# ---------------------------------------------------------------------------- listings


def test_10000_followups_in_exactly_100_pages_without_duplicate(
    world: SimulatorServer, world_http: httpx.Client
) -> None:
    items, metas = _walk(world_http, "/followups")
    ids = [r["id"] for r in items]
    sim = world.simulator
    assert len(metas) == 100
    assert all(m["total"] == 10_000 and m["pages"] == 100 and m["limit"] == 100 for m in metas)
    assert [len(page) for page in _chunks(ids, 100)] == [100] * 100
    assert len(set(ids)) == 10_000
    # Debt order: debt by debt, each debt's followups as its own listing gives them.
    assert ids == [fid for debt in sim.debt_ids("A") for fid in sim.followup_ids(debt)]
    past = world_http.get("/followups", params={"limit": 100, "page": 101}).json()
    assert past["data"] == [] and past["pagination"]["total"] == 10_000


def _chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def test_date_order_interleaves_debts_and_is_sorted(
    world: SimulatorServer, world_http: httpx.Client
) -> None:
    world.simulator.config.followups_order = "date"
    items, metas = _walk(world_http, "/followups")
    ids = [r["id"] for r in items]
    assert len(metas) == 100 and len(ids) == 10_000 and len(set(ids)) == 10_000
    assert {r["id"] for r in items} == set(world.simulator.data.followups)
    keys = [_key(r) for r in items]
    assert keys == sorted(keys)
    # Interleaved: the first page alone holds followups of dozens of debts, and a debt's
    # followups are spread over the listing rather than side by side.
    assert len({r["debt_id"] for r in items[:100]}) > 50
    runs = 1 + sum(a["debt_id"] != b["debt_id"] for a, b in zip(items, items[1:], strict=False))
    assert runs > 9_000


def test_debts_list_in_20_pages_and_each_debt_answers(
    world: SimulatorServer, world_http: httpx.Client
) -> None:
    debts, metas = _walk(world_http, "/debts")
    ids = [d["id"] for d in debts]
    assert len(metas) == 20 and all(m["total"] == 2000 for m in metas)
    assert ids == world.simulator.debt_ids("A") and len(set(ids)) == 2000
    for debt_id in (ids[0], ids[1234], ids[-1]):
        one = world_http.get(f"/debts/{debt_id}")
        assert one.status_code == 200 and one.json()["data"]["id"] == debt_id


def test_date_filter_on_the_scale_world_matches_the_documented_rule(
    world: SimulatorServer, world_http: httpx.Client
) -> None:
    everything = [world.simulator.followup(fid) for fid in world.simulator.data.followups]
    # The seeded followups of a debt are 18 days apart (90 days / 5) at about the same hours,
    # so most fall on a few days: this range starts and ends on two of them.
    first, last = date(2025, 11, 12), date(2025, 11, 30)
    expected = {r["id"] for r in everything if (d := _day(r)) and first <= d <= last}
    assert {_day(r) for r in everything if r["id"] in expected} >= {first, last}
    for order in ("debt", "date"):
        world.simulator.config.followups_order = order
        items, _ = _walk(
            world_http, "/followups", **{"from": first.isoformat(), "to": last.isoformat()}
        )
        assert {r["id"] for r in items} == expected and len(items) == len(expected)
    assert 3000 < len(expected) < 5000


def test_listing_pages_are_served_from_the_index() -> None:
    # Two reads at one revision share one computed listing; any change computes it afresh.
    ds = build_dataset(SimulatorConfig(seed=2, debts=30, followups_per_debt=4))
    listings = Listings()
    query = FollowupQuery("A", order="date", status="sent")
    first = listings.followups(ds, query)
    assert listings.followups(ds, query) is first
    ds.touch()
    assert listings.followups(ds, query) is not first
    assert listings.followups(ds, query) == first


# ---------------------------------------------------------------------------- from / to


EDGE_DAY = date(2024, 6, 12)  # before every seeded followup: only the ones added here match


@pytest.fixture
def edge_server() -> Iterator[tuple[SimulatorServer, str, dict[str, str]]]:
    sim = Simulator(SimulatorConfig(seed=1, debts=4, other_company_debts=1))
    debt = sim.debt_ids("A")[2]
    midnight = datetime.combine(EDGE_DAY, datetime.min.time(), tzinfo=UTC)
    # 23:30 UTC on EDGE_DAY, written 01:30+02:00 the day after: the UTC day counts.
    plus_two = (midnight + timedelta(hours=23, minutes=30)).astimezone(timezone(timedelta(hours=2)))
    added = {
        "day-before": midnight - timedelta(seconds=1),
        "first-second": midnight,
        "last-second": midnight + timedelta(days=1, seconds=-1),
        "day-after": midnight + timedelta(days=1),
        "plus-two-hours": plus_two,
    }
    names = {name: sim.add_followup(debt, when=when)["id"] for name, when in added.items()}
    assert sim.followup(names["plus-two-hours"])["call_date"].endswith("+02:00")
    # Scheduled only: no call_date, so scheduled_at (a little before) is its date.
    scheduled = sim.add_followup(debt, "email", "scheduled", when=midnight + timedelta(hours=12))
    names["scheduled"] = scheduled["id"]
    undated = sim.add_followup(debt, "sms", "sent", when=midnight + timedelta(hours=12))
    sim.update_followup(undated["id"], call_date=None, scheduled_at=None)
    names["undated"] = undated["id"]
    with SimulatorServer(sim) as server:
        yield server, debt, names


@pytest.mark.parametrize("order", ["debt", "date"])
def test_from_to_bounds_are_inclusive_utc_days(
    edge_server: tuple[SimulatorServer, str, dict[str, str]], order: str
) -> None:
    server, debt, names = edge_server
    server.simulator.config.followups_order = order
    day = EDGE_DAY.isoformat()
    after = (EDGE_DAY + timedelta(days=1)).isoformat()
    before = (EDGE_DAY - timedelta(days=1)).isoformat()
    inside = {names[n] for n in ("first-second", "last-second", "plus-two-hours", "scheduled")}

    def listed(**params: str) -> set[str]:
        items, _ = _walk(http, "/followups", debt_id=debt, **params)
        return {r["id"] for r in items}

    with _api(server) as http:
        assert listed(**{"from": day, "to": day}) == inside
        assert listed(**{"from": day}) >= inside | {names["day-after"]}
        assert names["day-before"] not in listed(**{"from": day})
        assert listed(**{"to": day}) >= inside | {names["day-before"]}
        assert names["day-after"] not in listed(**{"to": day})
        assert listed(**{"from": before, "to": before}) == {names["day-before"]}
        assert listed(**{"from": after, "to": after}) == {names["day-after"]}
        assert listed(**{"from": after, "to": day}) == set()
        # Undated: listed without bounds, left out as soon as one is given.
        assert names["undated"] in listed()
        assert all(names["undated"] not in listed(**b) for b in ({"from": day}, {"to": day}))
        assert http.get("/followups", params={"from": "12/06/2024"}).status_code == 400


def test_listings_follow_added_updated_and_removed_followups() -> None:
    sim = Simulator(SimulatorConfig(seed=1, debts=5, other_company_debts=1))
    sim.config.followups_order = "date"
    debt = sim.debt_ids("A")[3]
    with SimulatorServer(sim) as server, _api(server) as http:
        before, _ = _walk(http, "/followups")
        record = sim.add_followup(debt)  # a call dated now, with a recording
        quiet = sim.add_followup(debt, media=False)  # the same, no recording
        items, _ = _walk(http, "/followups")
        assert [r["id"] for r in items[-2:]] == [record["id"], quiet["id"]]
        assert items[-2]["audio_url"] and items[-1]["audio_url"] is None
        assert len(items) == len(before) + 2
        sim.set_followup_status(record["id"], "bad_behavior")
        found, _ = _walk(http, "/followups", status="bad_behavior")
        assert record["id"] in {r["id"] for r in found}
        oldest = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
        sim.update_followup(quiet["id"], call_date=oldest)
        assert _walk(http, "/followups")[0][0]["id"] == quiet["id"]
        sim.remove_followup(record["id"])
        assert record["id"] not in {r["id"] for r in _walk(http, "/followups")[0]}


def test_set_email_counters_keeps_the_fields_consistent() -> None:
    sim = Simulator(SimulatorConfig(seed=1, debts=4, other_company_debts=1))
    debt = sim.debt_ids("A")[2]
    email = sim.add_followup(debt, "email", "sent")
    opened_at = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
    sim.set_email_counters(email["id"], opens=3, clicks=1, first_opened_at=opened_at)
    served = sim.followup(email["id"])
    assert served["email_opened"] is True and served["email_open_count"] == 3
    assert served["email_clicked"] is True and served["email_click_count"] == 1
    assert served["email_first_opened_at"] == opened_at.isoformat()
    sim.set_email_counters(email["id"], opens=4)
    assert sim.followup(email["id"])["email_first_opened_at"] == opened_at.isoformat()
    sim.set_email_counters(email["id"], opens=0)
    reset = sim.followup(email["id"])
    assert reset["email_opened"] is False and reset["email_first_opened_at"] is None
    call = sim.add_followup(debt)
    with pytest.raises(ValueError):
        sim.set_email_counters(call["id"], opens=1)
    with pytest.raises(ValueError):
        sim.add_followup(debt, "email", media=True)


# ---------------------------------------------------------------------------- rate windows


def test_request_1001_is_refused_and_remaining_counts_down_exactly() -> None:
    clock = SimClock()
    config = SimulatorConfig(seed=1, debts=3, other_company_debts=0, token_ttl_s=10 * 3600)
    sim = Simulator(config, clock=clock)
    debt = sim.debt_ids("A")[0]
    with SimulatorServer(sim) as server, _api(server) as http:
        remaining = []
        for _ in range(1000):
            response = http.get(f"/debts/{debt}")
            assert response.status_code == 200
            remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        refused = http.get(f"/debts/{debt}")
        # Getting a token counts nothing and says the same.
        token = httpx.post(
            f"{server.base_url}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
            },
        )
        clock.advance(3601)
        again = http.get(f"/debts/{debt}")
    assert remaining == list(range(999, -1, -1))
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json()["details"]["limit"] == 1000
    assert token.status_code == 200 and token.headers["X-RateLimit-Remaining"] == "0"
    assert again.status_code == 200 and again.headers["X-RateLimit-Remaining"] == "999"


def test_each_client_has_its_own_window() -> None:
    sim = Simulator(SimulatorConfig(seed=1, debts=3, other_company_debts=1, rate_limit=5))
    with (
        SimulatorServer(sim) as server,
        _api(server) as demo,
        _api(server, "followups-only-client") as narrow,
        _api(server, "other-company-client") as other,
    ):
        demo_answers = [demo.get("/followups") for _ in range(6)]
        narrow_answers = [narrow.get("/followups") for _ in range(3)]
        other_answers = [other.get("/followups") for _ in range(6)]
        # The static token is demo-client's: it shares demo-client's (full) window.
        static = httpx.get(
            f"{server.base_url}{API}/followups",
            headers={"Authorization": "Bearer sim-static-token"},
        )
    assert [r.status_code for r in demo_answers] == [200] * 5 + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in demo_answers] == list("432100")
    assert [r.status_code for r in narrow_answers] == [200] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in narrow_answers] == list("432")
    assert [r.status_code for r in other_answers] == [200] * 5 + [429]
    assert static.status_code == 429


# ---------------------------------------------------------------------------- media


def test_media_share_gives_small_media_in_the_share_asked(
    world: SimulatorServer, world_http: httpx.Client
) -> None:
    sim = world.simulator
    items, _ = _walk(world_http, "/followups")
    with_media = [r for r in items if r["audio_url"] or r["pdf_url"]]
    assert 0.08 < len(with_media) / len(items) < 0.12
    assert all(r["pdf_url"] is None for r in items if r["type"] != "postmail")
    assert all(r["audio_url"] is None for r in items if r["type"] not in ("call", "voicemail"))
    assert {r["type"] for r in with_media} == {"call", "voicemail", "postmail"}
    sizes = [s.size for (_, kind), s in sim.data.media.items() if kind == "audio"]
    assert sizes and all(10_000 <= s <= 50_000 for s in sizes if s is not None)
    # What is served has those sizes too.
    for record in [r for r in with_media if r["audio_url"]][:5]:
        head = httpx.head(record["audio_url"])
        assert head.status_code == 200 and 10_000 <= int(head.headers["Content-Length"]) <= 50_000
    # Deterministic from the seed; another seed draws other followups.
    smaller: dict[str, Any] = {**SCALE, "debts": 400}
    one, again = (build_dataset(SimulatorConfig(**smaller)) for _ in range(2))
    assert set(one.media) == set(again.media) and _fingerprint(one) == _fingerprint(again)
    other = build_dataset(SimulatorConfig(**{**smaller, "seed": 6}))
    assert 0.07 < len(other.media) / len(other.followups) < 0.13
    assert _fingerprint(other) != _fingerprint(one)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_media_share_extremes(share: float) -> None:
    ds = build_dataset(SimulatorConfig(seed=3, debts=6, other_company_debts=1, media_share=share))
    carrying = {fid for fid, _ in ds.media}
    if share == 0.0:
        assert carrying == set()
    else:
        # Past the first followups, which cycle through every type and status whatever the share.
        assert len(carrying) > 0.9 * len(ds.followups)


def test_default_dataset_is_unchanged() -> None:
    assert _fingerprint(build_dataset(SimulatorConfig())) == DEFAULT_FINGERPRINTS["default"]
    assert _fingerprint(build_dataset(SimulatorConfig(seed=7))) == DEFAULT_FINGERPRINTS["seed-7"]
    small = SimulatorConfig(debts=40, followups_per_debt=5, big_debt_followups=12)
    assert _fingerprint(build_dataset(small)) == DEFAULT_FINGERPRINTS["40x5"]
    explicit = SimulatorConfig(media_share=None, followups_order="date")
    assert _fingerprint(build_dataset(explicit)) == DEFAULT_FINGERPRINTS["default"]


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(media_share=1.5)
    with pytest.raises(ValueError):
        SimulatorConfig(followups_order="random")
    with pytest.raises(ValueError):
        SimulatorConfig(audio_size_range=(50, 10))


# ---------------------------------------------------------------------------- command line


def test_cli_defaults_mirror_the_simulator_config() -> None:
    config = SimulatorConfig()
    assert config.audio_size_range == DEFAULT_AUDIO_SIZE
    assert config.large_audio_share == DEFAULT_LARGE_AUDIO_SHARE
    assert SMALL_AUDIO_SIZE == SMALL_AUDIO_SIZE_RANGE


def test_cli_scale_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SimulatorConfig] = []

    def interrupted(self: SimulatorServer) -> None:
        seen.append(self.simulator.config)
        raise KeyboardInterrupt

    monkeypatch.setattr(SimulatorServer, "serve_forever", interrupted)
    args = ["simulate", "--port", "0", "--debts", "40", "--other-company-debts", "0"]
    scale = [*args, "--media-share", "0.25", "--small-media", "--followups-order", "date"]
    result = CliRunner().invoke(main, scale)
    assert result.exit_code == 0, result.output
    assert "(40 in all)" in result.output
    config = seen[-1]
    assert config.media_share == 0.25 and config.followups_order == "date"
    assert config.audio_size_range == SMALL_AUDIO_SIZE and config.large_audio_share == 0.0
    assert config.other_company_debts == 0
    sized = CliRunner().invoke(main, [*args, "--audio-size", "20000-30000"])
    assert sized.exit_code == 0, sized.output
    assert seen[-1].audio_size_range == (20_000, 30_000) and seen[-1].media_share is None
    assert seen[-1].large_audio_share == DEFAULT_LARGE_AUDIO_SHARE
    both = CliRunner().invoke(main, [*args, "--small-media", "--audio-size", "1:2"])
    assert both.exit_code == 2
    for bad in (["--audio-size", "50:10"], ["--media-share", "2"], ["--followups-order", "x"]):
        assert CliRunner().invoke(main, [*args, *bad]).exit_code == 2
    help_text = CliRunner().invoke(main, ["simulate", "--help"]).output
    assert "--media-share" in help_text and "--followups-order" in help_text
    assert "inclusive" in help_text and "must not rely on it" in help_text
