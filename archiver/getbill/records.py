"""Typed views of getbill API records. Each keeps the raw record exactly as received.

Parsing is pure: :func:`Followup.from_record` / :func:`Debt.from_record` take a dict already
validated against ``schemas/followup.schema.json`` / ``debt.schema.json`` (see ``schemas.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from archiver.common.ids import check_id
from archiver.common.redact import strip_query, strip_signed_urls
from archiver.common.time import parse_iso
from archiver.errors import ValidationError

MediaKind = Literal["audio", "pdf"]
MEDIA_FIELDS: dict[MediaKind, str] = {"audio": "audio_url", "pdf": "pdf_url"}
# Fields that change every time the API signs the media URLs again. They are not part of the
# stored record (else every listing would look like a change); the manifest keeps them per
# media entry as ``url_expires_at``.
VOLATILE_FIELDS = ("media_urls_expire_at",)


@dataclass(frozen=True)
class MediaRef:
    """One signed media URL of a followup. ``url`` is secret: never log it, use ``source``."""

    debt_id: str
    followup_id: str
    kind: MediaKind
    url: str = field(repr=False)
    expires_at: datetime | None

    @property
    def source(self) -> str:
        """The URL without its query string: safe to log and store."""
        return strip_query(self.url) or ""


@dataclass(frozen=True)
class Followup:
    """A getbill followup (call, email, sms, letter, ...)."""

    id: str
    debt_id: str
    type: str | None
    status: str | None
    call_date: datetime | None
    processed_at: datetime | None
    media_urls_expire_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> Followup:
        """Build from one API record; raises :class:`ValidationError` naming the field."""
        fid = raw.get("id")
        try:
            check_id(fid, what="followup id")
            check_id(raw.get("debt_id"), what="debt_id", followup_id=fid)
        except ValidationError:
            raise
        dates: dict[str, datetime | None] = {}
        for name in ("call_date", "processed_at", "media_urls_expire_at"):
            try:
                dates[name] = parse_iso(raw.get(name), naive_is_utc=False)
            except ValueError as exc:
                raise ValidationError(
                    f"field {name!r}: {exc}", followup_id=fid, field=name
                ) from None
        return cls(
            id=raw["id"],
            debt_id=raw["debt_id"],
            type=raw.get("type"),
            status=raw.get("status"),
            raw=raw,
            **dates,
        )

    def media(self) -> list[MediaRef]:
        """The signed media URLs present on this record (audio first, then pdf)."""
        refs = []
        for kind, name in MEDIA_FIELDS.items():
            url = self.raw.get(name)
            if isinstance(url, str) and url:
                refs.append(MediaRef(self.debt_id, self.id, kind, url, self.media_urls_expire_at))
        return refs

    def sanitized_record(self) -> dict[str, Any]:
        """The record as received, except the query strings of signed media URLs and the
        :data:`VOLATILE_FIELDS` that change with every signing."""
        out = {k: v for k, v in self.raw.items() if k not in VOLATILE_FIELDS}
        for name in MEDIA_FIELDS.values():
            if isinstance(out.get(name), str) and out[name]:
                out[name] = strip_query(out[name])
        return strip_signed_urls(out)


@dataclass(frozen=True)
class Debt:
    """A getbill debt. Holds personal data: only ever written into the archive itself."""

    id: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> Debt:
        return cls(id=check_id(raw.get("id"), what="debt id"), raw=raw)

    def sanitized_record(self) -> dict[str, Any]:
        """The record as received, except the query strings of signed URLs (a signed
        ``payment_link`` changes with every read and is a credential)."""
        return strip_signed_urls(self.raw)
