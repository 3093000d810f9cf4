"""The entries of a manifest, typed: one followup (its record and media), one medium, the debt
record, one retention extension, the previous manifest's dossier.

Each entry is built in one place (``from_download``, ``from_head``, ``from_followup``,
``stored``) and serialised by ``to_json``; ``from_json`` reads one back from a stored manifest.
Reading is lossless: fields this version does not know, and the absence of optional fields,
survive a ``from_json`` / ``to_json`` round trip, so carrying an entry into the next manifest
never rewrites what an earlier one said. Adding a field is one edit here plus the schema
(``archiver/data/schemas/manifest.schema.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from archiver.common.time import iso

if TYPE_CHECKING:  # types only: reading a manifest needs neither HTTP nor S3 clients
    from archiver.getbill.records import Followup, MediaRef
    from archiver.media.download import DownloadedMedia
    from archiver.store.types import Lock, ObjectInfo

__all__ = [
    "DebtEntry",
    "DossierRef",
    "Extension",
    "FollowupEntry",
    "MediaEntry",
    "Purged",
    "followup_entries",
    "media_entries",
]

Purged = dict[str, Any]
"""What a deletion record says of a purged version: ``{"event_key", "at"}``."""

_OPTIONAL = {"optional": True}  # field metadata: written only when set


@dataclass
class _Entry:
    """Lossless JSON mapping shared by the entries (see the module docstring)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False, compare=False)
    """Fields of the stored JSON this version does not know, written back as they were."""
    read_keys: frozenset[str] | None = field(default=None, kw_only=True, repr=False, compare=False)
    """The known fields the stored JSON had (None: built by this version)."""

    _NESTED: ClassVar[dict[str, type[_Entry]]] = {}

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "read_keys")]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The entry a stored manifest holds (fields missing there stay missing)."""
        names = cls._names()
        values: dict[str, Any] = {name: data.get(name) for name in names}
        for name, kind in cls._NESTED.items():
            if isinstance(values[name], list):
                values[name] = [kind.from_json(v) for v in values[name]]
        return cls(
            **values,
            extra={k: v for k, v in data.items() if k not in names},
            read_keys=frozenset(k for k in names if k in data),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this entry, as the manifest stores it."""
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in ("extra", "read_keys"):
                continue
            value = getattr(self, f.name)
            if value is None:
                written = f.name in self.read_keys if self.read_keys is not None else None
                if written is False or (written is None and f.metadata.get("optional")):
                    continue
            if isinstance(value, list) and f.name in self._NESTED:
                value = [v.to_json() for v in value]
            out[f.name] = value
        return out

    def updated(self, **changes: Any) -> Self:
        """A copy with ``changes`` set (and written, even when None)."""
        keys = None if self.read_keys is None else self.read_keys | changes.keys()
        return dataclasses.replace(self, **changes, read_keys=keys)


@dataclass
class MediaEntry(_Entry):
    """One stored medium (recording, letter) of a followup."""

    kind: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    content_type: str | None  # as the media server declared it
    sniffed_type: str  # recognised from the bytes
    source: str  # the URL without its query string
    downloaded_at: str
    url_expires_at: str | None
    retain_until: str | None
    retention_mode: str | None
    legal_hold: bool
    duration_ms: int | None = field(default=None, metadata=_OPTIONAL)
    purged: Purged | None = field(default=None, metadata=_OPTIONAL)

    @classmethod
    def from_download(
        cls, ref: MediaRef, got: DownloadedMedia, *, key: str, version_id: str | None, lock: Lock
    ) -> MediaEntry:
        """The entry of a medium this run downloaded and stored under ``lock``."""
        return cls(
            kind=ref.kind,
            key=key,
            version_id=version_id,
            sha256=got.sha256,
            size=got.size,
            content_type=got.content_type,
            sniffed_type=got.sniffed_type,
            source=got.source,
            downloaded_at=iso(got.downloaded_at),
            url_expires_at=iso(got.url_expires_at) if got.url_expires_at else None,
            retain_until=iso(lock.retain_until),
            retention_mode=lock.mode,
            legal_hold=lock.legal_hold,
        )

    @classmethod
    def from_head(cls, ref: MediaRef, info: ObjectInfo, *, lock: Lock, now: datetime) -> MediaEntry:
        """The entry of a medium an interrupted run stored (read back from its S3 metadata,
        see :func:`archiver.archive.resume.media_metadata`); ``lock`` fills what S3 omits."""
        meta = info.metadata
        return cls(
            kind=ref.kind,
            key=info.key,
            version_id=info.version_id,
            sha256=cast(str, info.sha256),  # every medium is stored with its sha256
            size=info.size,
            content_type=meta.get("declared-type") or None,
            sniffed_type=meta.get("sniffed-type") or info.content_type or "",
            source=ref.source,
            downloaded_at=meta.get("downloaded-at") or iso(now),
            url_expires_at=meta.get("url-expires-at") or None,
            retain_until=iso(info.retain_until or lock.retain_until),
            retention_mode=info.lock_mode or lock.mode,
            legal_hold=bool(info.legal_hold),
        )


@dataclass
class FollowupEntry(_Entry):
    """One followup: its stored record and its media."""

    _NESTED: ClassVar[dict[str, type[_Entry]]] = {"media": MediaEntry}

    id: str
    type: str | None
    status: str | None
    call_date: str | None
    record_key: str
    record_sha256: str
    record_size: int
    record_version_id: str | None
    record_retain_until: str | None
    media: list[MediaEntry]
    record_purged: Purged | None = field(default=None, metadata=_OPTIONAL)
    upstream_missing_since: str | None = field(default=None, metadata=_OPTIONAL)

    @classmethod
    def from_followup(
        cls, followup: Followup, *, key: str, sha256: str, size: int, lock: Lock
    ) -> FollowupEntry:
        """The entry of a followup as the API lists it now (record not stored yet, no media)."""
        return cls(
            id=followup.id,
            type=followup.type,
            status=followup.status,
            call_date=iso(followup.call_date),
            record_key=key,
            record_sha256=sha256,
            record_size=size,
            record_version_id=None,
            record_retain_until=iso(lock.retain_until),
            media=[],
        )


@dataclass
class DebtEntry(_Entry):
    """The stored debt record."""

    key: str
    sha256: str
    size: int
    version_id: str | None
    retain_until: str | None
    retention_mode: str | None
    legal_hold: bool
    purged: Purged | None = field(default=None, metadata=_OPTIONAL)

    @classmethod
    def stored(
        cls, *, key: str, sha256: str, size: int, version_id: str | None, lock: Lock
    ) -> DebtEntry:
        """The entry of a debt record this run stored under ``lock``."""
        return cls(
            key=key,
            sha256=sha256,
            size=size,
            version_id=version_id,
            retain_until=iso(lock.retain_until),
            retention_mode=lock.mode,
            legal_hold=lock.legal_hold,
        )


@dataclass
class DossierRef(_Entry):
    """A stored dossier by the SHA-256 and size of its exact bytes: a manifest's
    ``previous_dossier`` and a receipt's ``dossier`` (which also gives the version id)."""

    key: str
    sha256: str
    size: int
    version_id: str | None = field(default=None, metadata=_OPTIONAL)

    def names(self, key: str, sha256: str, size: int) -> bool:
        """Whether this names the object ``key`` with exactly these bytes."""
        return (self.key, self.sha256, self.size) == (key, sha256, size)


@dataclass(frozen=True)
class Extension:
    """One object whose retain-until a run extended (``to`` exact, stored without microseconds)."""

    key: str
    version_id: str | None
    previous: str | None  # the retain-until before, as stored
    to: datetime

    def to_json(self) -> dict[str, Any]:
        """``{"key", "version_id", "from", "to"}`` as the manifest stores it."""
        return {
            "key": self.key,
            "version_id": self.version_id,
            "from": self.previous,
            "to": iso(self.to),
        }


def followup_entries(manifest: dict[str, Any] | None) -> dict[str, FollowupEntry]:
    """``followup_id -> entry`` of a manifest (empty for None)."""
    if not manifest:
        return {}
    return {f["id"]: FollowupEntry.from_json(f) for f in manifest.get("followups", [])}


def media_entries(manifest: dict[str, Any] | None) -> dict[tuple[str, str, str], MediaEntry]:
    """``(followup_id, kind, source) -> entry`` of every medium of a manifest, for reuse."""
    return {
        (fid, m.kind, m.source): m
        for fid, entry in followup_entries(manifest).items()
        for m in entry.media or []
    }
