"""Dossier receipts: what proves a stored dossier without rendering it again.

Right after the dossier of manifest N is stored, its receipt is written next to it
(``debts/{id}/dossiers/{N:08d}.receipt.json``, :func:`archiver.store.keys.dossier_receipt_key`)
with the same conditional, checksummed, locked PUT: canonical JSON (RFC 8785, format
``schemas/dossier_receipt.schema.json``) naming the dossier's key, the SHA-256 and size of its
exact bytes, the renderer version, and the key and SHA-256 of the manifest it renders.
Manifest N+1 names the same bytes again in ``previous_dossier``, so the hash chain of the
manifests covers the dossiers too. A re-render is no longer needed to trust a dossier, so a
newer reportlab or pikepdf (whose versions the colophon prints) does not make it look forged.

Pure functions: building, serialising and checking receipts.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from archiver import TOOL_NAME, __version__
from archiver.common.canonical import canonical_sha256
from archiver.common.schemas import validate
from archiver.common.time import iso
from archiver.manifest.entries import DossierRef

__all__ = ["SCHEMA_ID", "build_receipt", "read_receipt", "receipt_bytes"]

SCHEMA_ID = "getbill-archiver/dossier-receipt/v1"


def build_receipt(
    *,
    debt_id: str,
    sequence: int,
    dossier: DossierRef,
    renderer_version: str,
    manifest_key: str,
    manifest_sha256: str,
    created_at: datetime,
) -> dict[str, Any]:
    """The receipt of ``dossier``, the rendering of manifest ``sequence`` of ``debt_id``."""
    return {
        "schema": SCHEMA_ID,
        "debt_id": debt_id,
        "sequence": sequence,
        "dossier": dossier.to_json(),
        "renderer_version": renderer_version,
        "manifest": {"key": manifest_key, "sha256": manifest_sha256},
        "created_at": iso(created_at),
        "tool": {"name": TOOL_NAME, "version": __version__},
    }


def receipt_bytes(receipt: dict[str, Any]) -> tuple[bytes, str]:
    """Canonical bytes of a receipt and their SHA-256."""
    return canonical_sha256(receipt)


def read_receipt(
    data: bytes,
    *,
    debt_id: str,
    sequence: int,
    dossier_key: str,
    manifest_key: str,
    manifest_sha256: str,
) -> tuple[dict[str, Any] | None, DossierRef | None, list[str]]:
    """A stored receipt checked against what it must be the receipt of: ``(receipt, the
    dossier it names, faults)``. The dossier is None when the receipt cannot vouch for it
    (not JSON, not a receipt, or one of another debt, sequence, key or manifest); ``faults``
    says why, in sentences."""
    try:
        receipt = json.loads(data)
    except ValueError as exc:
        return None, None, [f"the receipt is not JSON: {exc}"]
    invalid = validate("dossier_receipt", receipt)
    if invalid:
        return None, None, [f"the receipt does not match its schema: {e}" for e in invalid]
    faults = []
    for label, found, expected in (
        ("debt", receipt["debt_id"], debt_id),
        ("sequence", receipt["sequence"], sequence),
        ("dossier key", receipt["dossier"]["key"], dossier_key),
        ("manifest key", receipt["manifest"]["key"], manifest_key),
        ("manifest SHA-256", receipt["manifest"]["sha256"], manifest_sha256),
    ):
        if found != expected:
            faults.append(f"the receipt names {label} {found}, not {expected}")
    if faults:
        return receipt, None, faults
    return receipt, DossierRef.from_json(receipt["dossier"]), []
