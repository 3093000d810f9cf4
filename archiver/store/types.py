"""Value types of the object store: Object Lock settings and what S3 says about objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 100 * MiB
"""Files larger than this are uploaded in parts (where AWS advises multipart uploads)."""

__all__ = [
    "MODES",
    "Lock",
    "Mode",
    "MultipartUpload",
    "ObjectInfo",
    "StoredObject",
    "VersionInfo",
    "whole_second_utc",
]

Mode = Literal["GOVERNANCE", "COMPLIANCE"]
MODES: tuple[Mode, ...] = ("GOVERNANCE", "COMPLIANCE")


def whole_second_utc(value: datetime) -> datetime:
    """``value`` in UTC, rounded up to a whole second.

    S3 keeps retain-until dates to the second; rounding up (never down, which would shorten
    the lock) makes a date read back equal the date written, so reruns see nothing to extend.
    """
    if value.tzinfo is None:
        raise ValueError(f"retain_until must be timezone-aware (UTC), got naive {value!r}")
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


@dataclass(frozen=True)
class Lock:
    """An Object Lock: mode, retain-until date (aware, normalised to UTC) and legal hold."""

    mode: Mode
    retain_until: datetime
    legal_hold: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Object Lock mode must be one of {MODES}, got {self.mode!r}")
        object.__setattr__(self, "retain_until", whole_second_utc(self.retain_until))


@dataclass(frozen=True)
class StoredObject:
    """The result of a put. ``created`` is False when the key already held the same SHA-256."""

    key: str
    version_id: str | None
    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD says about one object version. ``sha256`` is the full-object hex digest."""

    key: str
    version_id: str | None
    size: int
    sha256: str | None
    content_type: str | None
    lock_mode: Mode | None
    retain_until: datetime | None
    legal_hold: bool
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_head(cls, key: str, resp: Mapping[str, Any]) -> ObjectInfo:
        """From a HeadObject response."""
        meta = dict(resp.get("Metadata") or {})
        until = resp.get("ObjectLockRetainUntilDate")
        return cls(
            key=key,
            version_id=resp.get("VersionId"),
            size=int(resp.get("ContentLength", 0)),
            sha256=meta.get("sha256"),
            content_type=resp.get("ContentType"),
            lock_mode=cast("Mode | None", resp.get("ObjectLockMode")),
            retain_until=until.astimezone(UTC) if until else None,
            legal_hold=resp.get("ObjectLockLegalHoldStatus") == "ON",
            metadata=meta,
        )


@dataclass(frozen=True)
class VersionInfo:
    """One entry of ListObjectVersions (an object version or a delete marker)."""

    key: str
    version_id: str | None
    size: int
    is_latest: bool
    last_modified: datetime | None
    is_delete_marker: bool

    @classmethod
    def from_listing(cls, item: Mapping[str, Any], *, delete_marker: bool) -> VersionInfo:
        """From one ``Versions`` (or, with ``delete_marker``, ``DeleteMarkers``) entry of a
        ListObjectVersions page."""
        return cls(
            key=item["Key"],
            version_id=item.get("VersionId"),
            size=0 if delete_marker else int(item.get("Size", 0)),
            is_latest=bool(item.get("IsLatest")),
            last_modified=item.get("LastModified"),
            is_delete_marker=delete_marker,
        )


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None  # aware, UTC

    @classmethod
    def from_listing(cls, item: Mapping[str, Any]) -> MultipartUpload:
        """From one ``Uploads`` entry of a ListMultipartUploads page."""
        initiated = item.get("Initiated")
        return cls(
            key=item["Key"],
            upload_id=item["UploadId"],
            initiated=initiated.astimezone(UTC) if initiated else None,
        )
