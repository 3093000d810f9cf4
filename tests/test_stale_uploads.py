"""Multipart uploads a killed process left behind: the bucket's lifecycle rule, `verify`
reporting them and `verify --repair` aborting them (all against SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
from base64 import b64encode
from datetime import timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from fixtures_archive import Env
from fixtures_s3 import unique_bucket_name

from archiver.audit.uploads import repair_stale_uploads
from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.common.problems import ProblemKind
from archiver.common.time import utcnow
from archiver.store.bucket import ABORT_RULE_ID
from archiver.store.objects import ObjectStore
from archiver.store.settings import make_s3_client

pytestmark = pytest.mark.integration


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def start_upload(store: ObjectStore, key: str) -> str:
    """Begin a multipart upload with one part stored, as a run killed mid-file leaves it."""
    client = store.client
    upload_id = client.create_multipart_upload(
        Bucket=store.bucket, Key=key, ChecksumAlgorithm="SHA256"
    )["UploadId"]
    part = b"part of a recording" * 100
    client.upload_part(
        Bucket=store.bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        Body=part,
        ChecksumSHA256=b64encode(hashlib.sha256(part).digest()).decode(),
    )
    return upload_id


def open_uploads(store: ObjectStore) -> list[tuple[str, str]]:
    return [(u.key, u.upload_id) for u in store.list_multipart_uploads("debts/")]


def test_verify_reports_a_stale_upload_and_repair_aborts_it(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    key = f"debts/{debt_id}/media/f-killed/audio-{'0' * 64}.mp3"
    upload_id = start_upload(env.store, key)
    cli_env = env.cli_env()
    verify = ["verify", debt_id, "--no-dossier", "--json"]

    # A fresh upload may belong to a run still going: not stale under the default threshold.
    r = CliRunner().invoke(main, verify, env=cli_env)
    assert r.exit_code == 0, r.output

    r = CliRunner().invoke(main, [*verify, "--stale-after", "0"], env=cli_env)
    assert r.exit_code == 1, r.output
    (result, summary) = lines(r.stdout)
    (problem,) = result["problems"]
    assert problem["type"] == "StaleUpload"
    assert problem["key"] == key and problem["upload_id"] == upload_id
    assert problem["initiated"]
    assert summary["summary"]["problems"] == 1
    assert open_uploads(env.store) == [(key, upload_id)]  # verify alone changes nothing

    r = CliRunner().invoke(main, [*verify, "--stale-after", "0", "--repair"], env=cli_env)
    assert r.exit_code == 0, r.output
    (result, summary) = lines(r.stdout)
    assert result["status"] == "ok" and not result["problems"]
    assert [p["upload_id"] for p in result["repaired"]] == [upload_id]
    assert summary["summary"]["repaired"] == 1
    assert open_uploads(env.store) == []

    r = CliRunner().invoke(main, [*verify, "--stale-after", "0"], env=cli_env)
    assert r.exit_code == 0, r.output
    assert lines(r.stdout)[0]["repaired"] == []


def test_verify_all_finds_the_upload_of_a_debt_never_archived(env: Env) -> None:
    archived, killed = env.debts()[:2]
    env.run([archived])
    key = f"debts/{killed}/media/f1/audio-{'1' * 64}.mp3"
    start_upload(env.store, key)
    cli_env = env.cli_env()

    # A fresh upload may be a first run still going: that debt is not verified yet.
    r = CliRunner().invoke(main, ["verify", "--all", "--no-dossier"], env=cli_env)
    assert r.exit_code == 0, r.output
    assert killed not in r.output

    r = CliRunner().invoke(
        main, ["verify", "--all", "--stale-after", "0", "--no-dossier", "--repair"], env=cli_env
    )
    assert r.exit_code == 1, r.output  # the killed debt has no manifest: still a problem
    assert "repaired: aborted the stale upload" in r.output and key in r.output
    assert open_uploads(env.store) == []

    r = CliRunner().invoke(main, ["verify", "--all", "--stale-after", "0"], env=cli_env)
    assert r.exit_code == 0, r.output
    assert killed not in r.output


def test_verify_debt_takes_its_clock_and_threshold(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    key = f"debts/{debt_id}/media/f2/pdf-{'2' * 64}.pdf"
    start_upload(env.store, key)
    assert verify_debt(env.store, debt_id).ok  # a day has not passed

    later = utcnow() + timedelta(days=1, minutes=1)
    result = verify_debt(env.store, debt_id, now=lambda: later)
    assert [p.kind for p in result.problems] == [ProblemKind.STALE_UPLOAD]
    other = f"debts/{env.debts()[1]}/media/f3/pdf-{'3' * 64}.pdf"
    start_upload(env.store, other)  # another debt's upload is not this debt's problem
    assert len(verify_debt(env.store, debt_id, stale_after=timedelta(0)).problems) == 1

    (fixed,) = repair_stale_uploads(env.store, result)
    assert fixed.key == key and result.ok and result.repaired == [fixed]
    assert [k for k, _ in open_uploads(env.store)] == [other]
    assert not env.store.abort_multipart_upload(key, "no-such-upload")  # gone is no error


def test_init_bucket_sets_the_abort_rule_and_keeps_other_rules(
    s3_env: dict[str, str], s3_client: Any
) -> None:
    name = unique_bucket_name("life")
    r = CliRunner().invoke(main, ["init-bucket", name, "--abort-uploads-after", "3"])
    assert r.exit_code == 0, r.output
    assert "aborted after 3 days" in r.output and "Warning" not in r.output
    # SeaweedFS supports lifecycle rules: the rule is there.
    (rule,) = s3_client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert rule["ID"] == ABORT_RULE_ID and rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}

    mine = {
        "ID": "operator-tmp",
        "Status": "Enabled",
        "Filter": {"Prefix": "tmp/"},
        "Expiration": {"Days": 30},
    }
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": [mine, rule]}
    )
    r = CliRunner().invoke(main, ["init-bucket", name, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["abort_incomplete_uploads_days"] == 7 and out["warnings"] == []
    rules = {r["ID"]: r for r in s3_client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
    assert set(rules) == {"operator-tmp", ABORT_RULE_ID}
    assert rules[ABORT_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules["operator-tmp"]["Expiration"] == {"Days": 30}


@pytest.mark.parametrize("code,status", [("NotImplemented", 501), ("MethodNotAllowed", 405)])
def test_a_server_without_lifecycle_is_tolerated(code: str, status: int) -> None:
    store = ObjectStore(make_s3_client("http://127.0.0.1:9", region_name="us-east-1"), "b-x")
    with Stubber(store.client) as stub:
        stub.add_client_error(
            "get_bucket_lifecycle_configuration", service_error_code=code, http_status_code=status
        )
        assert store.put_abort_multipart_lifecycle(7) is False


def test_init_bucket_warns_when_lifecycle_is_unsupported(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ObjectStore, "put_abort_multipart_lifecycle", lambda self, days: False)
    name = unique_bucket_name("nolife")
    r = CliRunner().invoke(main, ["init-bucket", name])
    assert r.exit_code == 0, r.output
    assert "Object Lock enabled" in r.stdout
    assert "not supported by this server" in r.stderr
    r = CliRunner().invoke(main, ["init-bucket", name, "--json"])
    out = json.loads(r.stdout)
    assert out["abort_incomplete_uploads_days"] is None
    assert "not supported by this server" in out["warnings"][0]
