"""A changed pack never passes: one byte of a payload or tag file changed, a file removed, a
file added. Each makes both `archiver pack verify` and bagit-python's own validation
(`bagit.py --validate`) fail, and pack verify names the file.

One pack is made for the module (a debt archived twice on SeaweedFS, two manifests); each
test changes a copy of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures_archive import SMALL
from fixtures_s3 import unique_bucket_name

from archiver.cli import main
from archiver.config import ArchiverConfig
from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig, SimulatorServer
from archiver.getbill.settings import ApiSettings
from archiver.pack import PackSettings, build_pack
from archiver.pack.zipped import write_zip
from archiver.store.objects import ObjectStore
from archiver.wiring import open_archiver

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Made:
    pack: Path
    debt_id: str


@pytest.fixture(scope="module")
def made(s3_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    store = ObjectStore(s3_client, unique_bucket_name("pack"))
    store.create_bucket()
    work = tmp_path_factory.mktemp("pack-module")
    clock = SimClock()
    sim = Simulator(SimulatorConfig(**SMALL), clock=clock)  # type: ignore[arg-type]
    with SimulatorServer(sim) as server:
        config = ArchiverConfig(
            bucket=store.bucket,
            catalog=work / "catalog.db",
            media_hosts=("127.0.0.1",),
        )
        api = ApiSettings(
            base_url=server.base_url, client_id="demo-client", client_secret="demo-secret"
        )
        debt_id = next(d for d in sim.debt_ids(company="A") if sim.followup_ids(d))
        with open_archiver(config, api, s3_client=s3_client) as session:
            session.archiver.run([debt_id])
        clock.advance(3600)
        sim.add_followup(debt_id, type="call", status="deal_found")
        with open_archiver(config, api, s3_client=s3_client) as session:
            session.archiver.run([debt_id])
        pack = work / "pack"
        build_pack(store, debt_id, pack, PackSettings(organization="Acme", actor="ops"))
    yield Made(pack, debt_id)


@pytest.fixture
def pack(made: Made, tmp_path: Path) -> Path:
    copy = tmp_path / "pack"
    shutil.copytree(made.pack, copy)
    return copy


def verify(path: Path) -> tuple[int, dict[str, Any]]:
    r = CliRunner().invoke(main, ["pack", "verify", str(path), "--json"])
    return r.exit_code, json.loads(r.stdout)


def bagit_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def flip_hex_digit(path: Path) -> None:
    """Change the first digest character of the first line (still a valid hex digit)."""
    data = bytearray(path.read_bytes())
    data[0] = ord("1") if data[0] != ord("1") else ord("2")
    path.write_bytes(bytes(data))


def named(report: dict[str, Any], rel: str) -> list[str]:
    return [p["type"] for p in report["problems"] if p.get("key") == rel]


def one(pack: Path, folder: str, suffix: str = "") -> str:
    found = sorted(
        p.relative_to(pack).as_posix()
        for p in (pack / folder).rglob("*")
        if p.is_file() and p.name.endswith(suffix)
    )
    assert found, folder
    return found[0]


def assert_fails(pack: Path, rel: str, *, kinds: set[str], bagit_names: bool = True) -> None:
    code, report = verify(pack)
    assert code == 1, report
    assert report["status"] == "problems"
    assert set(named(report, rel)) & kinds, report["problems"]
    checked = bagit_validate(pack)
    assert checked.returncode == 1, checked.stderr
    assert "is invalid" in checked.stderr
    if bagit_names:
        assert rel in checked.stderr, checked.stderr[-2000:]


def test_the_untouched_pack_passes_both(pack: Path) -> None:
    code, report = verify(pack)
    assert code == 0, report["problems"]
    assert report["manifests"] == 2 and report["notices"] == []
    assert bagit_validate(pack).returncode == 0


def test_one_byte_of_a_recording_changed(pack: Path) -> None:
    rel = one(pack, "data/media")
    flip(pack / rel)
    assert_fails(pack, rel, kinds={"ChecksumMismatch"})


def test_one_byte_of_a_record_changed(pack: Path) -> None:
    rel = one(pack, "data/records")
    flip(pack / rel)
    assert_fails(pack, rel, kinds={"ChecksumMismatch"})


def test_one_byte_of_a_manifest_changed(pack: Path) -> None:
    rel = "data/manifests/00000001.json"
    flip(pack / rel)
    assert_fails(pack, rel, kinds={"ChecksumMismatch", "ChainBroken"})


def test_one_byte_of_the_dossier_changed(pack: Path) -> None:
    rel = "data/dossier.pdf"
    flip(pack / rel)
    assert_fails(pack, rel, kinds={"ChecksumMismatch", "DossierMismatch"})


def test_one_byte_of_index_html_changed(pack: Path) -> None:
    rel = "data/index.html"
    flip(pack / rel, at=20)
    assert_fails(pack, rel, kinds={"ChecksumMismatch"})


def test_one_byte_of_bag_info_changed(pack: Path) -> None:
    text = (pack / "bag-info.txt").read_text(encoding="utf-8")
    (pack / "bag-info.txt").write_text(text.replace("Acme", "Acmf"), encoding="utf-8")
    assert_fails(pack, "bag-info.txt", kinds={"ChecksumMismatch"})


def test_one_byte_of_the_payload_manifest_changed(pack: Path) -> None:
    flip_hex_digit(pack / "manifest-sha256.txt")
    assert_fails(pack, "manifest-sha256.txt", kinds={"ChecksumMismatch"})


def test_one_byte_of_the_tag_manifest_changed(pack: Path) -> None:
    flip_hex_digit(pack / "tagmanifest-sha256.txt")
    first = (pack / "tagmanifest-sha256.txt").read_text().split()[1]  # the file it names
    code, report = verify(pack)
    assert code == 1
    faults = [p for p in report["problems"] if p.get("key") == first]
    assert faults and "tagmanifest-sha256.txt" in faults[0]["message"], report["problems"]
    checked = bagit_validate(pack)
    assert checked.returncode == 1 and first in checked.stderr


def test_a_file_removed(pack: Path) -> None:
    rel = one(pack, "data/media")
    (pack / rel).unlink()
    # bagit-python stops at the Payload-Oxum (file count) and does not name the file.
    assert_fails(pack, rel, kinds={"ObjectMissing"}, bagit_names=False)


def test_a_file_added(pack: Path) -> None:
    rel = "data/media/extra-evidence.mp3"
    (pack / rel).write_bytes(b"ID3 not from the archive")
    assert_fails(pack, rel, kinds={"PackUnexpectedFile"}, bagit_names=False)


def test_a_changed_zip_fails_too(pack: Path, tmp_path: Path) -> None:
    rel = one(pack, "data/media")
    flip(pack / rel)
    zipped = tmp_path / "pack.zip"
    write_zip(pack, zipped, folder="pack")
    code, report = verify(zipped)
    assert code == 1 and "ChecksumMismatch" in named(report, rel)
