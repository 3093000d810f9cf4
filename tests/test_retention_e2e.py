"""Retention policies enforced end to end: archive -> extend -> hold -> purge, on SeaweedFS."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures.retention import short_policy_toml
from fixtures_archive import Env, all_versions, manifest_of

from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.common.time import parse_iso
from archiver.config import ArchiverConfig
from archiver.errors import RetentionError
from archiver.retention.events import open_matters, read_events
from archiver.retention.holds import hold_active, place_hold
from archiver.retention.policy_files import load_policy_file
from archiver.retention.purge import execute_purge
from archiver.retention.purge_plan import plan_purge
from archiver.retention.registry import PolicyRegistry
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def with_policy(env: Env, policy: str) -> Env:
    env.config = ArchiverConfig(**{**env.config.__dict__, "policy": policy})
    return env


def days_ago(days: int) -> datetime:
    """Noon UTC ``days`` before the real today, never on 29 February (so that ``replace(year=)``
    works). The simulator's own data has fixed dates; tests whose outcome depends on how old
    the evidence is use followups dated from the real clock instead, because the S3 server
    checks every retain-until date against its real clock."""
    day = (datetime.now(UTC) - timedelta(days=days)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    return day - timedelta(days=1) if (day.month, day.day) == (2, 29) else day


def debt_with_followups(env: Env, *ages_in_days: int) -> str:
    """The simulator's debt without followups, given a call with a recording ``age`` days ago
    for each of ``ages_in_days``, then an email a day after the most recent call."""
    debt_id = env.debts()[1]
    assert env.sim.followup_ids(debt_id) == []
    for age in ages_in_days:
        env.sim.add_followup(debt_id, type="call", audio_size=20_000, when=days_ago(age))
    env.sim.add_followup(
        debt_id, type="email", status="delivered", when=days_ago(min(ages_in_days) - 1)
    )
    return debt_id


def test_policy_sets_mode_and_dates_and_manifest_names_the_policy(env: Env) -> None:
    with_policy(env, "us-cfpb-reg-f")
    # Recent activity: 3 years from it are ahead whatever the date the test runs.
    debt_id = debt_with_followups(env, 10, 5)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived"
    _, manifest = manifest_of(env.store, debt_id, 1)
    assert len(manifest["followups"]) == 3
    assert sum(m["kind"] == "audio" for f in manifest["followups"] for m in f["media"]) == 2
    policy = PolicyRegistry().load("us-cfpb-reg-f")
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
        env.store,
        policy=load_policy_file(policy_file),
        registry=env.config.policy_registry(),
        now=future,
        debt_ids=[debt_id],
    )
    assert not plan.candidates and plan.held
    r = CliRunner().invoke(main, ["release", debt_id, "--reason", "dispute closed"], env=cli_env)
    assert r.exit_code == 0, r.output
    plan = plan_purge(
        env.store,
        policy=load_policy_file(policy_file),
        registry=env.config.policy_registry(),
        now=future,
        debt_ids=[debt_id],
    )
    # Past the short maximum: no longer held; still locked by the default policy's minimum.
    assert plan.locked and not plan.held


def _legal_holds(env: Env, debt_id: str) -> list[bool]:
    """The legal hold of every stored version of the debt, as S3 reports it."""
    found = []
    for v in all_versions(env.store, f"debts/{debt_id}/"):
        lock = env.store.get_lock(v.key, v.version_id)
        found.append(bool(lock and lock.legal_hold))
    return found


def test_holds_are_per_matter_and_s3_keeps_the_hold_while_any_matter_is_open(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    cli_env = env.cli_env()

    def cli(*args: str) -> Any:
        return CliRunner().invoke(main, list(args), env=cli_env)

    first = cli("hold", debt_id, "--matter", "D-2026-118", "--reason", "Dispute D-2026-118")
    assert first.exit_code == 0, first.output
    second = cli(
        "hold", debt_id, "--matter", "D-2026-200", "--reason", "Second dispute D-2026-200", "--json"
    )
    assert second.exit_code == 0, second.output
    out = json.loads(second.stdout)
    assert out["event_written"] and not out["already"] and out["matter"] == "D-2026-200"
    assert out["open_matters"] == ["D-2026-118", "D-2026-200"]
    again = cli("hold", debt_id, "--matter", "D-2026-200", "--reason", "same dispute")
    assert again.exit_code == 0 and "already on hold" in again.output
    assert all(_legal_holds(env, debt_id))

    # Two matters open: a release must say which one.
    unclear = cli("release", debt_id, "--reason", "closed")
    assert unclear.exit_code == 2
    assert "D-2026-118" in unclear.output and "D-2026-200" in unclear.output

    one = cli("release", debt_id, "--matter", "D-2026-118", "--reason", "D-2026-118 settled")
    assert one.exit_code == 0, one.output
    assert "D-2026-200" in one.output  # still open, and said so
    holds = _legal_holds(env, debt_id)
    assert holds and all(holds)  # every version, the release event included, still held
    assert hold_active(env.store, debt_id)
    assert list(open_matters(read_events(env.store, debt_id))) == ["D-2026-200"]
    assert verify_debt(env.store, debt_id).ok

    # The one matter left: a release without --matter closes it.
    last = cli("release", debt_id, "--reason", "D-2026-200 closed", "--json")
    assert last.exit_code == 0, last.output
    assert json.loads(last.stdout)["matter"] == "D-2026-200"
    assert not any(_legal_holds(env, debt_id))
    assert not hold_active(env.store, debt_id)
    events = read_events(env.store, debt_id)
    assert [(e["action"], e["matter"]) for e in events] == [
        ("hold", "D-2026-118"),
        ("hold", "D-2026-200"),
        ("release", "D-2026-118"),
        ("release", "D-2026-200"),
    ]
    assert events[1]["reason"] == "Second dispute D-2026-200"


def test_purge_dry_run_changes_nothing(env: Env) -> None:
    # Recordings past the CNIL maximum (6 months after the call) whatever today is: the dry
    # run has something to delete, and deletes nothing.
    debt_id = debt_with_followups(env, 200, 190)
    env.run([debt_id])
    _, manifest = manifest_of(env.store, debt_id, 1)
    audio = {m["key"] for f in manifest["followups"] for m in f["media"] if m["kind"] == "audio"}
    assert len(audio) == 2
    before = sorted((v.key, v.version_id) for v in env.store.list_versions(""))
    r = CliRunner().invoke(
        main, ["purge", "--policy", "fr-cnil-call-recording", "--json"], env=env.cli_env()
    )
    assert r.exit_code == 0, r.output
    after = sorted((v.key, v.version_id) for v in env.store.list_versions(""))
    assert before == after
    report = json.loads(r.stdout.splitlines()[-1])  # a machine-readable report
    assert report["executed"] is False and report["result"] is None
    plan = report["plan"]
    assert plan["policy"] == "fr-cnil-call-recording" and plan["debts"] == [debt_id]
    assert plan["considered"] > 0 and not plan["held"]
    # Past their maximum; their one-day floor lock (GOVERNANCE) still runs: listed as locked.
    listed = {c["key"]: c for c in plan["candidates"] + plan["locked"]}
    assert audio <= set(listed)
    assert {listed[k]["policy"]["name"] for k in audio} == {"fr-cnil-call-recording"}


def test_cnil_policy_archives_old_recordings_with_a_floor_lock(env: Env) -> None:
    """Calls of 200 and 190 days ago: their 6-month CNIL window is over. They are still
    archived (evidence first), locked a short while, and purge lists them past their max."""
    with_policy(env, "fr-cnil-call-recording")
    debt_id = debt_with_followups(env, 200, 190)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived", res.problems
    _, manifest = manifest_of(env.store, debt_id, 1)
    audio = [m for f in manifest["followups"] for m in f["media"] if m["kind"] == "audio"]
    assert len(audio) == 2
    created = parse_iso(manifest["created_at"])
    assert created is not None
    for m in audio:
        until = parse_iso(m["retain_until"])
        assert until is not None and created < until <= created + timedelta(days=1, seconds=5)
    plan = plan_purge(
        env.store,
        policy=None,
        registry=env.config.policy_registry(),
        now=datetime.now(UTC) + timedelta(days=2),
        debt_ids=[debt_id],
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
        env.store,
        policy=load_policy_file(policy_file),
        registry=env.config.policy_registry(),
        now=future,
        debt_ids=[debt_id],
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
            purge = json.loads(env.store.read_bytes(m["purged"]["event_key"]))
            assert purge["action"] == "purge"
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
    assert [(p.kind, p.key) for p in problems] == [("HoldMissing", m["key"])]
