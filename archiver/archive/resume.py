"""What earlier runs left in S3, so that a rerun downloads nothing twice.

Resume state is a concern of its own: the archive pipeline asks this module for the latest
manifest of a debt and for media an interrupted run stored before it could write a manifest.
The metadata written with each medium (:func:`media_metadata`) is what makes such an orphan
recognisable: same followup, same kind, same source URL (without its query string).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from archiver.common.schemas import validate
from archiver.common.time import iso
from archiver.errors import IntegrityError
from archiver.getbill.records import MediaRef
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock


class KeyLister(Protocol):
    def list_keys(self, prefix: str) -> Iterator[str]: ...


def manifest_keys(store: KeyLister, debt_id: str) -> list[tuple[int, str]]:
    """``(sequence, key)`` of every manifest stored for a debt, oldest first."""
    found = []
    for key in store.list_keys(f"{keys.debt_prefix(debt_id)}manifests/"):
        parsed = keys.parse_manifest_key(key)
        if parsed and parsed[0] == debt_id:
            found.append((parsed[1], key))
    return sorted(found)


def debts_in_bucket(store: ObjectStore) -> list[str]:
    """Every debt id that has at least one manifest."""
    found = set()
    for key in store.list_keys("debts/"):
        parsed = keys.parse_manifest_key(key)
        if parsed:
            found.add(parsed[0])
    return sorted(found)


def _history(store: ObjectStore, debt_id: str) -> tuple[list[str], list[tuple[int, str]]]:
    """One LIST of every version under ``manifests/``: what is wrong with the history (see
    :func:`manifest_history_problems`), and ``(sequence, key)`` of the manifests in place."""
    versions: dict[str, list[bool]] = {}
    for v in store.list_versions(f"{keys.debt_prefix(debt_id)}manifests/"):
        versions.setdefault(v.key, []).append(v.is_delete_marker)
    problems, in_place = [], []
    for key, markers in sorted(versions.items()):
        if any(markers):
            problems.append(f"{key} has a delete marker (someone deleted the manifest)")
        if markers.count(False) > 1:
            problems.append(f"{key} has {markers.count(False)} versions (it was rewritten)")
        parsed = keys.parse_manifest_key(key)
        if parsed and parsed[0] == debt_id and not all(markers):
            in_place.append((parsed[1], key))
    return problems, sorted(in_place)


def manifest_history_problems(store: ObjectStore, debt_id: str) -> list[str]:
    """What makes a debt's manifest chain unsafe to extend: a manifest key whose current
    version is a delete marker, or that holds more than one version (it was rewritten).

    Object Lock keeps every version, but a plain DELETE adds a delete marker that hides the
    newest manifest; without this check the next run would write that sequence again.
    """
    return _history(store, debt_id)[0]


def latest_manifest(store: ObjectStore, debt_id: str) -> tuple[str, bytes, dict[str, Any]] | None:
    """The newest manifest of a debt in S3: ``(key, bytes, parsed)`` or None.

    Raises :class:`IntegrityError` when the chain has been tampered with (see
    :func:`manifest_history_problems`): a run must never build on, or re-create, a hidden link.
    """
    problems, stored = _history(store, debt_id)
    if problems:
        raise IntegrityError(
            "the manifest chain of this debt was tampered with; nothing written. "
            "Run `archiver verify` and investigate: " + "; ".join(problems),
            problems=problems,
            debt_id=debt_id,
        )
    if not stored:
        return None
    best = stored[-1]
    data = store.read_bytes(best[1])
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(
            f"the latest manifest is not JSON ({exc}); run `archiver verify`",
            key=best[1],
            debt_id=debt_id,
        ) from None
    invalid = validate("manifest", manifest)
    if invalid:
        raise IntegrityError(
            "the latest manifest does not match its schema; nothing written. Run "
            f"`archiver verify`: {invalid[0]}",
            problems=[str(e) for e in invalid],
            key=best[1],
            debt_id=debt_id,
        )
    return best[1], data, manifest


def meta_value(text: str) -> str:
    """S3 user metadata must be ASCII: percent-encode anything else."""
    return quote(text, safe=":/@-._~!$&'()*+,;=")


def media_metadata(
    *,
    ref: MediaRef,
    source: str,
    sniffed_type: str,
    declared_type: str | None,
    downloaded_at: datetime,
    url_expires_at: datetime | None,
) -> dict[str, str]:
    """The S3 user metadata stored with a medium (read back by :class:`StoredMedia`)."""
    return {
        "source": meta_value(source),
        "followup-id": ref.followup_id,
        "kind": ref.kind,
        "sniffed-type": sniffed_type,
        "declared-type": meta_value(declared_type or ""),
        "downloaded-at": iso(downloaded_at),
        "url-expires-at": iso(url_expires_at) if url_expires_at else "",
    }


class StoredMedia:
    """The media objects already in S3 for one debt, listed once, looked up per medium."""

    def __init__(self, store: ObjectStore, debt_id: str) -> None:
        self.store = store
        self._by_followup_kind: dict[tuple[str, str], list[str]] | None = None
        self._prefix = f"{keys.debt_prefix(debt_id)}media/"

    def _index(self) -> dict[tuple[str, str], list[str]]:
        if self._by_followup_kind is None:  # one LIST, only if some medium needs it
            found: dict[tuple[str, str], list[str]] = {}
            for key in self.store.list_keys(self._prefix):
                rest = key[len(self._prefix) :].split("/")
                if len(rest) == 2:
                    found.setdefault((rest[0], rest[1].split("-", 1)[0]), []).append(key)
            self._by_followup_kind = found
        return self._by_followup_kind

    def find(self, ref: MediaRef, lock: Lock, now: datetime) -> dict[str, Any] | None:
        """The manifest entry of an object stored earlier for this same medium, or None."""
        for key in self._index().get((ref.followup_id, ref.kind), []):
            info = self.store.head(key)
            if info is None or info.metadata.get("source") != meta_value(ref.source):
                continue
            meta = info.metadata
            return {
                "kind": ref.kind,
                "key": key,
                "version_id": info.version_id,
                "sha256": info.sha256,
                "size": info.size,
                "content_type": meta.get("declared-type") or None,
                "sniffed_type": meta.get("sniffed-type") or info.content_type or "",
                "source": ref.source,
                "downloaded_at": meta.get("downloaded-at") or iso(now),
                "url_expires_at": meta.get("url-expires-at") or None,
                "retain_until": iso(info.retain_until or lock.retain_until),
                "retention_mode": info.lock_mode or lock.mode,
                "legal_hold": bool(info.legal_hold),
            }
        return None
