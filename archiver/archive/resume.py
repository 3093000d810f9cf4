"""What earlier runs left in S3, so that a rerun downloads nothing twice.

Resume state is a concern of its own: the archive pipeline asks this module for media an
interrupted run stored before it could write a manifest, and for versions a purge deleted.
The metadata written with each medium (:func:`media_metadata`) is what makes such an orphan
recognisable: same followup, same kind, same source URL (without its query string). The
latest manifest comes from :func:`archiver.manifest.reader.latest_manifest`.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from archiver.common.time import iso
from archiver.getbill.records import MediaRef
from archiver.manifest.entries import MediaEntry
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock


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

    def find(self, ref: MediaRef, lock: Lock, now: datetime) -> MediaEntry | None:
        """The manifest entry of an object stored earlier for this same medium, or None."""
        for key in self._index().get((ref.followup_id, ref.kind), []):
            info = self.store.head(key)
            if info is None or info.metadata.get("source") != meta_value(ref.source):
                continue
            return MediaEntry.from_head(ref, info, lock=lock, now=now)
        return None
