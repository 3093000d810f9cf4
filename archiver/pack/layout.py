"""Where each archived object goes in an evidence pack, and what it must hash to. Pure.

An object ``debts/{id}/X`` of the archive is ``data/X`` in the pack (``manifests/``,
``records/``, ``media/``, ``debt/``, ``events/`` and the timestamp tokens beside the
manifests keep the archive's own names), so a receiver can match every file to the key the
manifests name. The dossier of the pack's manifest is ``data/dossier.pdf`` and its receipt
``data/dossier.receipt.json``; ``data/index.html`` and ``data/VERIFY.txt`` are written by
the pack itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from archiver.manifest.document import all_objects
from archiver.store import keys

__all__ = [
    "DATA",
    "DOSSIER_PATH",
    "INDEX_PATH",
    "RECEIPT_PATH",
    "TSA_CA_PATH",
    "VERIFY_PATH",
    "PackItem",
    "Purged",
    "TOKEN_RE",
    "key_of_path",
    "manifest_items",
    "pack_path",
    "token_sequences",
]

DATA = "data"
DOSSIER_PATH = f"{DATA}/dossier.pdf"
RECEIPT_PATH = f"{DATA}/dossier.receipt.json"
INDEX_PATH = f"{DATA}/index.html"
VERIFY_PATH = f"{DATA}/VERIFY.txt"
TSA_CA_PATH = f"{DATA}/tsa-ca.pem"  # the TSA roots the archive trusts (ARCHIVER_TSA_CA)
# A timestamp token (or any other object) stored beside manifest N: ``manifests/N.<ext>``.
TOKEN_RE = re.compile(r"^(\d{8})\.(?!json$)[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class PackItem:
    """One object to copy: its key and version in the archive, its path in the pack, and
    what it must hash to (``sha256`` from the manifest, a receipt or the object's own
    checksum metadata; None: checked against nothing but itself)."""

    key: str
    path: str
    kind: str  # manifest, record, media, debt, event, dossier, receipt, token
    version_id: str | None = None
    sha256: str | None = None
    size: int | None = None
    followup_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Purged:
    """An object the pack's manifest names that a purge deleted: shown by its deletion
    record (``event_key``, an event in ``data/events/``) instead of its bytes."""

    key: str
    version_id: str | None
    kind: str
    sha256: str | None
    event_key: str
    at: str | None
    followup_id: str | None = None


def pack_path(debt_id: str, key: str) -> str:
    """``debts/{id}/media/f1/audio-ab.mp3`` -> ``data/media/f1/audio-ab.mp3``. Raises
    ValueError for a key outside the debt (a manifest naming one is not packed)."""
    prefix = keys.debt_prefix(debt_id)
    rest = key[len(prefix) :] if key.startswith(prefix) else ""
    parts = rest.split("/")
    if not rest or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"key {key!r} is not an object of debt {debt_id}")
    return f"{DATA}/{rest}"


def key_of_path(debt_id: str, path: str) -> str | None:
    """The archive key a pack path mirrors (None for the pack's own files and the dossier)."""
    if not path.startswith(f"{DATA}/") or path in (DOSSIER_PATH, RECEIPT_PATH):
        return None
    if path in (INDEX_PATH, VERIFY_PATH, TSA_CA_PATH):
        return None
    return keys.debt_prefix(debt_id) + path[len(DATA) + 1 :]


def manifest_items(
    manifest: Mapping[str, Any],
    purged: Mapping[tuple[str, str | None], Mapping[str, Any]] | None = None,
) -> tuple[list[PackItem], list[Purged]]:
    """The objects ``manifest`` names (debt record, records, media) as pack items, and those
    a deletion record says were purged: marked ``purged`` in the manifest, or named by
    ``purged`` (``(key, version_id) -> {"event_key", "at"}`` of the outcomes recorded since,
    as :func:`archiver.retention.events.purged_versions` gives them)."""
    debt_id = str(manifest["debt_id"])
    items: list[PackItem] = []
    gone: list[Purged] = []
    seen: set[str] = set()
    for obj in all_objects(dict(manifest)):
        key, vid = obj["key"], obj.get("version_id")
        mark = obj.get("purged") or (purged or {}).get((key, vid))
        if mark:
            gone.append(
                Purged(
                    key=key,
                    version_id=vid,
                    kind=obj["kind"],
                    sha256=obj.get("sha256"),
                    event_key=str(mark.get("event_key")),
                    at=mark.get("at"),
                    followup_id=obj.get("followup_id"),
                )
            )
            continue
        if key in seen:  # the same bytes named twice (one record for two entries)
            continue
        seen.add(key)
        items.append(
            PackItem(
                key=key,
                path=pack_path(debt_id, key),
                kind=obj["kind"],
                version_id=vid,
                sha256=obj.get("sha256"),
                size=obj.get("size"),
                followup_id=obj.get("followup_id"),
            )
        )
    return items, gone


def token_sequences(names: Iterable[str]) -> dict[int, list[str]]:
    """File names beside the manifests (``00000003.tsr``) by the manifest sequence they
    belong to; manifest JSON files and other names are left out."""
    found: dict[int, list[str]] = {}
    for name in names:
        m = TOKEN_RE.match(name)
        if m:
            found.setdefault(int(m.group(1)), []).append(name)
    return {seq: sorted(v) for seq, v in sorted(found.items())}
