"""Retention policies enforced end to end: archive -> extend -> hold -> purge, on SeaweedFS."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.retention import short_policy_toml
from fixtures_archive import Env, manifest_of

from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.common.time import parse_iso
from archiver.config import ArchiverConfig
from archiver.errors import RetentionError
from archiver.retention.holds import place_hold
from archiver.retention.policies import load_policy
from archiver.retention.purge import execute_purge, plan_purge
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def with_policy(env: Env, policy: str) -> Env:
    env.config = ArchiverConfig(**{**env.config.__dict__, "policy": policy})
    return env


def test_policy_sets_mode_and_dates_and_manifest_names_the_policy(env: Env) -> None:
    with_policy(env, "us-cfpb-reg-f")
    debt_id = env.debts()[0]
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived"
    _, manifest = manifest_of(env.store, debt_id, 1)
    policy = load_policy("us-cfpb-reg-f")
    assert manifest["policy"]["name"] == "us-cfpb-reg-f"
    assert manifest["policy"]["sha256"] == policy.sha256
    assert manifest["policy"]["mode"] == "COMPLIANCE"
    last = parse_iso(manifest["summary"]["last_activity"])
    assert last is not None
    for f in manifest["followups"]:
        # records: 3 years after the last activity of the debt
        until = parse_iso(f["record_retain_until"])
        assert until == last.replace(year=last.year + 3)
        lock = env.store.get_lock(f["record_key"], f["record_version_id"])
        assert lock is not None and lock.mode == "COMPLIANCE"
        assert lock.retain_until >= until  # type: ignore[operator]
        for m in f["media"]:
            if m["kind"] == "audio":  # recordings: 3 years after the call
                call = parse_iso(f["call_date"])
                assert call is not None
                assert parse_iso(m["retain_until"]) == call.replace(year=call.year + 3)


def test_new_activity_extends_earlier_objects_and_manifest_says_so(env: Env) -> None:
    with_policy(env, "us-cfpb-reg-f")
    debt_id = env.debts()[0]
    env.run([debt_id])
    _, first = manifest_of(env.store, debt_id, 1)
    old = first["followups"][0]
    old_until = parse_iso(old["record_retain_until"])
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    env.sim.add_followup(debt_id, type="sms", status="delivered", when=later)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 2
    assert res.retention_extended > 0
    _, second = manifest_of(env.store, debt_id, 2)
    ext = {e["key"]: e for e in second["retention_extensions"]}
    assert old["record_key"] in ext
    last = parse_iso(second["summary"]["last_activity"])
    assert last is not None and last >= later  # the new followup is the last activity
    assert parse_iso(ext[old["record_key"]]["to"]) == last.replace(year=last.year + 3)
    lock = env.store.get_lock(old["record_key"], old["record_version_id"])
    assert lock is not None and old_until is not None
    assert lock.retain_until > old_until
    # the first manifest itself is anchored on last activity too
    assert f"debts/{debt_id}/manifests/00000001.json" in ext
    assert verify_debt(env.store, debt_id).ok


def test_shortening_compliance_retention_is_refused_by_the_server(env: Env) -> None:
    with_policy(env, "us-cfpb-reg-f")
    debt_id = env.debts()[0]
    env.run([debt_id])
    _, manifest = manifest_of(env.store, debt_id, 1)
    f = manifest["followups"][0]
    lock = env.store.get_lock(f["record_key"], f["record_version_id"])
    assert lock is not None
    with pytest.raises(RetentionError) as caught:
        env.store.set_retention(
            f["record_key"],
            f["record_version_id"],
            mode="COMPLIANCE",
            retain_until=lock.retain_until - timedelta(days=365),
        )
    assert f["record_key"] in str(caught.value)
    with pytest.raises(RetentionError):
        env.store.delete_version(f["record_key"], f["record_version_id"], bypass_governance=True)
    assert env.store.get_lock(f["record_key"], f["record_version_id"]) == lock


def test_hold_makes_new_objects_held_and_blocks_purge_until_release(
    env: Env, tmp_path: Path
) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    # Event and manifest times have whole seconds: a hold in the second manifest 1 was made
    # in would count as before it when its dossier is rendered again.
    created = parse_iso(manifest_of(env.store, debt_id, 1)[1]["created_at"])
    assert created is not None
    time.sleep(max(0.0, created.timestamp() + 1 - time.time()))
    cli_env = env.cli_env()
    r = CliRunner().invoke(
        main, ["hold", debt_id, "--reason", "dispute #42", "--json"], env=cli_env
    )
    assert r.exit_code == 0, r.output
    new = env.sim.add_followup(debt_id, type="call", status="deal_found")
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived"
    _, manifest = manifest_of(env.store, debt_id, 2)
    entry = next(f for f in manifest["followups"] if f["id"] == new["id"])
    assert entry["media"] and all(m["legal_hold"] for m in entry["media"])
    lock = env.store.get_lock(entry["media"][0]["key"], entry["media"][0]["version_id"])
    assert lock is not None and lock.legal_hold
    # the dossier of manifest 2 shows the hold, and a re-render from S3 gives the same bytes
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok

    # A policy whose maximum is already past: everything is a purge candidate, but held.
    policy_file = tmp_path / "short.toml"
    policy_file.write_text(short_policy_toml("short", dossier_max=True), encoding="utf-8")
    future = datetime.now(UTC) + timedelta(days=3)
    plan = plan_purge(
        env.store, policy=load_policy(str(policy_file)), now=future, debt_ids=[debt_id]
    )
    assert not plan.candidates and plan.held
    r = CliRunner().invoke(main, ["release", debt_id, "--reason", "dispute closed"], env=cli_env)
    assert r.exit_code == 0, r.output
    plan = plan_purge(
        env.store, policy=load_policy(str(policy_file)), now=future, debt_ids=[debt_id]
    )
    assert plan.candidates and not plan.held


def test_purge_dry_run_changes_nothing(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    before = sorted((v.key, v.version_id) for v in env.store.list_versions(""))
    r = CliRunner().invoke(
        main, ["purge", "--policy", "fr-cnil-call-recording", "--json"], env=env.cli_env()
    )
    assert r.exit_code == 0, r.output
    after = sorted((v.key, v.version_id) for v in env.store.list_versions(""))
    assert before == after
    assert json.loads(r.stdout.splitlines()[-1])  # a machine-readable report


def test_cnil_policy_archives_old_recordings_with_a_floor_lock(env: Env) -> None:
    """Simulated calls are from early 2026: their 6-month CNIL window is over. They are still
    archived (evidence first), locked a short while, and purge lists them past their max."""
    with_policy(env, "fr-cnil-call-recording")
    debt_id = env.debts()[0]
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived", res.problems
    _, manifest = manifest_of(env.store, debt_id, 1)
    audio = [m for f in manifest["followups"] for m in f["media"] if m["kind"] == "audio"]
    assert audio
    created = parse_iso(manifest["created_at"])
    assert created is not None
    for m in audio:
        until = parse_iso(m["retain_until"])
        assert until is not None and created < until <= created + timedelta(days=1, seconds=5)
    plan = plan_purge(
        env.store, policy=None, now=datetime.now(UTC) + timedelta(days=2), debt_ids=[debt_id]
    )
    assert {m["key"] for m in audio} <= {c.key for c in plan.candidates}


def test_purged_versions_are_carried_as_purged_not_missing(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    policy_file = tmp_path / "short.toml"
    policy_file.write_text(short_policy_toml("short", dossier_max=True), encoding="utf-8")
    with_policy(env, str(policy_file))
    env.run([debt_id])
    _, first = manifest_of(env.store, debt_id, 1)
    future = datetime.now(UTC) + timedelta(days=3)
    plan = plan_purge(
        env.store, policy=load_policy(str(policy_file)), now=future, debt_ids=[debt_id]
    )
    media = {m["key"] for f in first["followups"] for m in f["media"]}
    assert media <= {c.key for c in plan.candidates}
    result = execute_purge(env.store, plan, reason="test", actor="t", bypass_governance=True)
    assert result.deleted and not result.refused
    # verify: purged versions are accounted for by the deletion record, not "missing"
    check = verify_debt(env.store, debt_id)
    assert check.ok, check.problems
    # every purged object the manifest names (the dossier is not named by its manifest)
    assert check.purged == len([c for c in result.deleted if "/dossiers/" not in c.key])
    # the next run records them as purged, never downloads or stores them again
    media_gets = len(env.sim.requests_to("/media/"))
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 2
    assert len(env.sim.requests_to("/media/")) == media_gets
    _, second = manifest_of(env.store, debt_id, 2)
    for f in second["followups"]:
        for m in f["media"]:
            assert m["purged"]["event_key"].endswith("-purge.json")
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged"


def test_the_one_day_floor_does_not_creep_forward(env: Env, tmp_path: Path) -> None:
    policy_file = tmp_path / "floor.toml"
    text = short_policy_toml("floor", dossier_max=True, record_anchor="last_activity")
    assert 'anchor = "last_activity"' in text
    policy_file.write_text(text, encoding="utf-8")
    with_policy(env, str(policy_file))
    debt_id = env.debts()[0]
    env.run([debt_id])
    _, manifest = manifest_of(env.store, debt_id, 1)
    f = manifest["followups"][0]
    before = env.store.get_lock(f["record_key"], f["record_version_id"])
    time.sleep(1.1)
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged" and res.retention_extended == 0
    assert env.store.get_lock(f["record_key"], f["record_version_id"]) == before


def test_verify_reports_a_version_missing_its_legal_hold(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    place_hold(env.store, debt_id, reason="dispute", actor="t")
    assert verify_debt(env.store, debt_id).ok
    _, manifest = manifest_of(env.store, debt_id, 1)
    m = next(m for f in manifest["followups"] for m in f["media"])
    env.store.set_legal_hold(m["key"], m["version_id"], False)
    problems = verify_debt(env.store, debt_id).problems
    assert [(p.type, p.key) for p in problems] == [("HoldMissing", m["key"])]
