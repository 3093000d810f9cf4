"""Purge against the real SeaweedFS: dry run, deletion records, holds, refusals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from fixtures.retention import seed_debt, short_policy_toml, ticking_clock, versions_of
from fixtures_s3 import drop_bucket

from archiver.catalog.db import Catalog
from archiver.cli.retention_cmds import register
from archiver.errors import RetentionError, ValidationError
from archiver.retention.holds import place_hold
from archiver.retention.policies import RetentionPolicy
from archiver.retention.policy_files import load_policy_file
from archiver.retention.purge import execute_purge
from archiver.retention.purge_plan import plan_purge
from archiver.retention.registry import PolicyRegistry
from archiver.store import keys
from archiver.store.objects import ObjectStore

pytestmark = pytest.mark.integration

POLICY_TOML = short_policy_toml("short-test")
SHIPPED = PolicyRegistry()  # the manifests' "short-test" is not among them


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "short-test.toml"
    path.write_text(POLICY_TOML, encoding="utf-8")
    return path


@pytest.fixture
def policy(policy_file: Path) -> RetentionPolicy:
    return load_policy_file(policy_file)


def _later(days: int = 5) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def _data_keys(seeded: object) -> set[str]:
    return {o["key"] for o in seeded.objects if "/manifests/" not in o["key"]}  # type: ignore[attr-defined]


def test_dry_run_lists_expired_objects_once_and_changes_nothing(
    locked_bucket: ObjectStore, policy: RetentionPolicy
) -> None:
    seeded = seed_debt(locked_bucket)  # two manifests naming the same four objects
    before = versions_of(locked_bucket, "D-1")

    plan = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())

    assert plan.debts == ["D-1"]
    assert {c.key for c in plan.candidates} == _data_keys(seeded)
    assert len(plan.candidates) == 4  # named by two manifests, considered once
    assert not plan.held
    # Manifests (and the absent dossiers) have no max: never candidates.
    assert not any("/manifests/" in c.key for c in plan.candidates)
    by_key = {o["key"]: o for o in seeded.objects}
    for c in plan.candidates:
        assert c.version_id == by_key[c.key]["version_id"]
        assert c.sha256 == by_key[c.key]["sha256"] and c.size == by_key[c.key]["size"]
        assert c.policy_name == "short-test" and c.policy_sha256 == policy.sha256
        assert c.anchor == "archived_at"
    # The latest manifest (created a second later) gives the delete-after date.
    record = next(c for c in plan.candidates if c.kind == "record")
    assert record.delete_after == seeded.created_at + timedelta(days=1, seconds=1)
    assert versions_of(locked_bucket, "D-1") == before

    # Not yet past the max: nothing planned.
    assert (
        plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=datetime.now(UTC)).candidates
        == []
    )


def test_execute_with_bypass_deletes_and_leaves_a_locked_deletion_record(
    locked_bucket: ObjectStore, policy: RetentionPolicy
) -> None:
    seeded = seed_debt(locked_bucket)
    seed_debt(locked_bucket, "D-2")
    catalog = Catalog.open(":memory:")
    plan = plan_purge(
        locked_bucket, policy=policy, registry=SHIPPED, now=_later(), debt_ids=["D-1"]
    )
    assert {c.debt_id for c in plan.candidates} == {"D-1"}

    result = execute_purge(
        locked_bucket,
        plan,
        reason="monthly purge",
        actor="ops",
        bypass_governance=True,
        clock=ticking_clock(),
        catalog=catalog,
    )

    assert result.ok and len(result.deleted) == 4 and not result.refused
    remaining = {k for k, _ in versions_of(locked_bucket, "D-1")}
    assert not remaining & _data_keys(seeded)
    assert set(seeded.manifests) <= remaining
    assert len(versions_of(locked_bucket, "D-2")) == 6  # untouched

    [intent_ref] = result.intents
    [record_ref] = result.records
    assert intent_ref["key"] == "debts/D-1/events/00000001.json"  # before the deletes
    key = record_ref["key"]
    assert key == "debts/D-1/events/00000002.json"  # after them
    intent = json.loads(locked_bucket.read_bytes(intent_ref["key"]))
    assert intent["stage"] == "intent"
    record = json.loads(locked_bucket.read_bytes(key))
    assert record["stage"] == "outcome" and record["intent"] == intent_ref["key"]
    assert record["refused"] == [] and intent["versions"] == record["versions"]
    assert record["action"] == "purge" and record["reason"] == "monthly purge"
    assert record["actor"] == "ops" and record["bypass_governance"] is True
    assert record["policies"] == [{"name": "short-test", "sha256": policy.sha256}]
    named = {(v["key"], v["version_id"], v["sha256"], v["size"]) for v in record["versions"]}
    assert named == {
        (o["key"], o["version_id"], o["sha256"], o["size"])
        for o in seeded.objects
        if o["key"] in _data_keys(seeded)
    }
    info = locked_bucket.head(key)
    assert info is not None and info.lock_mode == "GOVERNANCE"
    assert info.retain_until is not None
    assert info.retain_until > datetime.now(UTC) + timedelta(days=5 * 365)
    with pytest.raises(RetentionError):
        locked_bucket.delete_version(key, info.version_id or "")  # the record is locked
    assert catalog.db["events"].count == 2

    # A rerun finds nothing left to purge (the deleted versions are reported missing).
    again = plan_purge(
        locked_bucket, policy=policy, registry=SHIPPED, now=_later(), debt_ids=["D-1"]
    )
    assert again.candidates == []
    assert {p.kind for p in again.problems} == {"missing"}


def test_purge_skips_a_held_debt_and_reports_it(
    locked_bucket: ObjectStore, policy: RetentionPolicy
) -> None:
    seed_debt(locked_bucket, "D-1", manifests=1)
    seed_debt(locked_bucket, "D-2", manifests=1)
    place_hold(locked_bucket, "D-2", reason="dispute", actor="ops")

    plan = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())
    assert {c.debt_id for c in plan.candidates} == {"D-1"}
    assert len(plan.held) == 4 and {c.debt_id for c in plan.held} == {"D-2"}

    before = versions_of(locked_bucket, "D-2")
    result = execute_purge(locked_bucket, plan, reason="purge", actor="ops", bypass_governance=True)
    assert len(result.deleted) == 4 and result.ok
    assert versions_of(locked_bucket, "D-2") == before

    # A hold placed between plan and execute: the server refuses, the tool reports it.
    seed_debt(locked_bucket, "D-3", manifests=1)
    late = plan_purge(
        locked_bucket, policy=policy, registry=SHIPPED, now=_later(), debt_ids=["D-3"]
    )
    place_hold(locked_bucket, "D-3", reason="late dispute", actor="ops")
    refused = execute_purge(
        locked_bucket, late, reason="purge", actor="ops", bypass_governance=True
    )
    assert not refused.deleted and len(refused.refused) == 4
    assert all(r.key.startswith("debts/D-3/") for r in refused.refused)
    assert all("legal hold ON" in r.reason for r in refused.refused)


def test_compliance_objects_are_refused_even_with_bypass(
    locked_bucket: ObjectStore, policy: RetentionPolicy
) -> None:
    seed_debt(locked_bucket, mode="COMPLIANCE", manifests=1)
    # Past its maximum now, its COMPLIANCE lock one more day: left out even with bypass.
    old = datetime.now(UTC) - timedelta(days=5)
    seed_debt(locked_bucket, "D-OLD", mode="COMPLIANCE", manifests=1, created_at=old)
    now_plan = plan_purge(
        locked_bucket,
        policy=policy,
        registry=SHIPPED,
        now=datetime.now(UTC),
        bypass_governance=True,
    )
    assert now_plan.candidates == [] and len(now_plan.locked) == 4
    assert all(c.lock_text().startswith("COMPLIANCE until ") for c in now_plan.locked)
    nothing = execute_purge(
        locked_bucket, now_plan, reason="purge", actor="ops", bypass_governance=True
    )
    assert not nothing.records and not nothing.intents and not nothing.refused

    plan = plan_purge(
        locked_bucket, policy=policy, registry=SHIPPED, now=_later(), debt_ids=["D-1"]
    )
    result = execute_purge(locked_bucket, plan, reason="purge", actor="ops", bypass_governance=True)
    assert not result.deleted and len(result.refused) == 4
    for r in result.refused:
        assert "refused" in r.reason and r.version_id
        assert "[COMPLIANCE until " in r.reason and "legal hold off]" in r.reason
    # Planned for a time the locks are over, refused now: the intent was written first, then
    # one outcome saying that nothing was deleted.
    assert len(result.intents) == 1 and len(result.records) == 1
    outcome = json.loads(locked_bucket.read_bytes(result.records[0]["key"]))
    assert outcome["versions"] == [] and len(outcome["refused"]) == 4


def test_each_debts_deletion_record_carries_the_operators_reason(
    locked_bucket: ObjectStore, policy: RetentionPolicy
) -> None:
    # D-1 sorts first and every deletion of it is refused (COMPLIANCE); D-2's record, written
    # after those refusals, must still say what the operator said, not a refusal of D-1.
    seed_debt(locked_bucket, "D-1", mode="COMPLIANCE", manifests=1)
    seed_debt(locked_bucket, "D-2", manifests=1)
    plan = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())
    assert sorted(plan.by_debt()) == ["D-1", "D-2"]

    result = execute_purge(
        locked_bucket,
        plan,
        reason="  Monthly purge 2026-11  ",
        actor="ops",
        bypass_governance=True,
        clock=ticking_clock(),
    )

    assert {r.debt_id for r in result.refused} == {"D-1"} and len(result.deleted) == 4
    assert [r["debt_id"] for r in result.records] == ["D-1", "D-2"]
    for ref in result.records:
        record = json.loads(locked_bucket.read_bytes(ref["key"]))
        assert record["debt_id"] == ref["debt_id"]
        assert record["reason"] == "Monthly purge 2026-11", record["reason"]
    # The refusals keep their own, per-version reason.
    assert all("[COMPLIANCE until " in r.reason for r in result.refused)


def test_shortening_compliance_retention_is_refused_naming_the_key(
    locked_bucket: ObjectStore,
) -> None:
    seeded = seed_debt(locked_bucket, mode="COMPLIANCE", manifests=1)
    target = seeded.objects[1]
    with pytest.raises(RetentionError) as err:
        locked_bucket.set_retention(
            target["key"],
            target["version_id"],
            mode="COMPLIANCE",
            retain_until=datetime.now(UTC) + timedelta(hours=2),
        )
    assert target["key"] in str(err.value)
    assert err.value.context["current_mode"] == "COMPLIANCE"
    info = locked_bucket.head(target["key"], target["version_id"])
    assert info is not None and info.retain_until is not None
    assert info.retain_until > datetime.now(UTC) + timedelta(hours=20)  # unchanged


def test_manifest_policy_is_loaded_by_name_and_unknown_names_keep_objects(
    locked_bucket: ObjectStore,
) -> None:
    seed_debt(locked_bucket, manifests=1)  # the manifests name "short-test": not shipped
    plan = plan_purge(locked_bucket, policy=None, registry=SHIPPED, now=_later(days=4000))
    assert plan.candidates == [] and plan.held == []
    assert [p.kind for p in plan.problems] == ["policy_unavailable"]


# ---------------------------------------------------------------------------------------------
# CLI


def _cli() -> click.Group:
    @click.group()
    def group() -> None:
        """Test group."""

    register(group)
    return group


def test_cli_purge_dry_run_and_refusals_without_bypass(
    locked_bucket: ObjectStore,
    policy_file: Path,
    s3_env: dict[str, str],
) -> None:
    seed_debt(locked_bucket, manifests=1)
    # The CLI plans at the real "now": move every date of the debt into the past by
    # re-seeding with an old created_at (max P1D anchored on archived_at).
    seed_debt(locked_bucket, "D-OLD", manifests=1, created_at=datetime.now(UTC) - timedelta(days=5))
    runner = CliRunner()
    base = ["purge", "--policy", str(policy_file), "--bucket", locked_bucket.bucket]
    before = versions_of(locked_bucket, "D-OLD")

    dry = runner.invoke(_cli(), [*base, "--json"])
    assert dry.exit_code == 0, dry.output
    out = json.loads(dry.stdout)
    assert out["executed"] is False and out["result"] is None
    # Past their maximum, but their GOVERNANCE lock runs one more day: not deletable as asked.
    assert out["plan"]["candidates"] == []
    assert {c["debt_id"] for c in out["plan"]["locked"]} == {"D-OLD"}
    assert len(out["plan"]["locked"]) == 4
    assert {c["lock"]["mode"] for c in out["plan"]["locked"]} == {"GOVERNANCE"}
    assert versions_of(locked_bucket, "D-OLD") == before

    text = runner.invoke(_cli(), base)
    assert text.exit_code == 0 and "Dry run: nothing deleted" in text.output
    assert "LOCKED debts/D-OLD/" in text.output and "--bypass-governance would delete" in (
        text.output
    )

    usage = runner.invoke(_cli(), [*base, "--bypass-governance"])
    assert usage.exit_code == 2 and "--execute" in usage.output
    no_reason = runner.invoke(_cli(), [*base, "--execute"])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output

    # GOVERNANCE lock still running, no bypass: nothing tried, nothing written, exit 3.
    kept = runner.invoke(_cli(), [*base, "--execute", "--reason", "monthly", "--actor", "ops"])
    assert kept.exit_code == 3, kept.output
    assert "LOCKED debts/D-OLD/" in kept.output and "Nothing to delete; nothing written" in (
        kept.output
    )
    assert versions_of(locked_bucket, "D-OLD") == before  # no deletion record either

    deleted = runner.invoke(
        _cli(),
        [
            *base,
            "D-OLD",
            "--execute",
            "--bypass-governance",
            "--reason",
            "monthly",
            "--actor",
            "ops",
            "--json",
        ],
    )
    assert deleted.exit_code == 0, deleted.output
    result = json.loads(deleted.stdout)["result"]
    assert result["deleted"] == 4 and result["refused"] == 0
    events = [k for k, _ in versions_of(locked_bucket, "D-OLD") if "/events/" in k]
    assert len(events) == 2
    assert all(json.loads(locked_bucket.read_bytes(k))["action"] == "purge" for k in events)
    assert keys.manifest_key("D-OLD", 1) in {k for k, _ in versions_of(locked_bucket, "D-OLD")}


def test_cli_purge_applies_the_manifest_policy_found_in_the_user_policy_dir(
    locked_bucket: ObjectStore, policy_file: Path, s3_env: dict[str, str]
) -> None:
    # Archived under "short-test", a policy of ARCHIVER_POLICY_DIR: purge must find it there,
    # as the archive run did, not only among the shipped policies.
    seed_debt(locked_bucket, "D-OLD", manifests=1, created_at=datetime.now(UTC) - timedelta(days=5))
    result = CliRunner().invoke(
        _cli(),
        ["purge", "--bucket", locked_bucket.bucket, "D-OLD", "--json"],
        env={"ARCHIVER_POLICY_DIR": str(policy_file.parent)},
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    # Past their maximum (their lock runs one more day: listed as locked, not deletable yet).
    assert plan["policy"] is None and len(plan["locked"]) == 4
    applied = {(c["policy"]["name"], c["policy"]["sha256"]) for c in plan["locked"]}
    assert applied == {("short-test", hashlib.sha256(policy_file.read_bytes()).hexdigest())}
    # The seeded manifest recorded another SHA-256: applied, and said so.
    assert [p["type"] for p in plan["problems"]] == ["policy_changed"]


# ---------------------------------------------------------------------------------------------
# What the records say: what was deleted, never what was only planned


def _events(store: ObjectStore, debt_id: str) -> list[dict]:
    from archiver.retention.events import read_events

    return read_events(store, debt_id)


@pytest.fixture
def given_back(locked_bucket: ObjectStore, s3_client: Any) -> Iterator[None]:
    """Deletes ``locked_bucket`` after the test (GOVERNANCE-locked objects only, no hold):
    ``weed mini`` holds a limited number of buckets with data."""
    yield
    drop_bucket(s3_client, locked_bucket.bucket)


def test_plan_leaves_out_what_the_locks_refuse_and_nothing_is_written_for_it(
    locked_bucket: ObjectStore, policy: RetentionPolicy, given_back: None
) -> None:
    # Past their maximum at the real now, GOVERNANCE-locked one more day: not deletable
    # without bypass (COMPLIANCE: see test_compliance_objects_are_refused_even_with_bypass).
    old = datetime.now(UTC) - timedelta(days=5)
    seed_debt(locked_bucket, "D-G", manifests=1, created_at=old)
    now = datetime.now(UTC)

    plain = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=now)
    assert plain.candidates == [] and len(plain.locked) == 4
    assert all(c.retain_until is not None and c.retain_until > now for c in plain.locked)
    assert {c.lock_text().split()[0] for c in plain.locked} == {"GOVERNANCE"}
    for _ in range(2):  # a cron job retrying
        result = execute_purge(locked_bucket, plain, reason="monthly", actor="ops")
        assert not result.deleted and not result.refused and not result.records
    assert _events(locked_bucket, "D-G") == []

    bypass = plan_purge(
        locked_bucket, policy=policy, registry=SHIPPED, now=now, bypass_governance=True
    )
    assert len(bypass.candidates) == 4 and not bypass.locked
    with pytest.raises(ValidationError):  # a plan that counts on the bypass needs it
        execute_purge(locked_bucket, bypass, reason="monthly", actor="ops")
    done = execute_purge(
        locked_bucket, bypass, reason="monthly", actor="ops", bypass_governance=True
    )
    assert len(done.deleted) == 4 and done.ok


def test_outcome_record_names_only_what_was_deleted(
    locked_bucket: ObjectStore, policy: RetentionPolicy, given_back: None
) -> None:
    from archiver.retention.events import purged_versions

    seeded = seed_debt(locked_bucket, manifests=1)
    plan = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())
    assert len(plan.candidates) == 4
    # One version gets a legal hold between planning and executing: S3 refuses that one.
    held = next(o for o in seeded.objects if "/media/" in o["key"])
    locked_bucket.set_legal_hold(held["key"], held["version_id"], True)

    result = execute_purge(
        locked_bucket, plan, reason="monthly", actor="ops", bypass_governance=True
    )

    assert len(result.deleted) == 3 and [r.key for r in result.refused] == [held["key"]]
    intent, outcome = _events(locked_bucket, "D-1")
    assert intent["stage"] == "intent" and len(intent["versions"]) == 4
    assert outcome["stage"] == "outcome" and outcome["intent"] == intent["key"]
    assert {v["key"] for v in outcome["versions"]} == {c.key for c in result.deleted}
    assert [r["key"] for r in outcome["refused"]] == [held["key"]]
    assert outcome["objects"] == 3
    # What counts as purged: the outcome's versions, never the intent's.
    purged = purged_versions(_events(locked_bucket, "D-1"))
    assert set(purged) == {(c.key, c.version_id) for c in result.deleted}
    assert {p["event_key"] for p in purged.values()} == {outcome["key"]}
    locked_bucket.set_legal_hold(held["key"], held["version_id"], False)  # the bucket goes


def test_a_purge_interrupted_before_its_outcome_is_recorded_by_the_next_one(
    locked_bucket: ObjectStore,
    policy: RetentionPolicy,
    monkeypatch: pytest.MonkeyPatch,
    given_back: None,
) -> None:
    import archiver.retention.purge as purge_module
    from archiver.retention.events import purged_versions, unfinished_purges

    seed_debt(locked_bucket, manifests=1)
    plan = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())
    real_write = purge_module.write_event

    def crash_on_outcome(store: ObjectStore, event: dict, **kw: object) -> object:
        if event.get("stage") == "outcome":
            raise RetentionError("the process died here")
        return real_write(store, event, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(purge_module, "write_event", crash_on_outcome)
    crashed = execute_purge(
        locked_bucket, plan, reason="monthly", actor="ops", bypass_governance=True
    )
    monkeypatch.setattr(purge_module, "write_event", real_write)
    assert len(crashed.deleted) == 4 and not crashed.records and crashed.unrecorded
    assert not crashed.ok
    events = _events(locked_bucket, "D-1")
    assert [e["stage"] for e in events] == ["intent"]
    assert purged_versions(events) == {}  # planned is not deleted
    assert len(unfinished_purges(events)) == 1

    again = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())
    assert again.candidates == [] and not again.problems  # gone, but not "missing"
    [unfinished] = again.unfinished
    assert unfinished.intent_key == events[0]["key"] and len(unfinished.gone) == 4
    completed = execute_purge(locked_bucket, again, reason="monthly", actor="ops")
    assert completed.ok and len(completed.completed) == 4 and len(completed.records) == 1
    events = _events(locked_bucket, "D-1")
    outcome = events[-1]
    assert outcome["stage"] == "outcome" and outcome["intent"] == events[0]["key"]
    assert outcome["completes_interrupted"] is True and len(outcome["versions"]) == 4
    assert outcome["policies"] == events[0]["policies"]
    assert len(purged_versions(events)) == 4 and unfinished_purges(events) == []
    # Nothing left to do: a third run writes nothing.
    third = plan_purge(locked_bucket, policy=policy, registry=SHIPPED, now=_later())
    assert not third.unfinished and not third.candidates
