"""What a pack holds, as its two readable files show it: a plain description built from the
pack's manifest, its copied records and events, and the fixity of every file. Pure.

Everything taken from records and events is untrusted text: it is kept as data here and
escaped where it is written (:mod:`archiver.pack.index`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.common.redact import strip_signed_urls
from archiver.common.time import parse_iso_lenient
from archiver.pack.copy import Fixity
from archiver.pack.layout import Purged

__all__ = [
    "ChainEntry",
    "EventEntry",
    "FollowupEntryView",
    "MediaFile",
    "PackContents",
    "followup_views",
]


@dataclass(frozen=True)
class ChainEntry:
    """One manifest of the chain, as copied into the pack."""

    sequence: int
    path: str
    sha256: str
    created_at: str | None
    previous_sha256: str | None
    tokens: list[str] = field(default_factory=list)  # paths of its timestamp tokens


@dataclass(frozen=True)
class EventEntry:
    """One event of the debt, as copied into the pack."""

    path: str
    action: str
    at: str | None
    actor: str | None
    matter: str | None
    reason: str | None


@dataclass(frozen=True)
class MediaFile:
    """One medium of a followup: its file in the pack, or the deletion record that replaced it."""

    kind: str
    path: str | None
    size: int | None
    sha256: str | None
    purged: Purged | None = None


@dataclass(frozen=True)
class FollowupEntryView:
    """One followup of the pack's manifest, joined with its copied record."""

    id: str
    when: datetime | None
    type: str
    status: str
    direction: str | None
    duration_ms: int | None
    summary: str | None
    record_path: str | None
    record_sha256: str | None
    record_purged: Purged | None
    media: list[MediaFile]


@dataclass
class PackContents:
    """Everything index.html and VERIFY.txt say."""

    debt_id: str
    organization: str
    created_at: str
    manifest_key: str
    manifest_sha256: str
    sequence: int
    bucket: str | None
    profile_id: str
    tool: str
    chain: list[ChainEntry]
    followups: list[FollowupEntryView]
    events: list[EventEntry]
    purged: list[Purged]
    files: dict[str, Fixity]  # every payload file but index.html (which lists them)
    dossier_path: str | None  # None: no dossier stored for the manifest
    dossier_note: str | None = None
    debt_path: str | None = None
    debt_fields: list[tuple[str, str]] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return strip_signed_urls(value)
    return str(value)


def record_fields(record: Any, limit: int = 40) -> list[tuple[str, str]]:
    """The top-level fields of a record as ``(name, value)`` text, values cut at 200
    characters (the full record is the file beside)."""
    if not isinstance(record, dict):
        return [("record", "not a JSON object")]
    out = []
    for name in sorted(record)[:limit]:
        value = strip_signed_urls(record[name])
        text = value if isinstance(value, str) else _json_text(value)
        out.append((str(name), text if len(text) <= 200 else text[:199] + "…"))
    return out


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def followup_views(
    manifest: Mapping[str, Any],
    records: Mapping[str, Any],
    paths: Mapping[str, str],
    files: Mapping[str, Fixity],
    purged: list[Purged],
) -> list[FollowupEntryView]:
    """The followups of ``manifest`` in time order (undated last, ids break ties):
    ``records`` maps followup id -> its parsed record, ``paths`` key -> pack path."""
    gone = {(p.key, p.version_id): p for p in purged}
    out = []
    for entry in manifest.get("followups") or []:
        fid = str(entry.get("id"))
        rec = records.get(fid)
        rec = rec if isinstance(rec, dict) else {}
        rkey = str(entry.get("record_key", ""))
        rpath = paths.get(rkey)
        media = []
        for m in sorted(entry.get("media") or [], key=lambda m: (m["kind"], m["key"])):
            mpath = paths.get(m["key"])
            media.append(
                MediaFile(
                    kind=str(m.get("kind")),
                    path=mpath,
                    size=m.get("size"),
                    sha256=m.get("sha256"),
                    purged=gone.get((m["key"], m.get("version_id"))),
                )
            )
        when = parse_iso_lenient(entry.get("call_date")) or parse_iso_lenient(
            rec.get("scheduled_at") or rec.get("processed_at")
        )
        duration = rec.get("duration_ms")
        out.append(
            FollowupEntryView(
                id=fid,
                when=when,
                type=_text(rec.get("type", entry.get("type"))) or "unknown",
                status=_text(rec.get("status", entry.get("status"))) or "unknown",
                direction=_text(rec.get("direction")),
                duration_ms=duration
                if isinstance(duration, int) and not isinstance(duration, bool)
                else None,
                summary=_text(rec.get("summary")),
                record_path=rpath,
                record_sha256=files[rpath].sha256 if rpath and rpath in files else None,
                record_purged=gone.get((rkey, entry.get("record_version_id"))),
                media=media,
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(out, key=lambda f: (f.when or far, f.id))
