"""`archiver pack` end to end on SeaweedFS: the bag, its profile, pack verify, the bytes equal to
S3, the zip, the export event in later dossiers, purged objects, refusals, no secrets."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bagit
import bagit_profile
import pytest
from click.testing import CliRunner
from fixtures.retention import seed_debt, short_policy_toml
from fixtures_archive import Env
from pypdf import PdfReader

from archiver.cli import main
from archiver.errors import IntegrityError
from archiver.pack import PackSettings, build_pack, verify_pack
from archiver.pack.profile import PROFILE_FILE, PROFILE_ID
from archiver.retention.events import read_events
from archiver.retention.policy_files import load_policy_file
from archiver.retention.purge import execute_purge
from archiver.retention.purge_plan import plan_purge
from archiver.retention.registry import PolicyRegistry
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock

pytestmark = pytest.mark.integration

ORG = "Acme Collections Ltd"


def cli(env: Env, *args: str) -> Any:
    return CliRunner().invoke(
        main, list(args), env={**env.cli_env(), "ARCHIVER_ORGANIZATION": ORG, "USER": "j.doe"}
    )


def largest_debt(env: Env) -> str:
    """The archived debt with the most media bytes (the demo packs that one too)."""

    def media_bytes(debt_id: str) -> int:
        key = keys.manifest_key(debt_id, 1)
        manifest = json.loads(env.store.read_bytes(key))
        return int(manifest["summary"]["media_bytes"])

    return max(env.debts(), key=media_bytes)


def bagit_cli(path: Path) -> subprocess.CompletedProcess[str]:
    """`bagit.py --validate PATH`, the receiver's own check."""
    return subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_pack_of_the_largest_debt_is_a_valid_bag_equal_to_s3(env: Env, tmp_path: Path) -> None:
    env.run(env.debts())
    debt_id = largest_debt(env)
    out = tmp_path / "pack"
    r = cli(env, "pack", debt_id, "-o", str(out), "--json", "--reason", "FOS complaint 118")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)

    bag = bagit.Bag(str(out))
    bag.validate()  # raises on any fault
    assert bag.version_info == (1, 0)
    assert set(bag.algorithms) == {"sha256", "sha512"}
    assert bag.info["Source-Organization"] == ORG
    assert bag.info["External-Identifier"] == debt_id
    assert bag.info["Archive-Manifest-Key"] == keys.manifest_key(debt_id, 1)
    manifest_bytes = env.store.read_bytes(keys.manifest_key(debt_id, 1))
    assert bag.info["Archive-Manifest-SHA256"] == hashlib.sha256(manifest_bytes).hexdigest()
    for tag in ("Bagging-Date", "Payload-Oxum", "Bag-Software-Agent"):
        assert bag.info[tag], tag
    assert bagit_cli(out).returncode == 0

    profile = bagit_profile.Profile(PROFILE_ID, profile=json.loads(PROFILE_FILE.read_text()))
    assert profile.validate(bag), profile.report
    assert profile.validate_serialization(str(out))

    r = cli(env, "pack", "verify", str(out))
    assert r.exit_code == 0, r.output
    assert "OK" in r.output

    # Every file that mirrors an archived object is that object's exact bytes.
    manifest = json.loads(manifest_bytes)
    named = {
        f"data/{o['key'][len(keys.debt_prefix(debt_id)) :]}": o
        for f in manifest["followups"]
        for o in [{"key": f["record_key"], "version_id": f["record_version_id"]}, *f["media"]]
    }
    named[f"data/{manifest['debt']['key'][len(keys.debt_prefix(debt_id)) :]}"] = manifest["debt"]
    assert any(o["key"].endswith((".mp3", ".wav", ".pdf")) for o in named.values())
    for rel, obj in named.items():
        stored = env.store.read_bytes(obj["key"], obj.get("version_id"))
        assert (out / rel).read_bytes() == stored, rel
    assert (out / "data/dossier.pdf").read_bytes() == env.store.read_bytes(
        keys.dossier_key(debt_id, 1)
    )
    assert (out / "data/manifests/00000001.json").read_bytes() == manifest_bytes
    payload = {p.relative_to(out).as_posix() for p in (out / "data").rglob("*") if p.is_file()}
    assert (
        set(named)
        | {
            "data/dossier.pdf",
            "data/dossier.receipt.json",
            "data/manifests/00000001.json",
            "data/index.html",
            "data/VERIFY.txt",
        }
        == payload
    )

    # The handover is recorded: an export event naming the manifest and the tag manifest.
    (event,) = [e for e in read_events(env.store, debt_id) if e["action"] == "export"]
    assert event["key"] == result["export_event"]
    assert event["actor"] == "j.doe" and event["reason"] == "FOS complaint 118"
    assert event["manifest"] == {
        "key": keys.manifest_key(debt_id, 1),
        "sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "sequence": 1,
    }
    tagmanifest = hashlib.sha256((out / "tagmanifest-sha256.txt").read_bytes()).hexdigest()
    assert event["pack"]["tagmanifest_sha256"] == tagmanifest
    info = env.store.head(event["key"])
    assert info is not None and info.lock_mode == "GOVERNANCE" and info.retain_until


def test_no_secret_reaches_the_pack(env: Env, tmp_path: Path) -> None:
    env.run(env.debts())
    debt_id = largest_debt(env)
    out = tmp_path / "pack"
    assert cli(env, "pack", debt_id, "-o", str(out)).exit_code == 0
    secret = env.cli_env()["GETBILL_CLIENT_SECRET"].encode()
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret not in data, path
            assert b"x-amz-signature" not in data.lower(), path
            assert b"x-amz-credential" not in data.lower(), path


def test_index_html_is_self_contained_and_escapes_records(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    hostile = '<script>alert("x")</script><img src="https://evil.example/p.png">'
    env.sim.add_followup(debt_id, type="call", status="deal_found", summary=hostile)
    env.run([debt_id])
    out = tmp_path / "pack"
    assert cli(env, "pack", debt_id, "-o", str(out)).exit_code == 0
    page = (out / "data/index.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert "evil.example" in page and 'src="https://evil.example' not in page
    assert not re.findall(r"<(?:link|script|img|iframe|object|embed|audio|video)\b", page, re.I)
    assert not re.findall(r"<[^>]*\s(?:src|srcset|action)=", page, re.I)
    hrefs = [h.split('"', 1)[0] for h in page.split('href="')[1:]]
    assert hrefs and all(not h.startswith(("http:", "https:", "/", "file:")) for h in hrefs)
    for href in hrefs:  # every link is a file of the pack, relative to data/
        assert (out / "data" / href).is_file(), href
    # Every followup is there, in time order, with its record linked.
    manifest = json.loads(env.store.read_bytes(keys.manifest_key(debt_id, 1)))
    table = page[page.index("<h2>Followups") : page.index("<h2>Events")]
    for f in manifest["followups"]:
        assert f"<code>{f['id']}</code>" in table
    when = re.findall(r'<td class="when">([^<]+)</td>', table)
    assert len(when) == len(manifest["followups"]) and "undated" not in when[:-1]
    dated = [w for w in when if w != "undated"]
    assert len(set(dated)) > 3 and dated == sorted(dated)
    assert "&lt;script&gt;" in table  # the hostile summary is shown, as text


def test_zip_streams_the_bag_as_one_folder(env: Env, tmp_path: Path) -> None:
    env.run(env.debts())
    debt_id = largest_debt(env)
    out = tmp_path / "evidence.zip"
    r = cli(env, "pack", debt_id, "-o", str(out), "--zip")
    assert r.exit_code == 0, r.output
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert {n.split("/", 1)[0] for n in names} == {"evidence"}
    assert "evidence/bagit.txt" in names and "evidence/data/index.html" in names
    assert verify_pack(out).ok
    r = cli(env, "pack", "verify", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "ok"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path / "x")
    assert bagit_cli(tmp_path / "x" / "evidence").returncode == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left over


def test_export_is_shown_in_the_next_dossiers_chain_of_custody(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    assert cli(env, "pack", debt_id, "-o", str(tmp_path / "p1"), "--reason", "Court").exit_code == 0
    (event,) = [e for e in read_events(env.store, debt_id) if e["action"] == "export"]
    sha = event["pack"]["tagmanifest_sha256"]

    # Rendered on demand, the export is an event recorded after the manifest.
    r = cli(env, "dossier", debt_id, "-o", str(tmp_path / "now.pdf"))
    assert r.exit_code == 0, r.output
    text = "".join(p.extract_text() for p in PdfReader(tmp_path / "now.pdf").pages)
    assert "Evidence packs handed over" in text
    assert sha[:16] in text.replace("\n", "")

    # The next manifest accounts for it: its stored dossier shows it.
    env.clock.advance(3600)
    env.sim.add_followup(debt_id, type="call", status="deal_found")
    env.run([debt_id])
    stored = env.store.read_bytes(keys.dossier_key(debt_id, 2))
    (tmp_path / "d2.pdf").write_bytes(stored)
    text = "".join(p.extract_text() for p in PdfReader(tmp_path / "d2.pdf").pages)
    assert "Evidence packs handed over" in text
    assert sha[:16] in text.replace("\n", "")
    assert "No legal hold was placed on this debt." in text  # an export is no hold

    # A pack of manifest 1 holds manifest 1 only, and the first export among its events.
    out = tmp_path / "p-seq1"
    assert cli(env, "pack", debt_id, "--sequence", "1", "-o", str(out)).exit_code == 0
    assert sorted(p.name for p in (out / "data/manifests").iterdir()) == ["00000001.json"]
    assert (out / "data/events" / event["key"].rsplit("/", 1)[1]).is_file()
    assert verify_pack(out).ok


def test_purged_objects_appear_as_their_deletion_records(
    locked_bucket: ObjectStore, tmp_path: Path
) -> None:
    policy_file = tmp_path / "short-test.toml"
    policy_file.write_text(short_policy_toml("short-test"), encoding="utf-8")
    seed_debt(locked_bucket)  # no dossier stored: said so, not invented
    plan = plan_purge(
        locked_bucket,
        policy=load_policy_file(policy_file),
        registry=PolicyRegistry(),
        now=datetime.now(UTC) + timedelta(days=5),
    )
    done = execute_purge(
        locked_bucket, plan, reason="end of retention", actor="ops", bypass_governance=True
    )
    assert done.deleted
    out = tmp_path / "pack"
    settings = PackSettings(organization=ORG, actor="ops")
    result = build_pack(locked_bucket, "D-1", out, settings)
    assert {p.key for p in result.purged} == {v.key for v in done.deleted}
    page = (out / "data/index.html").read_text(encoding="utf-8")
    verify_txt = (out / "data/VERIFY.txt").read_text(encoding="utf-8")
    for p in result.purged:
        assert p.key in page and p.key in verify_txt
        assert (out / "data/events" / p.event_key.rsplit("/", 1)[1]).is_file()
        assert not (out / "data" / p.key.split("/", 2)[2]).exists()
    assert "No dossier is stored for manifest 2" in verify_txt
    assert not (out / "data/dossier.pdf").exists()
    check = verify_pack(out)
    assert check.ok, [p.to_dict() for p in check.problems]
    assert [n.kind.value for n in check.notices] == ["DossierMissing"]
    assert bagit_cli(out).returncode == 0


class _Flipping:
    """A store whose copy of one key comes back with one byte changed."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self._store, self._key = store, key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def iter_chunks(self, key: str, version_id: str | None = None) -> Any:
        for n, chunk in enumerate(self._store.iter_chunks(key, version_id)):
            yield (bytes([chunk[0] ^ 1]) + chunk[1:]) if key == self._key and n == 0 else chunk


def test_a_mismatch_with_the_manifest_stops_the_pack_naming_the_key(
    env: Env, tmp_path: Path
) -> None:
    env.run(env.debts())
    debt_id = largest_debt(env)
    manifest = json.loads(env.store.read_bytes(keys.manifest_key(debt_id, 1)))
    medium = next(m for f in manifest["followups"] for m in f["media"])
    store: Any = _Flipping(env.store, medium["key"])
    out = tmp_path / "packs" / "pack"
    with pytest.raises(IntegrityError) as caught:
        build_pack(store, debt_id, out, PackSettings(organization=ORG, actor="ops"))
    assert caught.value.context["key"] == medium["key"]
    assert "does not match" in caught.value.message
    assert not list(out.parent.iterdir())  # nothing half made, nothing left over
    assert not [e for e in read_events(env.store, debt_id) if e["action"] == "export"]


def test_refusals_are_usage_errors(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    out = tmp_path / "exists"
    out.mkdir()
    r = cli(env, "pack", debt_id, "-o", str(out))
    assert r.exit_code == 2 and "exists" in r.output
    r = CliRunner().invoke(main, ["pack", debt_id, "-o", str(tmp_path / "p")], env=env.cli_env())
    assert r.exit_code == 2 and "ARCHIVER_ORGANIZATION" in r.output
    r = cli(env, "pack", debt_id, "--sequence", "7", "-o", str(tmp_path / "p"))
    assert r.exit_code == 2 and "no manifest 7" in r.output
    r = cli(env, "pack", "verify", str(tmp_path / "missing"))
    assert r.exit_code == 2
    assert not read_events(env.store, debt_id)


def test_help_shows_both_forms_with_examples(env: Env) -> None:
    r = CliRunner().invoke(main, ["pack", "--help"])
    assert r.exit_code == 0
    assert "archiver pack aoqawrflg37x -o" in r.output and "archiver pack verify" in r.output
    r = CliRunner().invoke(main, ["pack", "verify", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output
    r = CliRunner().invoke(main, ["pack", "create", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output


def fake_token(sha256_hex: str) -> bytes:
    """The message imprint part of an RFC 3161 token (SHA-256 AlgorithmIdentifier, digest)."""
    imprint = bytes.fromhex("300d06096086480165030402010500") + b"\x04\x20"
    return b"\x30\x31" + imprint + bytes.fromhex(sha256_hex)


def test_timestamp_tokens_travel_with_their_manifests_and_are_checked(
    env: Env, tmp_path: Path
) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    env.clock.advance(3600)
    env.sim.add_followup(debt_id, type="call", status="deal_found")
    env.run([debt_id])
    sha = [
        hashlib.sha256(env.store.read_bytes(keys.manifest_key(debt_id, n))).hexdigest()
        for n in (1, 2)
    ]
    lock = env.store.head(keys.manifest_key(debt_id, 2))
    assert lock is not None and lock.lock_mode and lock.retain_until

    def put_token(seq: int, imprint: str) -> None:
        env.store.put_bytes(
            f"{keys.debt_prefix(debt_id)}manifests/{seq:08d}.tsr",
            fake_token(imprint),
            lock=Lock(lock.lock_mode, lock.retain_until),  # type: ignore[arg-type]
            content_type="application/timestamp-reply",
        )

    put_token(1, sha[0])
    put_token(2, sha[0])  # manifest 2's token was taken from manifest 1
    out = tmp_path / "pack"
    r = cli(env, "pack", debt_id, "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokens"] == 2
    assert (out / "data/manifests/00000001.tsr").read_bytes() == fake_token(sha[0])
    assert bagit_cli(out).returncode == 0  # the bag itself is intact
    r = cli(env, "pack", "verify", str(out), "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    found = {p["key"]: p["message"] for p in report["problems"]}
    # Token 2 stamps manifest 1's bytes; token 1 has the right imprint but these test bytes
    # are no signed token at all (pack verify checks signatures: a real TSA's test is in
    # tests/test_timestamps_e2e.py).
    assert set(found) == {"data/manifests/00000001.tsr", "data/manifests/00000002.tsr"}
    assert "imprint" in found["data/manifests/00000002.tsr"]
    page = (out / "data/index.html").read_text(encoding="utf-8")
    assert 'href="manifests/00000001.tsr"' in page
    assert "openssl ts -verify" in (out / "data/VERIFY.txt").read_text(encoding="utf-8")
