"""Dossier receipts and ``previous_dossier``: building, reading, the schemas (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from fixtures.dossier_sample import make_archive

from archiver.common.canonical import canonical_json
from archiver.common.schemas import validate
from archiver.manifest.entries import DossierRef
from archiver.manifest.receipt import SCHEMA_ID, build_receipt, read_receipt, receipt_bytes
from archiver.store import keys

SHA = "ab" * 32
MSHA = "cd" * 32


def _receipt() -> dict:
    return build_receipt(
        debt_id="d1",
        sequence=2,
        dossier=DossierRef(keys.dossier_key("d1", 2), SHA, 1234, "v-1"),
        renderer_version="1.3.0",
        manifest_key=keys.manifest_key("d1", 2),
        manifest_sha256=MSHA,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def _read(data: bytes, **changes: object) -> tuple:
    expected: dict = {
        "debt_id": "d1",
        "sequence": 2,
        "dossier_key": keys.dossier_key("d1", 2),
        "manifest_key": keys.manifest_key("d1", 2),
        "manifest_sha256": MSHA,
        **changes,
    }
    return read_receipt(data, **expected)


def test_receipt_key_sits_beside_the_dossier() -> None:
    assert keys.dossier_receipt_key("d1", 12) == "debts/d1/dossiers/00000012.receipt.json"
    assert keys.DOSSIER_KEY_RE.match(keys.dossier_receipt_key("d1", 12)) is None


def test_a_receipt_is_canonical_schema_valid_and_reads_back() -> None:
    receipt = _receipt()
    assert receipt["schema"] == SCHEMA_ID
    assert validate("dossier_receipt", receipt) == []
    data, _ = receipt_bytes(receipt)
    assert data == canonical_json(receipt)
    read, ref, faults = _read(data)
    assert faults == [] and read == receipt
    assert ref == DossierRef(keys.dossier_key("d1", 2), SHA, 1234, "v-1")
    assert ref is not None and ref.names(keys.dossier_key("d1", 2), SHA, 1234)
    assert not ref.names(keys.dossier_key("d1", 2), SHA, 1235)


def test_a_receipt_of_another_manifest_vouches_for_nothing() -> None:
    data, _ = receipt_bytes(_receipt())
    _, ref, faults = _read(data, manifest_sha256="ef" * 32)
    assert ref is None and faults == [f"the receipt names manifest SHA-256 {MSHA}, not {'ef' * 32}"]
    _, ref, faults = _read(data, sequence=3, dossier_key=keys.dossier_key("d1", 3))
    assert ref is None and len(faults) == 2


def test_unreadable_receipts_are_faults_not_errors() -> None:
    _, ref, faults = _read(b"not json")
    assert ref is None and len(faults) == 1 and faults[0].startswith("the receipt is not JSON")
    broken = {**_receipt(), "dossier": {"key": "k"}}
    _, ref, faults = _read(canonical_json(broken))
    assert ref is None and faults and faults[0].startswith("the receipt does not match")


def test_previous_dossier_is_optional_in_the_manifest_schema() -> None:
    manifest = make_archive(2).manifest
    assert "previous_dossier" not in manifest and validate("manifest", manifest) == []
    ref = DossierRef("debts/d1/dossiers/00000001.pdf", SHA, 10)
    assert ref.to_json() == {"key": "debts/d1/dossiers/00000001.pdf", "sha256": SHA, "size": 10}
    assert validate("manifest", {**manifest, "previous_dossier": ref.to_json()}) == []
    assert validate("manifest", {**manifest, "previous_dossier": {"key": "k", "sha256": SHA}})
