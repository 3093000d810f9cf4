"""Evidence packs, the pure parts: layout, the profile, token imprints, the page's escaping,
the zip's own safety."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import bagit_profile
import pytest

from archiver.errors import IntegrityError
from archiver.pack.contents import ChainEntry, EventEntry, PackContents, record_fields
from archiver.pack.copy import Fixity
from archiver.pack.index import render_index, render_verify
from archiver.pack.layout import Purged, key_of_path, pack_path, token_sequences
from archiver.pack.profile import PROFILE_FILE, PROFILE_ID, load_profile, profile_faults
from archiver.pack.verify import imprint_matches
from archiver.pack.zipped import extract_zip

SHA = hashlib.sha256(b"manifest").hexdigest()
OTHER = hashlib.sha256(b"another manifest").hexdigest()
IMPRINT = bytes.fromhex("300d06096086480165030402010500") + b"\x04\x20"


def test_archive_keys_map_to_pack_paths_and_back() -> None:
    key = "debts/D-1/media/F-1/audio-ab.mp3"
    assert pack_path("D-1", key) == "data/media/F-1/audio-ab.mp3"
    assert key_of_path("D-1", "data/media/F-1/audio-ab.mp3") == key
    assert key_of_path("D-1", "data/dossier.pdf") is None
    for outside in ("debts/D-2/media/x", "debts/D-1/../D-2/x", "debts/D-1/", "other"):
        with pytest.raises(ValueError):
            pack_path("D-1", outside)


def test_tokens_are_grouped_by_their_manifest() -> None:
    names = ["00000001.json", "00000001.tsr", "00000002.tsr", "00000002.json", "notes.txt"]
    assert token_sequences(names) == {1: ["00000001.tsr"], 2: ["00000002.tsr"]}


def test_a_token_must_carry_its_manifests_digest() -> None:
    token = b"\x30\x82\x01\x00" + b"\x00" * 40 + IMPRINT + bytes.fromhex(SHA) + b"\x00" * 20
    assert imprint_matches(token, SHA)
    assert not imprint_matches(token, OTHER)
    assert not imprint_matches(b"\x04\x20" + bytes.fromhex(SHA), SHA)  # no SHA-256 imprint
    assert not imprint_matches(token, "not hex")


def test_the_shipped_profile_is_a_valid_bagit_profile() -> None:
    profile = json.loads(PROFILE_FILE.read_text(encoding="utf-8"))
    assert profile["BagIt-Profile-Info"]["BagIt-Profile-Identifier"] == PROFILE_ID
    bagit_profile.Profile(PROFILE_ID, profile=profile)  # validates the profile itself
    assert profile["Bag-Info"]["BagIt-Profile-Identifier"]["values"] == [PROFILE_ID]
    for tag in ("Source-Organization", "External-Identifier", "Bagging-Date", "Payload-Oxum"):
        assert profile["Bag-Info"][tag]["required"] is True, tag


def test_profile_faults_name_what_a_bag_lacks() -> None:
    info = {tag: "x" for tag, rule in load_profile()["Bag-Info"].items() if rule.get("required")}
    info["BagIt-Profile-Identifier"] = PROFILE_ID
    both = {"sha256", "sha512"}
    assert profile_faults(info, "1.0", both, both) == []
    del info["Source-Organization"]
    info["External-Identifier"] = ["a", "b"]
    faults = profile_faults(info, "0.97", {"sha256", "md5"}, {"sha256"})
    assert "bag-info.txt has no Source-Organization" in faults
    assert "bag-info.txt repeats External-Identifier" in faults
    assert "no manifest-sha512.txt" in faults and "manifest-md5.txt is not allowed" in faults
    assert "no tagmanifest-sha512.txt" in faults
    assert any(f.startswith("BagIt-Version 0.97") for f in faults)


def _contents(note: str) -> PackContents:
    fix = Fixity(SHA, "0" * 128, 10)
    return PackContents(
        debt_id="D-1",
        organization="<b>Acme</b> & Co",
        created_at="2026-01-01T00:00:00Z",
        manifest_key="debts/D-1/manifests/00000001.json",
        manifest_sha256=SHA,
        sequence=1,
        bucket="evidence",
        profile_id=PROFILE_ID,
        tool="getbill-archiver test",
        chain=[ChainEntry(1, "data/manifests/00000001.json", SHA, "2026-01-01T00:00:00Z", None)],
        followups=[],
        events=[EventEntry("data/events/00000001.json", "hold", None, "<i>ops</i>", "M-1", note)],
        purged=[
            Purged(
                "debts/D-1/records/F-1/a.json",
                "v1",
                "record",
                SHA,
                "debts/D-1/events/00000002.json",
                "2026-01-02T00:00:00Z",
                "F-1",
            )
        ],
        files={"data/manifests/00000001.json": fix, "data/VERIFY.txt": fix},
        dossier_path=None,
        dossier_note="No dossier is stored for manifest 1",
        debt_path="data/debt/x.json",
        debt_fields=record_fields({"id": "D-1", "lastname": "<script>x</script>"}),
    )


def test_the_page_escapes_everything_from_records_and_events() -> None:
    page = render_index(_contents('"><script>alert(1)</script>'))
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co" in page and "&lt;i&gt;ops&lt;/i&gt;" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert 'href="events/00000002.json"' in page  # the purged record's deletion record
    assert "No dossier is stored for manifest 1" in page
    assert "default-src 'none'" in page


def test_verify_txt_lists_purged_objects_and_the_missing_dossier() -> None:
    text = render_verify(_contents("reason"))
    assert "debts/D-1/records/F-1/a.json" in text and "debts/D-1/events/00000002.json" in text
    assert "NOTE: No dossier is stored for manifest 1" in text
    assert "sha256sum -c manifest-sha256.txt" in text and "openssl ts -verify" in text


def test_a_zip_naming_a_path_outside_its_folder_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("pack/bagit.txt", "BagIt-Version: 1.0\n")
        zf.writestr("pack/../../escape.txt", "x")
    with pytest.raises(IntegrityError, match="outside"):
        extract_zip(bad, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a/bagit.txt", "x")
        zf.writestr("b/bagit.txt", "x")
    with pytest.raises(IntegrityError, match="one folder"):
        extract_zip(two, tmp_path / "out2")
