"""Key naming and safe ids (pure)."""

from __future__ import annotations

import pytest

from archiver.common.ids import check_id
from archiver.errors import UnsafeIdError
from archiver.store import keys


@pytest.mark.parametrize(
    "bad",
    ["", "..", "../etc", "a/b", "a\\b", "a..b", "x" * 129, "ab\x00c", "a\nb", " a", "é", None, 5],
)
def test_unsafe_ids_are_refused(bad: object) -> None:
    with pytest.raises(UnsafeIdError):
        check_id(bad)


@pytest.mark.parametrize("good", ["xyz789ghi012", "D-1042", "a.b_c~d", "x" * 128])
def test_safe_ids_pass(good: str) -> None:
    assert check_id(good) == good


def test_every_key_stays_under_its_debt() -> None:
    sha = "ab" * 32
    assert keys.record_key("d1", "f1", sha) == f"debts/d1/records/f1/{sha}.json"
    assert keys.media_key("d1", "f1", "audio", sha, "mp3") == f"debts/d1/media/f1/audio-{sha}.mp3"
    assert keys.debt_record_key("d1", sha) == f"debts/d1/debt/{sha}.json"
    assert keys.manifest_key("d1", 3) == "debts/d1/manifests/00000003.json"
    assert keys.dossier_key("d1", 12) == "debts/d1/dossiers/00000012.pdf"
    with pytest.raises(UnsafeIdError):
        keys.record_key("d1", "../d2", sha)
    with pytest.raises(ValueError):
        keys.media_key("d1", "f1", "video", sha, "mp4")


def test_parse_manifest_key() -> None:
    assert keys.parse_manifest_key("debts/d1/manifests/00000003.json") == ("d1", 3)
    assert keys.parse_manifest_key("debts/d1/manifests/3.json") is None
    assert keys.parse_manifest_key("debts/d1/records/x.json") is None
