"""Value types of media downloads: settings, the result of a download, progress events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from archiver.errors import ConfigError
from archiver.getbill.records import MediaRef

__all__ = [
    "DEFAULT_MAX_MEDIA_BYTES",
    "DownloadEvent",
    "DownloadSettings",
    "DownloadedMedia",
    "EventKind",
    "RefreshMedia",
    "Resolver",
]

DEFAULT_MAX_MEDIA_BYTES = 4 * 1024**3
"""The largest media file fetched (4 GiB): hours of call audio, far more than any letter."""

RefreshMedia = Callable[[MediaRef], MediaRef]
"""Returns a freshly signed copy of a ref (same debt, followup and kind)."""


class Resolver(Protocol):
    """Turns a host name into the addresses to connect to (the system's: ``getaddrinfo``)."""

    def resolve(self, host: str, port: int) -> list[str]:
        """The IP addresses of ``host``, best first; raises :class:`OSError` if it has none."""
        ...


@dataclass(frozen=True)
class DownloadSettings:
    """Tuning of the media downloader. Defaults suit S3 presigned URLs that live one hour."""

    #: fnmatch-style host patterns (case-insensitive). ``*.x.com`` matches ``a.x.com`` and
    #: ``a.b.x.com`` but NOT ``x.com`` itself: list the apex explicitly if it serves media.
    allowed_hosts: tuple[str, ...] = ("*.amazonaws.com", "*.getbill.io")
    #: bytes read, hashed and written per step; bounds the memory a download uses.
    chunk_size: int = 1024 * 1024
    #: failed tries per media for content / transport errors (the first try counts).
    max_attempts: int = 3
    #: URL refreshes per media (``GET /followups/{id}``), proactive ones included.
    max_refreshes: int = 2
    #: refresh before the request when the URL expires within this many seconds.
    expiry_margin_seconds: float = 30
    #: httpx connect / read / write / pool timeout, per operation (not for the whole body).
    timeout_seconds: float = 60
    #: redirects followed (each target checked against the allowlist).
    max_redirects: int = 3
    #: where temp files go (default: the system temp dir). Same filesystem as the caller's
    #: destination makes the final move cheap.
    temp_dir: Path | None = None
    #: first backoff delay; doubles on each retry, capped by ``backoff_max_seconds``; each
    #: delay is drawn uniformly in [delay/2, delay] so parallel workers do not retry in step.
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    #: the most bytes one media body may have (``ARCHIVER_MAX_MEDIA_BYTES``, default 4 GiB),
    #: counted as sent on the wire: a larger Content-Length is refused before reading, a body
    #: without one is cut off once it passes the limit. Never retried.
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    #: resolves media host names for the address check of
    #: :func:`archiver.media.transport.media_client` (None: the system resolver).
    resolver: Resolver | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.max_media_bytes < 1:
            raise ConfigError(f"max_media_bytes must be at least 1, got {self.max_media_bytes}")


@dataclass(frozen=True)
class DownloadedMedia:
    """One media file fetched and checked. ``path`` is a temp file the caller moves or deletes."""

    ref: MediaRef  # the ref finally used (after refreshes)
    path: Path
    sha256: str
    size: int
    content_type: str | None  # as declared by the server; may lie
    sniffed_type: str  # from the first bytes; what the archive trusts
    extension: str
    downloaded_at: datetime  # aware, UTC
    url_expires_at: datetime | None
    source: str  # the URL without query string, safe to store
    attempts: int  # HTTP tries made, including those that ended in an expired URL
    refreshes: int


EventKind = Literal["started", "progress", "retry", "refreshed", "done"]


@dataclass(frozen=True)
class DownloadEvent:
    """Progress of one download, for a CLI progress bar or a log line. Never holds a secret.

    ``progress`` events carry ``delta`` (bytes in this chunk), ``bytes`` (bytes so far in this
    attempt) and ``total`` (Content-Length, if declared). A ``retry`` means bytes already
    reported for the failed attempt will be downloaded again. ``done`` carries the final size.
    """

    kind: EventKind
    debt_id: str
    followup_id: str
    media_kind: str
    source: str
    attempt: int
    bytes: int = 0
    delta: int = 0
    total: int | None = None
    reason: str | None = None
    delay_seconds: float | None = None
