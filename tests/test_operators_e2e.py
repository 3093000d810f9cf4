"""What an operator meets, through the CLI end to end: the simulator on a real socket, SeaweedFS
for S3. Sticky policies, purges that record only what they deleted, hidden objects, dry runs
that tell the truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fixtures_archive import Env, manifest_of
from fixtures_s3 import drop_bucket, unique_bucket_name

from archiver.cli import main
from archiver.common.time import parse_iso
from archiver.retention.events import purged_versions, read_events
from archiver.store.objects import ObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def locked_bucket(locked_bucket: ObjectStore, s3_client: Any) -> Iterator[ObjectStore]:
    """The shared fixture's bucket, deleted afterwards (``weed mini`` holds a limited number
    of buckets with data; these tests store GOVERNANCE-locked objects only)."""
    yield locked_bucket
    drop_bucket(s3_client, locked_bucket.bucket)


def cli(env: Env, *args: str, **extra_env: str) -> Result:
    return CliRunner().invoke(main, list(args), env={**env.cli_env(), **extra_env})


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def days_ago(days: int) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )


def old_calls_debt(env: Env) -> str:
    """The simulator's debt without followups, given two recorded calls 200 and 190 days ago:
    past the CNIL maximum for recordings (6 months after the call) whatever today is."""
    debt_id = env.debts()[1]
    assert env.sim.followup_ids(debt_id) == []
    for age in (200, 190):
        env.sim.add_followup(debt_id, type="call", audio_size=20_000, when=days_ago(age))
    return debt_id


# ---------------------------------------------------------------------------------------------
# purge --execute records only what it deleted


def test_purge_execute_writes_no_record_for_what_the_lock_refuses(env: Env) -> None:
    debt_id = old_calls_debt(env)
    archived = cli(env, "archive", debt_id, "--policy", "fr-cnil-call-recording")
    assert archived.exit_code == 0, archived.output
    _, manifest = manifest_of(env.store, debt_id, 1)
    audio = {m["key"] for f in manifest["followups"] for m in f["media"] if m["kind"] == "audio"}
    assert len(audio) == 2  # archived anyway, under the one-day floor lock (GOVERNANCE)

    # Without --bypass-governance: reported as locked, nothing tried, nothing written; a
    # scheduler retrying adds nothing either.
    for _ in range(2):
        kept = cli(env, "purge", "--execute", "--reason", "monthly CNIL purge", "--actor", "ops")
        assert kept.exit_code == 3, kept.output
        assert read_events(env.store, debt_id) == []  # no deletion record of nothing deleted
        assert kept.output.count("LOCKED ") == 2 and "--bypass-governance would delete" in (
            kept.output
        )
        assert "Nothing to delete; nothing written" in kept.output

    done = cli(
        env,
        "purge",
        "--execute",
        "--bypass-governance",
        "--reason",
        "monthly CNIL purge",
        "--actor",
        "ops",
        "--json",
    )
    assert done.exit_code == 0, done.output
    result = json_lines(done.stdout)[-1]["result"]
    assert result["deleted"] == 2 and result["refused"] == 0
    events = read_events(env.store, debt_id)
    assert [e["stage"] for e in events] == ["intent", "outcome"]
    assert {v["key"] for v in events[1]["versions"]} == audio
    assert {k for k, _ in purged_versions(events)} == audio


# ---------------------------------------------------------------------------------------------
# A hidden object does not go unnoticed


def test_archive_and_dossier_notice_a_recording_hidden_by_a_delete_marker(
    env: Env, tmp_path: Any
) -> None:
    debt_id = env.debts()[0]
    assert cli(env, "archive", debt_id).exit_code == 0
    _, manifest = manifest_of(env.store, debt_id, 1)
    audio = next(m for f in manifest["followups"] for m in f["media"] if m["kind"] == "audio")
    s3, bucket = env.s3.client(), env.store.bucket
    marker = s3.delete_object(Bucket=bucket, Key=audio["key"])["VersionId"]  # allowed under a lock
    assert env.store.head(audio["key"]) is None  # hidden, though the version is still stored
    assert env.store.head(audio["key"], audio["version_id"]) is not None

    again = cli(env, "archive", debt_id, "--json")
    assert again.exit_code == 3, again.output  # not "unchanged"
    [debt] = json_lines(again.stdout)[:1]
    [problem] = [p for p in debt["problems"] if p["type"] == "DeleteMarker"]
    assert problem["key"] == audio["key"] and problem["kind"] == "audio"
    restore = (
        f"aws s3api delete-object --bucket {bucket} --key {audio['key']} --version-id {marker}"
    )
    assert restore in problem["message"] and problem["restore"] == restore
    text = cli(env, "archive", debt_id)
    assert text.exit_code == 3 and restore in text.output

    out = tmp_path / "dossier.pdf"
    rendered = cli(env, "dossier", debt_id, "-o", str(out))
    assert rendered.exit_code == 0, rendered.output
    assert "warning: DeleteMarker" in rendered.stderr and audio["key"] in rendered.stderr

    # Restored as told: the next run is clean again.
    s3.delete_object(Bucket=bucket, Key=audio["key"], VersionId=marker)
    fixed = cli(env, "archive", debt_id)
    assert fixed.exit_code == 0, fixed.output
    rendered = cli(env, "dossier", debt_id, "-o", str(out))
    assert rendered.exit_code == 0 and "warning" not in rendered.stderr


# ---------------------------------------------------------------------------------------------
# A debt's retention policy is sticky


def manifests(env: Env, debt_id: str) -> list[str]:
    return list(env.store.list_keys(f"debts/{debt_id}/manifests/"))


def test_a_plain_rerun_keeps_the_policy_the_last_manifest_names(env: Env) -> None:
    debt_id = env.debts()[0]
    first = cli(env, "archive", debt_id, "--policy", "fr-cnil-call-recording")
    assert first.exit_code == 0, first.output
    env.sim.add_followup(debt_id, type="sms", status="delivered")

    cron = cli(env, "archive", debt_id)  # what a scheduled job runs: no --policy
    assert cron.exit_code == 0, cron.output
    _, second = manifest_of(env.store, debt_id, 2)
    assert second["policy"]["name"] == "fr-cnil-call-recording"  # not "default"
    assert "policy: fr-cnil-call-recording (kept from manifest 1)" in cron.output
    assert "policy_change" not in second


def test_another_policy_is_refused_without_change_policy_naming_both(env: Env) -> None:
    debt_id = env.debts()[0]
    assert cli(env, "archive", debt_id, "--policy", "uk-fca").exit_code == 0
    env.sim.add_followup(debt_id, type="sms", status="delivered")

    refused = cli(env, "archive", debt_id, "--policy", "eu-gdpr-legal-claims")
    assert refused.exit_code == 2, refused.output
    assert "'uk-fca'" in refused.output and "'eu-gdpr-legal-claims'" in refused.output
    assert "--change-policy" in refused.output
    assert "audio min P6Y -> P5Y" in refused.output  # what it would shorten
    assert manifests(env, debt_id) == [f"debts/{debt_id}/manifests/00000001.json"]

    # The options of a change go together.
    alone = cli(env, "archive", debt_id, "--policy", "eu-gdpr-legal-claims", "--change-policy")
    assert alone.exit_code == 2 and "--reason" in alone.output
    stray = cli(env, "archive", debt_id, "--reason", "why not")
    assert stray.exit_code == 2 and "--change-policy" in stray.output
    nameless = cli(env, "archive", debt_id, "--change-policy", "--reason", "x")
    assert nameless.exit_code == 2 and "--policy" in nameless.output


def test_a_change_of_policy_is_shown_by_the_dry_run_and_recorded_in_the_manifest(
    env: Env,
) -> None:
    debt_id = env.debts()[0]
    assert cli(env, "archive", debt_id, "--policy", "uk-fca").exit_code == 0
    change = [
        "archive",
        debt_id,
        "--policy",
        "eu-gdpr-legal-claims",
        "--change-policy",
        "--reason",
        "Debt sold to the EU entity",
        "--actor",
        "j.doe",
    ]
    dry = cli(env, *change, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "policy change: uk-fca -> eu-gdpr-legal-claims, reason: Debt sold to the EU entity"
        in dry.output
    )
    assert "shortens or weakens: audio min P6Y -> P5Y" in dry.output
    assert manifests(env, debt_id) == [f"debts/{debt_id}/manifests/00000001.json"]
    [planned] = json_lines(cli(env, *change, "--dry-run", "--json").stdout)[:1]
    assert planned["policy"] == "eu-gdpr-legal-claims"
    assert planned["policy_change"]["to"]["name"] == "eu-gdpr-legal-claims"

    done = cli(env, *change, "--json")
    assert done.exit_code == 0, done.output
    _, second = manifest_of(env.store, debt_id, 2)
    assert second["policy"]["name"] == "eu-gdpr-legal-claims"
    recorded = second["policy_change"]
    assert recorded["from"]["name"] == "uk-fca" and recorded["to"] == second["policy"]
    assert recorded["reason"] == "Debt sold to the EU entity" and recorded["actor"] == "j.doe"
    at, created = parse_iso(recorded["at"]), parse_iso(second["created_at"])
    assert at is not None and created is not None and abs(at - created) < timedelta(seconds=30)
    assert "record min P6Y -> P5Y" in recorded["weaker"]

    # From now on the debt keeps its new policy, and the change is not recorded again.
    env.sim.add_followup(debt_id, type="sms", status="delivered")
    assert cli(env, "archive", debt_id).exit_code == 0
    _, third = manifest_of(env.store, debt_id, 3)
    assert third["policy"]["name"] == "eu-gdpr-legal-claims" and "policy_change" not in third


def test_a_missing_policy_stops_the_debt_and_a_changed_file_is_said(
    env: Env, tmp_path: Any
) -> None:
    from fixtures.retention import short_policy_toml

    folder = tmp_path / "policies"
    folder.mkdir()
    policy_file = folder / "house.toml"
    policy_file.write_text(short_policy_toml("house"), encoding="utf-8")
    debt_id = env.debts()[0]
    first = cli(env, "archive", debt_id, "--policy", "house", ARCHIVER_POLICY_DIR=str(folder))
    assert first.exit_code == 0, first.output

    lost = cli(env, "archive", debt_id)  # the folder is not configured: "house" is unknown
    assert lost.exit_code == 2, lost.output
    assert "'house'" in lost.output and "not found" in lost.output
    assert len(manifests(env, debt_id)) == 1

    policy_file.write_text(
        short_policy_toml("house").replace("keep one day", "keep a day"), encoding="utf-8"
    )
    changed = cli(env, "archive", debt_id, ARCHIVER_POLICY_DIR=str(folder))
    assert changed.exit_code == 0, changed.output
    assert "policy_changed" in changed.output and "the current file applies" in changed.output
    _, second = manifest_of(env.store, debt_id, 2)  # the new file's SHA-256 is recorded
    assert second["policy"]["name"] == "house"
    assert second["policy"]["sha256"] != manifest_of(env.store, debt_id, 1)[1]["policy"]["sha256"]


# ---------------------------------------------------------------------------------------------
# --dry-run tells the truth


def test_dry_run_refuses_what_the_real_run_refuses(env: Env) -> None:
    debt_id = env.debts()[0]
    media = sum(len(env.sim.media_kinds(f)) for f in env.sim.followup_ids(debt_id))
    assert media > 0
    off_list = {"ARCHIVER_MEDIA_HOSTS": "media.getbill.example"}  # not where the media are

    dry = cli(env, "archive", debt_id, "--dry-run", "--json", **off_list)
    assert dry.exit_code == 3, dry.output  # the real run would be partial
    [planned] = json_lines(dry.stdout)[:1]
    assert planned["status"] == "planned" and planned["media_stored"] == 0
    refused = [p for p in planned["problems"] if p["type"] == "MediaHostNotAllowedError"]
    assert len(refused) == media
    text = cli(env, "archive", debt_id, "--dry-run", **off_list)
    assert "would store 0 media" in text.output and "media host '127.0.0.1'" in text.output
    assert not manifests(env, debt_id) and not env.sim.requests_to("/media/")

    real = cli(env, "archive", debt_id, "--json", **off_list)
    assert real.exit_code == 3, real.output
    [archived] = json_lines(real.stdout)[:1]
    assert archived["media_stored"] == planned["media_stored"] == 0
    assert sorted(
        (p["type"], p.get("followup_id"), p.get("kind")) for p in archived["problems"]
    ) == sorted((p["type"], p.get("followup_id"), p.get("kind")) for p in planned["problems"])

    # The policy: refused alike.
    other = cli(env, "archive", debt_id, "--policy", "uk-fca", "--dry-run")
    assert other.exit_code == 2 and "--change-policy" in other.output


def test_dry_run_checks_the_bucket(env: Env) -> None:
    plain = unique_bucket_name("plain")
    env.s3.client().create_bucket(Bucket=plain)  # no Object Lock: cannot hold evidence
    dry = cli(env, "archive", env.debts()[0], "--dry-run", ARCHIVER_BUCKET=plain)
    env.s3.client().delete_bucket(Bucket=plain)
    assert dry.exit_code == 2, dry.output  # a configuration error, as for the real run
    assert "Object Lock" in dry.output and plain in dry.output
