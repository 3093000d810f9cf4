"""Dossiers proven by their stored hashes (receipts, and the next manifest's
``previous_dossier``) rather than by rendering them again; a purged dossier stays purged; a
dossier that cannot be stored leaves the debt partial and the next run stores it.

Over real HTTP: the getbill simulator on 127.0.0.1 and SeaweedFS.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from botocore.exceptions import EndpointConnectionError
from click.testing import CliRunner
from fixtures.retention import short_policy_toml
from fixtures_archive import Env, all_versions, manifest_of
from pypdf import PdfReader

from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.common.canonical import canonical_json, sha256_hex
from archiver.config import ArchiverConfig
from archiver.retention.policy_files import load_policy_file
from archiver.retention.purge import execute_purge
from archiver.retention.purge_plan import plan_purge
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.settings import make_s3_client
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def replace_object(env: Env, key: str, body: bytes, metadata: dict[str, str]) -> None:
    """Remove the current version with governance bypass and put other bytes in its place
    (what someone allowed to bypass governance retention could do)."""
    client, bucket = env.s3.client(), env.store.bucket
    info = env.store.head(key)
    assert info is not None and info.version_id
    client.delete_object(
        Bucket=bucket, Key=key, VersionId=info.version_id, BypassGovernanceRetention=True
    )
    client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)


def kinds(problems: list[Any]) -> list[str]:
    return [str(p.kind) for p in problems]


def test_a_forged_dossier_claiming_an_earlier_renderer_is_a_mismatch(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    key = keys.dossier_key(debt_id, 1)
    forged = b"%PDF-1.7\n% forged\n"
    replace_object(env, key, forged, {"kind": "dossier", "renderer-version": "1.0.0"})
    for rerender in (rerender_stored, None):
        result = verify_debt(env.store, debt_id, rerender=rerender)
        assert kinds(result.problems) == ["DossierMismatch"], result.problems
        assert result.problems[0].key == key
        assert result.problems[0].found == sha256_hex(forged)


def test_a_library_upgrade_is_a_notice_when_the_stored_bytes_match_their_receipt(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
    # A verifying machine with a newer pikepdf: the colophon prints another version, so a
    # re-render gives other bytes than the stored dossier.
    monkeypatch.setattr(pikepdf, "__version__", "99.0.0")
    checked = verify_debt(env.store, debt_id, rerender=rerender_stored)
    assert checked.ok, checked.problems
    assert kinds(checked.notices) == ["DossierRendererChanged"]
    assert checked.notices[0].key == keys.dossier_key(debt_id, 1)
    plain = verify_debt(env.store, debt_id)
    assert plain.ok and plain.dossiers == 1, plain.problems
    assert plain.notices == []


def test_the_next_manifest_names_the_previous_dossier_and_verify_follows_it(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    dkey = keys.dossier_key(debt_id, 1)
    stored = env.store.read_bytes(dkey)
    receipt = json.loads(env.store.read_bytes(keys.dossier_receipt_key(debt_id, 1)))
    m1_data, _ = manifest_of(env.store, debt_id, 1)
    assert receipt["schema"] == "getbill-archiver/dossier-receipt/v1"
    assert receipt["dossier"]["sha256"] == sha256_hex(stored)
    assert receipt["dossier"]["size"] == len(stored)
    assert receipt["manifest"] == {
        "key": keys.manifest_key(debt_id, 1),
        "sha256": sha256_hex(m1_data),
    }
    env.sim.add_followup(debt_id, type="email", status="sent")
    env.run([debt_id])
    _, second = manifest_of(env.store, debt_id, 2)
    assert second["previous_dossier"] == {
        "key": dkey,
        "sha256": sha256_hex(stored),
        "size": len(stored),
    }
    assert verify_debt(env.store, debt_id).ok

    # Replace dossier 1 and its receipt consistently: only manifest 2 still knows the truth.
    forged = b"%PDF-1.7\n% forged\n"
    replace_object(env, dkey, forged, {"kind": "dossier"})
    receipt["dossier"].update(sha256=sha256_hex(forged), size=len(forged))
    replace_object(
        env, keys.dossier_receipt_key(debt_id, 1), canonical_json(receipt), {"kind": "receipt"}
    )
    result = verify_debt(env.store, debt_id)
    assert kinds(result.problems) == ["DossierMismatch"], result.problems
    assert result.problems[0].key == dkey
    assert result.problems[0].expected == sha256_hex(stored)
    assert keys.manifest_key(debt_id, 2) in result.problems[0].message


def test_a_purged_latest_dossier_is_not_created_again(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    policy_file = tmp_path / "short.toml"
    policy_file.write_text(short_policy_toml("short", dossier_max=True), encoding="utf-8")
    env.config = ArchiverConfig(**{**env.config.__dict__, "policy": str(policy_file)})

    def purge() -> list[str]:
        plan = plan_purge(
            env.store,
            policy=load_policy_file(policy_file),
            registry=env.config.policy_registry(),
            now=datetime.now(UTC) + timedelta(days=3),
            debt_ids=[debt_id],
        )
        result = execute_purge(env.store, plan, reason="test", actor="t", bypass_governance=True)
        return [c.key for c in result.deleted]

    env.run([debt_id])
    assert keys.dossier_key(debt_id, 1) in purge()
    (res,) = env.run([debt_id]).debts  # the purge marks give manifest 2 and its dossier
    assert res.status == "archived" and res.sequence == 2
    latest = keys.dossier_key(debt_id, 2)
    assert latest in purge()
    assert not all_versions(env.store, latest)
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged"
    assert not all_versions(env.store, latest), "the purged dossier was stored again"
    assert res.dossier_key is None
    assert purge() == []  # nothing re-created, so nothing to delete again
    result = verify_debt(env.store, debt_id)
    assert result.ok, result.problems


def refuse_puts(monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    """Every S3 client the CLI makes fails the PUTs of keys containing ``part``."""

    def client_refusing(*args: Any, **kw: Any) -> Any:
        client = make_s3_client(*args, **kw)

        def refuse(params: dict[str, Any], **_: Any) -> None:
            if part in str(params.get("Key", "")):
                raise EndpointConnectionError(endpoint_url="s3 (upload cut)")

        client.meta.events.register("before-parameter-build.s3.PutObject", refuse)
        return client

    monkeypatch.setattr("archiver.wiring.make_s3_client", client_refusing)
    # The refusal is a boto3 hook: the stores of these runs send small objects through boto3
    # too (SmallPuts' own refusals are tests/test_store_smallputs.py's).
    monkeypatch.setattr("archiver.wiring.small_puts", lambda store: None)


def test_a_dossier_that_cannot_be_stored_leaves_the_debt_partial_and_is_stored_next_run(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    debt_id = env.debts()[0]
    refuse_puts(monkeypatch, "/dossiers/")
    r = CliRunner().invoke(main, ["archive", debt_id, "--json"], env=env.cli_env())
    assert r.exit_code == 3, r.output
    line = json.loads(r.stdout.splitlines()[0])
    assert line["status"] == "partial" and line["sequence"] == 1
    assert [p["type"] for p in line["problems"]] == ["StorageError"], line["problems"]
    assert line["problems"][0]["key"] == keys.dossier_key(debt_id, 1)
    assert env.store.head(keys.manifest_key(debt_id, 1)) is not None
    assert env.store.head(keys.dossier_key(debt_id, 1)) is None
    assert kinds(verify_debt(env.store, debt_id).problems) == ["DossierMissing"]

    monkeypatch.undo()
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged" and res.sequence == 1, res.problems
    assert res.dossier_key == keys.dossier_key(debt_id, 1)
    assert env.store.head(keys.dossier_receipt_key(debt_id, 1)) is not None
    result = verify_debt(env.store, debt_id, rerender=rerender_stored)
    assert result.ok and result.dossiers == 1, result.problems


def test_a_receipt_that_cannot_be_stored_is_written_by_the_next_run(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    debt_id = env.debts()[0]
    rkey = keys.dossier_receipt_key(debt_id, 1)
    refuse_puts(monkeypatch, ".receipt.json")
    r = CliRunner().invoke(main, ["archive", debt_id, "--json"], env=env.cli_env())
    assert r.exit_code == 3, r.output
    line = json.loads(r.stdout.splitlines()[0])
    assert line["status"] == "partial" and line["dossier_key"] == keys.dossier_key(debt_id, 1)
    assert [(p["type"], p["key"]) for p in line["problems"]] == [("StorageError", rkey)]
    assert env.store.head(rkey) is None
    assert kinds(verify_debt(env.store, debt_id).notices) == ["DossierUnproven"]

    monkeypatch.undo()
    # The next run renders the stored dossier again (with the bucket and endpoint it names)
    # and, the bytes being the same, writes the receipt.
    r = CliRunner().invoke(main, ["archive", debt_id, "--json"], env=env.cli_env())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[0])["status"] == "unchanged"
    receipt = json.loads(env.store.read_bytes(rkey))
    stored = env.store.read_bytes(keys.dossier_key(debt_id, 1))
    assert receipt["dossier"]["sha256"] == sha256_hex(stored)
    result = verify_debt(env.store, debt_id)
    assert result.ok and result.notices == [], (result.problems, result.notices)


def test_the_dossier_names_where_it_is_and_verifies_through_another_endpoint(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    key = keys.dossier_key(debt_id, 1)
    info = env.store.head(key)
    assert info is not None
    endpoint = env.s3.endpoint_url
    assert info.metadata["bucket"] == env.store.bucket
    assert info.metadata["endpoint"] == endpoint
    pages = PdfReader(io.BytesIO(env.store.read_bytes(key))).pages
    text = "".join(page.extract_text() or "" for page in pages).replace("\n", " ")
    assert f"archiver verify {debt_id} --bucket {env.store.bucket}" in text
    assert f"AWS_ENDPOINT_URL_S3={endpoint}" in text
    # The same server by another name: a re-render still prints what the dossier printed.
    other = ObjectStore(
        make_s3_client(
            endpoint.replace("127.0.0.1", "localhost"),
            aws_access_key_id=env.s3.access_key,
            aws_secret_access_key=env.s3.secret_key,
        ),
        env.store.bucket,
    )
    result = verify_debt(other, debt_id, rerender=rerender_stored)
    assert result.ok and result.notices == [], (result.problems, result.notices)
