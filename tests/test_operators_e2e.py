"""What an operator meets, through the CLI end to end: the simulator on a real socket, SeaweedFS
for S3. Sticky policies, purges that record only what they deleted, hidden objects, dry runs
that tell the truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fixtures_archive import Env, manifest_of

from archiver.cli import main
from archiver.retention.events import purged_versions, read_events

pytestmark = pytest.mark.integration


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
