"""The CLI contract end to end: dry run, status, reindex, dossier, verify of dossiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures_archive import Env, all_versions, manifest_of
from pypdf import PdfReader

from archiver import dossier as dossier_pkg
from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.common.canonical import sha256_hex
from archiver.getbill.settings import ApiSettings
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_dry_run_downloads_and_writes_nothing(env: Env) -> None:
    debts = env.debts()
    r = CliRunner().invoke(main, ["archive", *debts, "--dry-run", "--json"], env=env.cli_env())
    assert r.exit_code == 0, r.output
    out = lines(r.stdout)
    planned = {d["debt_id"]: d for d in out[:-1]}
    assert {d["status"] for d in planned.values()} == {"planned"}
    for debt_id in debts:
        media = sum(len(env.sim.media_kinds(f)) for f in env.sim.followup_ids(debt_id))
        assert planned[debt_id]["media_stored"] == media  # what would be fetched
    assert not all_versions(env.store)
    assert not env.sim.requests_to("/media/")


def test_debt_without_debts_read_scope_is_noted_not_fatal(env: Env) -> None:
    env.api = ApiSettings(
        base_url=env.sim_url,
        client_id="followups-only-client",
        client_secret="followups-only-secret",
        scope="followups:read",
    )
    debt_id = env.debts()[0]
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived", res.problems
    _, manifest = manifest_of(env.store, debt_id, 1)
    assert manifest["debt"] is None
    assert manifest["debt_unavailable"]["status"] == 403
    assert "debts:read" in manifest["debt_unavailable"]["reason"]
    assert not list(env.store.list_keys(f"debts/{debt_id}/debt/"))


def test_foreign_debt_fails_clearly_others_go_through(env: Env) -> None:
    foreign = env.sim.debt_ids(company="B")[0]
    mine = env.debts()[0]
    r = CliRunner().invoke(main, ["archive", foreign, mine, "--json"], env=env.cli_env())
    assert r.exit_code == 1, r.output  # one debt not archived at all: failure, the other done
    out = lines(r.stdout)
    assert out[0]["status"] == "failed"
    assert out[0]["error"]["type"] == "ApiAuthError"
    assert out[0]["error"]["api_message"] == "Access denied to this debt"
    assert out[0]["error"]["status"] == 403
    assert out[1]["status"] == "archived"


def test_status_and_reindex_rebuild_the_same_view(env: Env, tmp_path: Path) -> None:
    debts = env.debts()
    cli_env = env.cli_env()
    assert CliRunner().invoke(main, ["archive", *debts], env=cli_env).exit_code == 0
    r = CliRunner().invoke(main, ["status", "--json"], env=cli_env)
    assert r.exit_code == 0, r.output
    before = {row["debt_id"]: row for row in lines(r.stdout) if "debt_id" in row}
    assert set(before) == set(debts)
    for debt_id in debts:
        data, manifest = manifest_of(env.store, debt_id, 1)
        assert before[debt_id]["manifest_sha256"] == sha256_hex(data)
        assert before[debt_id]["followups"] == len(manifest["followups"])

    fresh = {**cli_env, "ARCHIVER_CATALOG": str(tmp_path / "rebuilt.db")}
    r = CliRunner().invoke(main, ["reindex", "--json"], env=fresh)
    assert r.exit_code == 0, r.output
    assert lines(r.stdout)[0]["manifests"] == len(debts)
    r = CliRunner().invoke(main, ["status", "--json"], env=fresh)
    after = {row["debt_id"]: row for row in lines(r.stdout) if "debt_id" in row}
    keys = ("sequence", "manifest_key", "manifest_sha256", "followups", "media", "problems")
    for debt_id in debts:
        assert {k: after[debt_id][k] for k in keys} == {k: before[debt_id][k] for k in keys}


def test_dossier_command_writes_the_stored_dossier(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    out = tmp_path / "d.pdf"
    r = CliRunner().invoke(main, ["dossier", debt_id, "-o", str(out)], env=env.cli_env())
    assert r.exit_code == 0, r.output
    stored = env.store.read_bytes(f"debts/{debt_id}/dossiers/00000001.pdf")
    assert out.read_bytes() == stored  # the same bytes, rendered again from S3 alone
    data, manifest = manifest_of(env.store, debt_id, 1)
    text = "".join(page.extract_text() or "" for page in PdfReader(out).pages)
    assert sha256_hex(data) in text.replace("\n", "")
    for f in manifest["followups"]:
        assert f["id"] in text


def test_verify_tells_a_renderer_change_from_tampering(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
    real = dossier_pkg.render_dossier_bytes

    def other_renderer(inp: object) -> bytes:
        return real(inp) + b"\n% another renderer\n"  # type: ignore[arg-type]

    monkeypatch.setattr(dossier_pkg, "render_dossier_bytes", other_renderer)
    # The stored bytes are those of their receipt: drawn differently now, not tampered with.
    result = verify_debt(env.store, debt_id, rerender=rerender_stored)
    assert result.ok, result.problems
    assert [p.kind for p in result.notices] == ["DossierRendererChanged"]
    stored_version = dossier_pkg.RENDERER_VERSION  # the dossier was stored by this version
    monkeypatch.setattr(dossier_pkg, "RENDERER_VERSION", "9.9.9")
    result = verify_debt(env.store, debt_id, rerender=rerender_stored)
    assert result.ok  # a renderer upgrade is a fact to report, not a failure
    assert [p.kind for p in result.notices] == ["DossierRendererChanged"]
    assert result.notices[0].expected == stored_version
    assert result.notices[0].found == "9.9.9"
    # Bytes other than the receipt's are a mismatch, even the new renderer's own output.
    client, bucket = env.s3.client(), env.store.bucket
    key = f"debts/{debt_id}/dossiers/00000001.pdf"
    version = env.store.head(key).version_id  # type: ignore[union-attr]
    body = rerender_stored(*_manifest_args(env, debt_id))[0]
    client.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"renderer-version": "9.9.9"})
    result = verify_debt(env.store, debt_id, rerender=rerender_stored)
    assert [p.kind for p in result.problems] == ["DossierMismatch"]


def _manifest_args(env: Env, debt_id: str) -> tuple[dict, str, str, object]:
    data, manifest = manifest_of(env.store, debt_id, 1)
    return manifest, f"debts/{debt_id}/manifests/00000001.json", sha256_hex(data), env.store


def test_a_forged_dossier_cannot_pass_as_a_renderer_change(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    client, bucket = env.s3.client(), env.store.bucket
    key = f"debts/{debt_id}/dossiers/00000001.pdf"
    version = env.store.head(key).version_id  # type: ignore[union-attr]
    client.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    client.put_object(
        Bucket=bucket, Key=key, Body=b"%PDF-1.7 forged", Metadata={"renderer-version": "0.0.1"}
    )
    result = verify_debt(env.store, debt_id, rerender=rerender_stored)
    assert [p.kind for p in result.problems] == ["DossierMismatch"]
