"""S3 key naming: every key of a debt lives under ``debts/{debt_id}/``. Pure functions."""

from __future__ import annotations

import re

from archiver.common.ids import check_id

MEDIA_KINDS = ("audio", "pdf")


def debt_prefix(debt_id: str) -> str:
    return f"debts/{check_id(debt_id, what='debt id')}/"


def record_key(debt_id: str, followup_id: str, record_sha256: str) -> str:
    fid = check_id(followup_id, what="followup id", debt_id=debt_id)
    return f"{debt_prefix(debt_id)}records/{fid}/{record_sha256}.json"


def media_key(debt_id: str, followup_id: str, kind: str, sha256: str, ext: str) -> str:
    if kind not in MEDIA_KINDS:
        raise ValueError(f"unknown media kind {kind!r}")
    fid = check_id(followup_id, what="followup id", debt_id=debt_id)
    return f"{debt_prefix(debt_id)}media/{fid}/{kind}-{sha256}.{ext}"


def debt_record_key(debt_id: str, sha256: str) -> str:
    return f"{debt_prefix(debt_id)}debt/{sha256}.json"


def manifest_key(debt_id: str, sequence: int) -> str:
    return f"{debt_prefix(debt_id)}manifests/{sequence:08d}.json"


def manifest_token_key(debt_id: str, sequence: int) -> str:
    """``debts/{id}/manifests/{sequence:08d}.tsr``: the RFC 3161 time-stamp response a TSA gave
    for the SHA-256 of manifest ``sequence``, stored beside it (DER, as ``openssl ts`` reads)."""
    return f"{debt_prefix(debt_id)}manifests/{sequence:08d}.tsr"


def dossier_key(debt_id: str, sequence: int) -> str:
    return f"{debt_prefix(debt_id)}dossiers/{sequence:08d}.pdf"


def dossier_receipt_key(debt_id: str, sequence: int) -> str:
    """``debts/{id}/dossiers/{sequence:08d}.receipt.json``: the SHA-256 and size of the dossier
    of manifest ``sequence``, written right after it (see :mod:`archiver.manifest.receipt`)."""
    return f"{debt_prefix(debt_id)}dossiers/{sequence:08d}.receipt.json"


def event_key(debt_id: str, sequence: int) -> str:
    """``debts/{id}/events/{sequence:08d}.json``: the number alone names the event, so that a
    conditional create claims it (the action is inside the event)."""
    if sequence < 1:
        raise ValueError(f"event sequence numbers start at 1, got {sequence}")
    return f"{debt_prefix(debt_id)}events/{sequence:08d}.json"


_MANIFEST_RE = re.compile(r"^debts/([^/]+)/manifests/(\d{8})\.json$")
_MANIFEST_TOKEN_RE = re.compile(r"^debts/([^/]+)/manifests/(\d{8})\.tsr$")
# debts/{id}/events/{sequence:08d}.json, or as written by earlier versions
# debts/{id}/events/{timestamp}-{action}.json (timestamp like 20261128T101500.123456Z)
# -> groups: debt id, sequence or timestamp, action (None for a sequence key)
EVENT_KEY_RE = re.compile(
    r"^debts/([^/]+)/events/(\d{8,}|\d{8}T\d{6}(?:\.\d{1,6})?Z)(?:-([A-Za-z_-]+))?\.json$"
)
# debts/{id}/dossiers/{sequence:08d}.pdf -> groups: debt id, sequence
DOSSIER_KEY_RE = re.compile(r"^debts/([^/]+)/dossiers/(\d{8})\.pdf$")


def parse_manifest_key(key: str) -> tuple[str, int] | None:
    """``debts/X/manifests/00000003.json`` -> ``("X", 3)``; anything else -> None."""
    m = _MANIFEST_RE.match(key)
    return (m.group(1), int(m.group(2))) if m else None


def parse_manifest_token_key(key: str) -> tuple[str, int] | None:
    """``debts/X/manifests/00000003.tsr`` -> ``("X", 3)``; anything else -> None."""
    m = _MANIFEST_TOKEN_RE.match(key)
    return (m.group(1), int(m.group(2))) if m else None
