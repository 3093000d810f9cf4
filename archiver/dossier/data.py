"""What the dossier shows, prepared from a manifest and its stored records. Pure, no I/O.

Everything here is a function of :class:`DossierInput` alone (no clock, no environment), and
every list has a total order, so the same input always gives the same view and the same PDF.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.common.time import parse_iso_lenient
from archiver.getbill.records import MEDIA_FIELDS

# The followup fields documented by the getbill API, in the order a reader expects them.
# Fields not listed here ("extras") follow, sorted by name.
FOLLOWUP_FIELDS = (
    "id",
    "debt_id",
    "type",
    "status",
    "direction",
    "call_date",
    "scheduled_at",
    "processed_at",
    "duration_ms",
    "disconnection_reason",
    "phone_number_used",
    "is_retry",
    "call_id",
    "audio_url",
    "pdf_url",
    "triggered_payment",
    "email_opened",
    "email_open_count",
    "email_first_opened_at",
    "email_clicked",
    "email_click_count",
    "summary",
    "notes",
)
# Shown as wrapped paragraphs after the field table (they can be long).
LONG_FIELDS = ("summary", "notes")


@dataclass(frozen=True)
class DossierInput:
    """Everything a dossier is rendered from: one manifest and what it names.

    ``records`` maps followup id -> the stored followup record; ``debt`` is the stored debt
    record (None when the manifest has none); ``events`` are legal-hold events
    (``{"action": "hold"|"release", "debt_id", "at", "reason", "actor", "objects"}``).
    """

    manifest: dict[str, Any]
    manifest_key: str
    manifest_sha256: str
    records: dict[str, dict[str, Any]]
    debt: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PurgeMark:
    """A manifest's ``purged`` / ``record_purged`` marker: which deletion record, when."""

    event_key: str
    at: str | None


@dataclass(frozen=True)
class MediaView:
    """One archived medium, as shown in the inventory and the chain of custody."""

    followup_id: str
    kind: str
    size: int
    duration_ms: int | None
    sha256: str
    key: str
    version_id: str | None
    retain_until: str | None
    retention_mode: str | None
    legal_hold: bool
    source: str
    content_type: str | None
    sniffed_type: str | None
    downloaded_at: str | None
    url_expires_at: str | None
    margin: str  # "stored 41 min before its link expired"
    late: bool  # downloaded after the link's stated expiry
    # Set when `archiver purge` deleted this version at its maximum retention.
    purged: PurgeMark | None = None


@dataclass(frozen=True)
class FollowupView:
    """One followup: the manifest entry joined with its stored record."""

    id: str
    when: datetime | None
    type: str
    status: str
    direction: str
    summary: str
    notes: str
    duration_ms: int | None
    triggered_payment: bool
    fields: list[tuple[str, str]]  # every record field but LONG_FIELDS, display order
    record_key: str
    record_sha256: str
    record_version_id: str | None
    record_retain_until: str | None
    record_loaded: bool
    media: list[MediaView]
    problems: list[str]
    record_purged: PurgeMark | None = None  # the record was deleted at its maximum retention
    upstream_missing_since: str | None = None  # no longer in the getbill listing since then


@dataclass(frozen=True)
class PurgeView:
    """One purge that deleted objects this manifest names, for the chain of custody."""

    event_key: str
    at: str | None
    records: int  # followup records of this manifest it deleted
    media: int
    debt: bool  # the debt record
    actor: str | None  # from the deletion record, when it is among the events
    reason: str | None
    objects_in_purge: int | None  # everything that purge deleted, this debt's other manifests too

    @property
    def objects(self) -> int:
        """How many objects named by this manifest the purge deleted."""
        return self.records + self.media + int(self.debt)


@dataclass(frozen=True)
class DossierView:
    """The whole dossier, ready to lay out."""

    debt_id: str
    sequence: int
    created_at: str
    manifest_key: str
    manifest_sha256: str
    tool: str
    policy: dict[str, Any]
    debt_ref: dict[str, Any] | None
    debt_facts: list[tuple[str, str]]
    debt_unavailable: str | None
    previous: dict[str, Any] | None
    followups: list[FollowupView]  # chronological
    media: list[MediaView]  # chronological by followup, then kind
    by_type: list[tuple[str, int]]
    by_status: list[tuple[str, int]]
    by_month: list[tuple[str, int]]
    total_call_ms: int
    payments: list[str]  # followup ids that triggered a payment
    media_archived: int
    media_bytes: int
    media_unavailable: list[tuple[str, str, str]]  # (followup id, kind, why)
    first_contact: datetime | None
    last_contact: datetime | None
    problems: list[dict[str, Any]]
    retention_extensions: list[dict[str, Any]]
    events: list[dict[str, Any]]  # hold and release events (purges are in ``purges``)
    source: str | None
    media_purged: int = 0  # media versions deleted at their maximum (not in media_archived)
    records_purged: int = 0
    upstream_missing: int = 0  # followups no longer listed by getbill
    debt_purged: PurgeMark | None = None
    purges: list[PurgeView] = field(default_factory=list)


def purge_mark(value: Any) -> PurgeMark | None:
    """The marker as a :class:`PurgeMark`; None when absent (or not a marker)."""
    if not isinstance(value, dict) or not value.get("event_key"):
        return None
    at = value.get("at")
    return PurgeMark(str(value["event_key"]), at if isinstance(at, str) else None)


def purge_note(mark: PurgeMark) -> str:
    """``purged 2031-01-02 09:00 UTC (deletion record debts/…-purge.json)``."""
    return f"purged {fmt_when(mark.at)} (deletion record {mark.event_key})"


def fmt_when(value: Any, *, seconds: bool = False) -> str:
    """``2024-01-22T10:30:00+02:00`` -> ``2024-01-22 08:30 UTC``; unreadable text as is."""
    dt = value if isinstance(value, datetime) else parse_iso_lenient(value)
    if dt is None:
        return "—" if value in (None, "") else str(value)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def fmt_duration(ms: int | None) -> str:
    """Milliseconds -> ``1 h 02 min 05 s`` / ``3 min 12 s`` / ``45 s``."""
    if ms is None:
        return "—"
    s = round(ms / 1000)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min {sec:02d} s"
    if m:
        return f"{m} min {sec:02d} s"
    return f"{sec} s"


def fmt_size(n: int | None) -> str:
    """Bytes -> ``1.4 MB (1,432,113 bytes)``: the exact count matters for evidence."""
    if n is None:
        return "—"
    for unit, div in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def fmt_value(value: Any) -> str:
    """A record value as text: ``None`` -> ``null``, bools lower-case, objects as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _number(value)
    return json.dumps(_normalise(value), ensure_ascii=False, sort_keys=True)


def _number(value: int | float) -> str:
    # As RFC 8785 writes it, so a record read back from its canonical bytes (1250) and the
    # same record still in memory (1250.0) render identically.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def custody_margin(downloaded_at: str | None, url_expires_at: str | None) -> tuple[str, bool]:
    """How long before its signed link expired a medium was stored, and whether it was late."""
    got, exp = parse_iso_lenient(downloaded_at), parse_iso_lenient(url_expires_at)
    if got is None:
        return "download time unknown", False
    if exp is None:
        return "link expiry not stated by the API", False
    delta = (exp - got).total_seconds()
    span = _span(abs(delta))
    if delta >= 0:
        return f"stored {span} before its link expired", False
    return f"stored {span} AFTER its link's stated expiry", True


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    return f"{h // 24} days {h % 24} h"


def _followup_when(entry: dict[str, Any], record: dict[str, Any]) -> datetime | None:
    for name in ("call_date", "scheduled_at", "processed_at"):
        dt = parse_iso_lenient(record.get(name)) or parse_iso_lenient(entry.get(name))
        if dt is not None:
            return dt
    return None


def _text(value: Any) -> str:
    return "" if value is None else fmt_value(value)


def _record_fields(record: dict[str, Any]) -> list[tuple[str, str]]:
    names = [n for n in FOLLOWUP_FIELDS if n in record and n not in LONG_FIELDS]
    names += sorted(n for n in record if n not in FOLLOWUP_FIELDS)
    return [(n, fmt_value(record[n])) for n in names]


def _media_view(followup_id: str, m: dict[str, Any], record: dict[str, Any]) -> MediaView:
    duration = m.get("duration_ms")
    if duration is None and m.get("kind") == "audio":
        rec_dur = record.get("duration_ms")
        duration = rec_dur if isinstance(rec_dur, int) and not isinstance(rec_dur, bool) else None
    margin, late = custody_margin(m.get("downloaded_at"), m.get("url_expires_at"))
    return MediaView(
        followup_id=followup_id,
        kind=str(m.get("kind", "?")),
        size=int(m.get("size", 0)),
        duration_ms=duration,
        sha256=str(m.get("sha256", "")),
        key=str(m.get("key", "")),
        version_id=m.get("version_id"),
        retain_until=m.get("retain_until"),
        retention_mode=m.get("retention_mode"),
        legal_hold=bool(m.get("legal_hold")),
        source=str(m.get("source", "")),
        content_type=m.get("content_type"),
        sniffed_type=m.get("sniffed_type"),
        downloaded_at=m.get("downloaded_at"),
        url_expires_at=m.get("url_expires_at"),
        margin=margin,
        late=late,
        purged=purge_mark(m.get("purged")),
    )


def _problem_text(p: dict[str, Any]) -> str:
    kind = f" ({p['kind']})" if p.get("kind") else ""
    return f"{p.get('type', 'problem')}{kind}: {p.get('message', '')}"


_DEBT_FACTS = (
    ("Internal reference", "internal_id"),
    ("Invoice reference", "invoice_reference"),
    ("Debtor reference", "debtor_reference"),
    ("Creditor", "company"),
    ("Debtor company", "debtor_company"),
    ("Amount", "amount"),
    ("Debt status", "status"),
    ("Invoice date", "invoice_date"),
    ("Due date", "due_date"),
)


def debtor_name(debt: dict[str, Any]) -> str:
    """``M. Jean Dupont`` from civility / firstname / lastname, skipping what is missing."""
    parts = [debt.get(k) for k in ("civility", "firstname", "lastname")]
    return " ".join(str(p) for p in parts if isinstance(p, str) and p.strip())


def _name_of(value: Any) -> str:
    # company / debtor_company may be a name or an object with a name.
    if isinstance(value, dict):
        for k in ("name", "legal_name", "company_name"):
            if isinstance(value.get(k), str):
                return str(value[k])
        return fmt_value(value)
    return fmt_value(value)


def _debt_facts(debt: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not debt:
        return []
    facts: list[tuple[str, str]] = []
    name = debtor_name(debt)
    if name:
        facts.append(("Debtor", name))
    for label, key in _DEBT_FACTS:
        value = debt.get(key)
        if value in (None, ""):
            continue
        if key == "amount":
            text = f"{fmt_value(value)} {debt.get('currency') or ''}".strip()
        elif key in ("company", "debtor_company"):
            text = _name_of(value)
        else:
            text = fmt_value(value)
        facts.append((label, text))
    return facts


def build_view(inp: DossierInput) -> DossierView:
    """Join the manifest with its records and compute everything the dossier shows."""
    man = inp.manifest
    problems = list(man.get("problems") or [])
    problems_by_followup: dict[str, list[str]] = {}
    for p in problems:
        if p.get("followup_id"):
            problems_by_followup.setdefault(str(p["followup_id"]), []).append(_problem_text(p))

    followups: list[FollowupView] = []
    for entry in man.get("followups") or []:
        fid = str(entry["id"])
        record_purged = purge_mark(entry.get("record_purged"))
        # A purged record is shown from the manifest entry alone, even if a caller still
        # holds it in memory: the archive-time render must equal a re-render from storage.
        record = None if record_purged else inp.records.get(fid)
        loaded = record is not None
        rec = record or {}
        media = [
            _media_view(fid, m, rec)
            for m in sorted(entry.get("media") or [], key=lambda m: (m["kind"], m["key"]))
        ]
        dur = rec.get("duration_ms")
        followups.append(
            FollowupView(
                id=fid,
                when=_followup_when(entry, rec),
                type=_text(rec.get("type", entry.get("type"))) or "unknown",
                status=_text(rec.get("status", entry.get("status"))) or "unknown",
                direction=_text(rec.get("direction")),
                summary=_text(rec.get("summary")),
                notes=_text(rec.get("notes")),
                duration_ms=dur if isinstance(dur, int) and not isinstance(dur, bool) else None,
                triggered_payment=rec.get("triggered_payment") is True,
                fields=_entry_fields(entry) if record_purged else _record_fields(rec),
                record_key=str(entry.get("record_key", "")),
                record_sha256=str(entry.get("record_sha256", "")),
                record_version_id=entry.get("record_version_id"),
                record_retain_until=entry.get("record_retain_until"),
                record_loaded=loaded,
                media=media,
                problems=problems_by_followup.get(fid, []),
                record_purged=record_purged,
                upstream_missing_since=_str_or_none(entry.get("upstream_missing_since")),
            )
        )
    # Undated followups go last; ids break ties so the order never depends on input order.
    far = datetime.max.replace(tzinfo=UTC)
    followups.sort(key=lambda f: (f.when or far, f.id))

    media = [m for f in followups for m in f.media]
    stored = [m for m in media if m.purged is None]
    archived = {(m.followup_id, m.kind) for m in media}
    unavailable: dict[tuple[str, str], str] = {}
    for f in followups:
        rec = {} if f.record_purged else inp.records.get(f.id) or {}
        for kind, name in MEDIA_FIELDS.items():
            if rec.get(name) and (f.id, kind) not in archived:
                unavailable[(f.id, kind)] = "listed by the API, not archived"
    for p in problems:
        if p.get("followup_id") and p.get("kind"):
            key = (str(p["followup_id"]), str(p["kind"]))
            if key not in archived:
                unavailable[key] = _problem_text(p)

    dated = [f.when for f in followups if f.when is not None]
    months = Counter(d.strftime("%Y-%m") for d in dated)
    tool = man.get("tool") or {}
    debt_unavailable = man.get("debt_unavailable")
    source = (man.get("source") or {}).get("api_base_url")
    events = sorted(inp.events, key=lambda e: (str(e.get("at", "")), str(e.get("action", ""))))
    debt_ref = man.get("debt")
    debt_purged = purge_mark(debt_ref.get("purged")) if isinstance(debt_ref, dict) else None
    purges = _purges(followups, debt_purged, events)
    if purges:
        # Deletion records go to the purges list, not among the legal holds. Only when this
        # manifest names purged objects: dossiers of other manifests keep their stored bytes.
        events = [e for e in events if e.get("action") != "purge"]
    return DossierView(
        debt_id=str(man.get("debt_id", "")),
        sequence=int(man.get("sequence", 0)),
        created_at=str(man.get("created_at", "")),
        manifest_key=inp.manifest_key,
        manifest_sha256=inp.manifest_sha256,
        tool=f"{tool.get('name', '?')} {tool.get('version', '?')}",
        policy=dict(man.get("policy") or {}),
        debt_ref=debt_ref,
        debt_facts=[] if debt_purged else _debt_facts(inp.debt),
        debt_unavailable=(
            str(debt_unavailable.get("reason")) if isinstance(debt_unavailable, dict) else None
        ),
        previous=man.get("previous"),
        followups=followups,
        media=media,
        by_type=sorted(Counter(f.type for f in followups).items()),
        by_status=sorted(Counter(f.status for f in followups).items()),
        by_month=sorted(months.items()),
        total_call_ms=sum(f.duration_ms or 0 for f in followups),
        payments=[f.id for f in followups if f.triggered_payment],
        media_archived=len(stored),
        media_bytes=sum(m.size for m in stored),
        media_unavailable=[(fid, kind, why) for (fid, kind), why in sorted(unavailable.items())],
        first_contact=min(dated) if dated else None,
        last_contact=max(dated) if dated else None,
        problems=problems,
        retention_extensions=list(man.get("retention_extensions") or []),
        events=events,
        source=source if isinstance(source, str) else None,
        media_purged=len(media) - len(stored),
        records_purged=sum(1 for f in followups if f.record_purged),
        upstream_missing=sum(1 for f in followups if f.upstream_missing_since),
        debt_purged=debt_purged,
        purges=purges,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# What a manifest entry says of a followup whose record was purged.
_ENTRY_FIELDS = ("id", "type", "status", "call_date")


def _entry_fields(entry: dict[str, Any]) -> list[tuple[str, str]]:
    return [(n, fmt_value(entry[n])) for n in _ENTRY_FIELDS if n in entry]


def _purges(
    followups: list[FollowupView], debt: PurgeMark | None, events: list[dict[str, Any]]
) -> list[PurgeView]:
    """The purges behind this manifest's markers, by deletion record, oldest first."""
    counts: dict[PurgeMark, list[int]] = {}  # mark -> [records, media, debt]
    for f in followups:
        if f.record_purged:
            counts.setdefault(f.record_purged, [0, 0, 0])[0] += 1
        for m in f.media:
            if m.purged:
                counts.setdefault(m.purged, [0, 0, 0])[1] += 1
    if debt:
        counts.setdefault(debt, [0, 0, 0])[2] += 1
    # The archive copies the deletion record's "at" into each marker: match on it.
    by_at = {str(e.get("at")): e for e in events if e.get("action") == "purge"}
    out = []
    for mark, (records, media, has_debt) in counts.items():
        event = by_at.get(str(mark.at)) if mark.at else None
        total = (event or {}).get("objects")
        out.append(
            PurgeView(
                event_key=mark.event_key,
                at=mark.at,
                records=records,
                media=media,
                debt=bool(has_debt),
                actor=_str_or_none((event or {}).get("actor")),
                reason=_str_or_none((event or {}).get("reason")),
                objects_in_purge=total if isinstance(total, int) else None,
            )
        )
    return sorted(out, key=lambda p: (p.at or "", p.event_key))
