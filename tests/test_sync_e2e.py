"""``archiver sync`` end to end over real HTTP (simulator) and a real S3 (SeaweedFS): window
mode, the look-back, budget exhaustion and resumption, full mode across runs, overlapping
shards, and the chain of run records."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures_archive import Env, all_versions, manifest_of, running_env
from fixtures_s3 import WarmBuckets, drop_bucket

from archiver.audit.runs import verify_runs
from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.devkit.s3server import LocalS3Server
from archiver.devkit.simulator import SimulatorConfig
from archiver.manifest.reader import latest_manifest
from archiver.store.objects import ObjectStore
from archiver.sync.engine import SyncResult, SyncSettings
from archiver.sync.runs import read_runs
from archiver.sync.shards import Shard
from archiver.wiring import open_sync

pytestmark = pytest.mark.integration

SINCE = date(2025, 1, 1)  # before every followup of the simulator's seeded world

WORLD = dict(
    seed=5,
    debts=13,
    other_company_debts=1,
    followups_per_debt=5,
    big_debt_followups=5,
    audio_size_range=(8_000, 20_000),
    large_audio_share=0.0,
)


class World(Env):
    """The sync tests' world: a company of 12 debts with 5 followups each."""

    def sync(self, **kw: Any) -> SyncResult:
        """One sync through the CLI's wiring."""
        api = kw.pop("api", self.api)
        with open_sync(self.config, api, SyncSettings(**kw), s3_client=self.s3.client()) as session:
            return session.syncer.run()

    def debts(self) -> list[str]:
        return [d for d in self.sim.debt_ids("A") if self.sim.followup_ids(d)]


@pytest.fixture
def world(
    s3_server: LocalS3Server, s3_client: Any, warm_buckets: WarmBuckets, tmp_path: Path
) -> Iterator[World]:
    store = ObjectStore(s3_client, warm_buckets.take())
    config = SimulatorConfig(**WORLD)  # type: ignore[arg-type]
    with running_env(World, s3_server, store, tmp_path, config) as running:
        running.config = replace(running.config, concurrency=2)
        yield running
    drop_bucket(s3_client, store.bucket)


def archived_ids(store: ObjectStore, debt_id: str) -> set[str]:
    stored = latest_manifest(store, debt_id)
    assert stored is not None, f"{debt_id} has no manifest"
    return {f["id"] for f in stored[2]["followups"]}


def manifest_count(store: ObjectStore, debt_id: str) -> int:
    return len(list(store.list_keys(f"debts/{debt_id}/manifests/")))


def assert_everything_archived(w: World) -> None:
    for debt_id in w.debts():
        assert archived_ids(w.store, debt_id) == set(w.sim.followup_ids(debt_id)), debt_id
        media = {
            (m["followup_id"] if "followup_id" in m else f["id"], m["kind"])
            for f in latest_manifest(w.store, debt_id)[2]["followups"]  # type: ignore[index]
            for m in f.get("media") or []
        }
        expected = {(f, k) for f in w.sim.followup_ids(debt_id) for k in w.sim.media_kinds(f)}
        assert media == expected, debt_id


def assert_no_duplicate_versions(store: ObjectStore) -> None:
    counts = Counter(v.key for v in all_versions(store))
    assert [k for k, n in counts.items() if n > 1] == []


def listing_pages(w: World) -> int:
    return math.ceil(sum(len(w.sim.followup_ids(d)) for d in w.debts()) / 100)


# -- window mode


def test_first_window_sync_archives_the_company_with_few_requests(world: World) -> None:
    result = world.sync(since=SINCE)
    assert result.exit_status == "ok" and result.complete
    assert_everything_archived(world)
    media = sum(
        len(world.sim.media_kinds(f)) for d in world.debts() for f in world.sim.followup_ids(d)
    )
    assert result.record["media_stored"] == media  # fetched during the listing, counted
    assert sum(d.media_reused for d in result.debts) == 0
    for debt_id in world.debts():
        assert manifest_count(world.store, debt_id) == 1  # one manifest per changed debt
    spent = result.record["requests"]["by_kind"]
    assert spent["followups_listing"] == listing_pages(world)
    assert "debt_followups" not in spent  # no per-debt listing
    # Debt records: a few single reads, then the listing (one page here) for the others.
    assert spent == {
        "token": 1,
        "followups_listing": listing_pages(world),
        "debt": 5,
        "debts_listing": 1,
    }
    assert result.record["per_debt_cost"] > result.record["requests"]["total"]
    # The run record: stored under sync/runs/, chained (first of its lane), names manifests.
    (run,) = list(read_runs(world.store))
    assert run.key == result.key and run.record["previous"] is None
    named = {d["debt_id"]: d for d in run.record["debts"]}
    for debt_id in world.debts():
        data, _ = manifest_of(world.store, debt_id, 1)
        from archiver.common.canonical import sha256_hex

        assert named[debt_id]["manifest_sha256"] == sha256_hex(data)
    assert verify_runs(world.store).ok
    for debt_id in world.debts():
        assert verify_debt(world.store, debt_id, dossiers=False).ok


def test_rerun_with_nothing_new_writes_only_its_run_record(world: World) -> None:
    world.sync(since=SINCE)
    before = {(v.key, v.version_id) for v in all_versions(world.store)}
    again = world.sync(since=SINCE)
    after = {(v.key, v.version_id) for v in all_versions(world.store)}
    assert after - before == {(again.key, next(iter(after - before))[1])}
    assert {d.status for d in again.debts} == {"unchanged"}
    spent = again.record["requests"]["by_kind"]
    assert spent == {"token": 1, "followups_listing": listing_pages(world)}  # no debt record
    runs = list(read_runs(world.store))
    assert runs[1].record["previous"] == runs[0].ref()


def test_next_window_starts_from_the_run_records_with_the_lookback(world: World) -> None:
    first = world.sync(since=SINCE)
    debt_id = world.debts()[2]
    old = archived_ids(world.store, debt_id)
    now = datetime.now(UTC)
    new = world.sim.add_followup(
        debt_id, "call", "deal_found", when=now - timedelta(hours=1), audio_size=9_000
    )["id"]
    second = world.sync()  # no --since: from the first run's end minus three days
    today = second.record["window"]["to"]
    assert (
        second.record["window"]["from"]
        == (date.fromisoformat(first.record["window"]["to"]) - timedelta(days=3)).isoformat()
    )
    assert today == first.record["window"]["to"]
    # Only the new followup was in the window; the manifest carries every earlier one,
    # none marked missing upstream.
    assert second.record["followups_seen"] == 1
    assert archived_ids(world.store, debt_id) == old | {new}
    stored = latest_manifest(world.store, debt_id)
    assert stored is not None and stored[2]["sequence"] == 2
    assert not [f["id"] for f in stored[2]["followups"] if f.get("upstream_missing_since")]
    assert manifest_count(world.store, world.debts()[3]) == 1  # untouched debts: nothing new
    assert verify_debt(world.store, debt_id, dossiers=False).ok


def test_first_sync_without_since_is_a_clear_usage_error(world: World) -> None:
    r = CliRunner().invoke(main, ["sync"], env=world.cli_env())
    assert r.exit_code == 2
    assert "--since" in r.output
    assert not world.sim.requests_to("/external-api/")


# -- the budget


def test_budget_exhaustion_records_what_is_pending_and_the_next_run_finishes(
    world: World,
) -> None:
    world.config = replace(world.config)
    api = replace(world.api, page_limit=10)  # more pages, so that a budget stops mid-way
    first = world.sync(since=SINCE, max_requests=4, api=api)
    assert first.budget_exhausted and not first.complete
    assert first.exit_status == "partial"
    pending = first.record["pending"]
    assert pending["next_page"] is not None and pending["next_page"] > 1
    assert first.record["requests"]["total"] == 4
    # What was listed is archived (media included) even though the budget ran out.
    assert first.record["debts"]
    rounds = [first]
    while not rounds[-1].complete:
        assert len(rounds) < 30, "the runs never completed"
        rounds.append(world.sync(max_requests=6, api=api))
        assert rounds[-1].record["window"]["resumes"] == rounds[-2].key
    assert_everything_archived(world)
    assert_no_duplicate_versions(world.store)
    assert verify_runs(world.store).ok
    for debt_id in world.debts():
        assert verify_debt(world.store, debt_id, dossiers=False).ok
    # The budget stopped every run before the server had to refuse anything.
    assert not [r for r in world.sim.request_log if r.status == 429]


def test_cli_sync_exits_3_with_budget_exhausted_and_json_summary(world: World) -> None:
    env = world.cli_env()
    r = CliRunner().invoke(
        main,
        ["sync", "--since", SINCE.isoformat(), "--max-requests", "2", "--json"],
        env=env,
    )
    out = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    summary = out[-1]["summary"]
    assert r.exit_code == 3, r.output
    assert summary["requests"]["exhausted"] is True
    assert summary["requests"]["total"] == 2
    # The token and the page of followups, then no request left for the debt records: the
    # archived, the records they lack are left for the next run.
    assert summary["pending"]["debt_records"] and not summary["pending"]["debts"]
    assert summary["by_status"] == {"archived": len(world.debts())}
    human = CliRunner().invoke(main, ["sync", "--max-requests", "1"], env=env)
    assert human.exit_code == 3
    assert "request budget exhausted" in human.output
    assert "per-debt `archive`" in human.output


# -- full mode


def test_full_mode_resumes_across_runs_until_every_debt_is_done(world: World) -> None:
    per_run = 5  # token + the debt listing + 3 debts
    runs = [world.sync(full=True, max_requests=per_run)]
    while not runs[-1].complete:
        assert len(runs) < 20
        runs.append(world.sync(full=True, max_requests=per_run))
    assert len(runs) > 2  # it needed several runs
    pass_ids = {r.record["full_pass"]["pass_id"] for r in runs}
    assert len(pass_ids) == 1
    done = Counter(
        d["debt_id"]
        for r in runs
        for d in r.record["debts"]
        if d["status"] in ("archived", "unchanged")
    )
    assert set(done) >= set(world.debts())
    assert max(done.values()) == 1  # no debt archived twice in one pass
    assert_everything_archived(world)
    # The next --full starts a new pass.
    again = world.sync(full=True)
    assert again.record["full_pass"]["pass_id"] not in pass_ids


# -- many machines


def test_four_shards_at_once_archive_everything_once(world: World) -> None:
    results: list[SyncResult] = []
    errors: list[BaseException] = []

    def shard(i: int) -> None:
        try:
            results.append(world.sync(since=SINCE, shard=Shard(i, 4)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {r.record["lane"] for r in results} == {f"window-shard-{i}-of-4" for i in range(4)}
    slices = sorted((r.record["window"]["slice"] or {}).get("from", "") for r in results)
    assert len(set(slices)) == 4  # disjoint day slices
    assert_everything_archived(world)
    assert_no_duplicate_versions(world.store)
    for debt_id in world.debts():
        assert verify_debt(world.store, debt_id, dossiers=False).ok
    assert verify_runs(world.store).ok
    # The next unsharded window starts from the end of the window all four covered.
    nxt = world.sync(max_requests=50)
    assert (
        nxt.record["window"]["from"]
        == (date.fromisoformat(results[0].record["window"]["to"]) - timedelta(days=3)).isoformat()
    )


def test_concurrent_writers_on_one_debt_merge_their_manifests(world: World) -> None:
    # Two full passes at once over the same debts: every debt is archived by both; the
    # conditional manifest write makes the loser merge and chain on (linear chains).
    out: list[SyncResult] = []
    threads = [threading.Thread(target=lambda: out.append(world.sync(full=True))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 2
    assert_everything_archived(world)
    assert_no_duplicate_versions(world.store)
    for debt_id in world.debts():
        assert verify_debt(world.store, debt_id, dossiers=False).ok
    # Two runs of one lane at once: the lane forks (a warning), no record is broken.
    runs = verify_runs(world.store)
    assert runs.ok and runs.records == 2


def test_manifest_race_loser_merges_onto_the_winner(world: World) -> None:
    """Writer A plans a debt; before it writes, writer B writes that debt's next manifest with
    other followups. A's conditional write is refused; A plans again on top of B's manifest
    and writes the one after: both writers' followups are kept, the chain stays linear."""
    from archiver.getbill.client import GetbillClient, Listing
    from archiver.wiring import open_archiver

    debt_id = world.debts()[1]
    world.sync(since=SINCE)  # manifest 1 with every followup
    fa = world.sim.add_followup(debt_id, "call", "deal_found", audio_size=9_000)["id"]
    fb = world.sim.add_followup(debt_id, "email", "delivered")["id"]
    with GetbillClient(world.api) as client:
        copy_a, copy_b = client.get_followup(fa), client.get_followup(fb)

    class Partial:
        def __init__(self, followup: Any, before_debt: Any = None) -> None:
            self.followup, self.before_debt = followup, before_debt

        def list_followups(self, _: str) -> Listing[Any]:
            return Listing(items=[self.followup], partial=True)

        def get_followup(self, fid: str) -> Any:
            with GetbillClient(world.api) as c:
                return c.get_followup(fid)

        def get_debt_checked(self, did: str) -> Any:
            if self.before_debt is not None:
                hook, self.before_debt = self.before_debt, None
                hook()  # B writes manifest 2 while A is planning
            with GetbillClient(world.api) as c:
                return c.get_debt_checked(did)

    results: dict[str, Any] = {}

    def run_b() -> None:
        with open_archiver(
            world.config, world.api, s3_client=world.s3.client(), render_dossiers=False
        ) as b:
            b.archiver._planner.api = Partial(copy_b)  # type: ignore[assignment]
            b.archiver._storer.api = b.archiver._planner.api  # type: ignore[assignment]
            results["b"] = b.archiver.archive_debt(debt_id)

    with open_archiver(
        world.config, world.api, s3_client=world.s3.client(), render_dossiers=False
    ) as a:
        source_a = Partial(copy_a, before_debt=run_b)
        a.archiver._planner.api = source_a  # type: ignore[assignment]
        a.archiver._storer.api = source_a  # type: ignore[assignment]
        results["a"] = a.archiver.archive_debt(debt_id)
    assert results["b"].sequence == 2 and results["b"].status == "archived"
    assert results["a"].status == "archived", results["a"].problems
    assert results["a"].sequence == 3 and results["a"].manifest_attempts == 2
    ids = archived_ids(world.store, debt_id)
    assert {fa, fb} <= ids and ids == set(world.sim.followup_ids(debt_id))
    assert manifest_count(world.store, debt_id) == 3
    assert verify_debt(world.store, debt_id, dossiers=False).ok
    assert_no_duplicate_versions(world.store)


# -- the run records


def test_status_runs_lists_the_records_newest_first(world: World) -> None:
    world.sync(since=SINCE)
    world.sync(since=SINCE, max_requests=1)
    r = CliRunner().invoke(main, ["status", "--runs", "--json"], env=world.cli_env())
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[-1] == {"summary": {"runs": 2, "bucket": world.store.bucket}}
    newest, oldest = rows[0], rows[1]
    assert newest["complete"] is False and oldest["complete"] is True
    assert newest["key"] > oldest["key"]
    human = CliRunner().invoke(main, ["status", "--runs"], env=world.cli_env())
    assert "incomplete" in human.output and "complete" in human.output


def test_verify_finds_a_forged_run_record(world: World) -> None:
    """A record written by hand (not by this tool) that names a previous record with other
    bytes, or a manifest that is not stored with the SHA-256 it says, is reported."""
    from archiver.common.canonical import canonical_json
    from archiver.retention.locks import new_lock
    from archiver.retention.policies import AnchorDates
    from archiver.wiring import configured_policy

    first = world.sync(since=SINCE)
    assert verify_runs(world.store).ok
    forged = json.loads(json.dumps(first.record))
    forged["run_id"] = "0123456789ab"
    forged["started_at"] = "2026-12-31T00:00:00Z"
    forged["previous"] = {"key": first.key, "sha256": "0" * 64}
    forged["debts"][0]["manifest_sha256"] = "1" * 64
    lock = new_lock(
        configured_policy(world.config),
        "manifest",
        AnchorDates(archived_at=datetime.now(UTC)),
        hold=False,
    )
    world.store.put_bytes(
        "sync/runs/20261231T000000.000000Z-0123456789ab.json",
        canonical_json(forged),
        lock=lock,
        content_type="application/json",
    )
    found = verify_runs(world.store)
    kinds = sorted(p.kind.value for p in found.problems)
    assert kinds == ["RunChainBroken", "RunManifestMismatch"], found.problems
    r = CliRunner().invoke(main, ["verify", "--all", "--no-dossier"], env=world.cli_env())
    assert r.exit_code == 1
    assert "RunChainBroken" in r.output and "sync runs: PROBLEMS" in r.output


def test_dry_run_lists_but_downloads_and_writes_nothing(world: World) -> None:
    result = world.sync(since=SINCE, dry_run=True)
    assert result.key is None
    assert {d.status for d in result.debts} == {"planned"}
    assert not all_versions(world.store)
    assert not world.sim.requests_to("/media/")


def test_a_debt_that_failed_is_retried_by_the_next_run_without_holding_the_window(
    world: World,
) -> None:
    world.sim.config.html_media_first = 100  # every medium an HTML error page, this run
    first = world.sync(since=SINCE)
    world.sim.config.html_media_first = 0  # the media are back
    assert first.exit_status == "partial"
    failed = sorted(d.debt_id for d in first.debts if d.status != "archived")
    assert failed and first.record["pending"]["debts"] == failed
    assert first.record["pending"]["next_page"] is None  # the window itself was listed
    second = world.sync()  # a new window (nothing in it), and the debts left pending
    assert second.record["window"]["from"] != first.record["window"]["from"]
    assert second.complete and second.exit_status == "ok", second.summary()
    assert sorted(d.debt_id for d in second.debts) == failed
    assert_everything_archived(world)


def test_the_servers_count_stops_a_run_before_any_429(world: World) -> None:
    # Another consumer of the same client's hour: the server has far fewer requests left
    # than --max-requests allows. The run stops when the server says none is left.
    world.sim.config.rate_limit = 6
    api = replace(world.api, page_limit=10)
    result = world.sync(since=SINCE, max_requests=100, api=api)
    assert result.budget_exhausted and result.exit_status == "partial"
    # The server's window (6 API reads; the token is not counted), not --max-requests (100),
    # ended it; what is left is pending.
    spent = result.record["requests"]
    assert spent["total"] - spent["by_kind"].get("token", 0) <= 6
    pending = result.record["pending"]
    assert pending["next_page"] or pending["debt_records"]
    assert not [r for r in world.sim.request_log if r.status == 429]
