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

from archiver.common.redact import strip_query
from archiver.common.time import parse_iso_lenient
from archiver.getbill.records import MEDIA_FIELDS
from archiver.store import keys

from .money import fmt_money
from .statuses import UNKNOWN, debt_status_meaning, followup_status_meaning, with_meaning

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
    (``{"action": "hold"|"release", "matter", "debt_id", "at", "reason", "actor", "objects"}``;
    events without ``matter`` belong to one unnamed matter) up to the dossier's time.
    ``later_events`` are the events recorded after the manifest (hold, release, purge), given
    when a dossier is rendered on demand rather than as stored: they are shown apart, and the
    hold state shown is the one after them (a held debt is never shown as not held).
    ``bucket`` and ``endpoint`` (the S3 endpoint URL) name where the archive is, so that the
    verification steps can be run as printed; without them the steps say ``$BUCKET``. They are
    part of the output: a re-render must be given the same values to give the same bytes.
    ``timestamps`` maps a manifest sequence (this one's and earlier ones) to its stored
    RFC 3161 token: the chain of custody shows each TSA's time and name. They are part of the
    output too: a re-render is given the tokens the stored dossier showed.
    """

    manifest: dict[str, Any]
    manifest_key: str
    manifest_sha256: str
    records: dict[str, dict[str, Any]]
    debt: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    bucket: str | None = None
    endpoint: str | None = None
    later_events: list[dict[str, Any]] = field(default_factory=list)
    timestamps: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class TimestampView:
    """The trusted timestamp of one manifest, as its token states it (``verify`` checks it):
    ``note`` says what is wrong with a token that does not stamp the manifest it is named
    for, or cannot be read."""

    sequence: int
    key: str  # debts/ID/manifests/00000001.tsr
    tsa: str
    gen_time: datetime | None
    note: str | None = None


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
class OpenMatter:
    """A legal-hold matter that is open (held, not released) at the dossier's time."""

    matter: str | None  # None: the unnamed matter of events written before matters existed
    since: str | None
    reason: str | None
    actor: str | None

    @property
    def name(self) -> str:
        """The matter's name as shown: ``D-2026-200``, or ``unnamed matter``."""
        return self.matter or "unnamed matter"


@dataclass(frozen=True)
class PaymentRow:
    """A followup that triggered a payment, with the amount its record states (if any)."""

    followup_id: str
    when: datetime | None
    type: str
    status: str
    amount: str | None  # as money; None when the record states no amount


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
    payments: list[PaymentRow]  # the followups that triggered a payment, chronological
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
    version_line: str = ""  # "getbill-archiver 0.1.0, dossier renderer 1.2.0"
    payment_facts: list[tuple[str, str]] = field(default_factory=list)  # from the debt record
    # (status, "debt" | "followup", meaning) for every status this dossier shows
    statuses: list[tuple[str, str, str]] = field(default_factory=list)
    open_matters: list[OpenMatter] = field(default_factory=list)  # after later_events too
    bucket: str | None = None
    endpoint: str | None = None  # without credentials, query or fragment
    later_events: list[dict[str, Any]] = field(default_factory=list)  # after the manifest
    timestamps: list[TimestampView] = field(default_factory=list)  # by manifest sequence


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
            text = fmt_money(value, debt.get("currency"))
        elif key == "status":
            text = with_meaning(fmt_value(value), debt_status_meaning(fmt_value(value)))
        elif key in ("company", "debtor_company"):
            text = _name_of(value)
        else:
            text = fmt_value(value)
        facts.append((label, text))
    return facts


def _payment_facts(debt: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What the debt record says about payment: amount, getbill's own wording, plan."""
    if not debt:
        return []
    facts: list[tuple[str, str]] = []
    if debt.get("amount") not in (None, ""):
        facts.append(("Amount owed", fmt_money(debt["amount"], debt.get("currency"))))
    if isinstance(debt.get("amount_text"), str) and debt["amount_text"].strip():
        facts.append(("Amount as getbill writes it", debt["amount_text"]))
    status = debt.get("status")
    if status not in (None, ""):
        facts.append(("Debt status", with_meaning(fmt_value(status), debt_status_meaning(status))))
    plan, start = debt.get("payment_plan_active"), debt.get("plan_start_date")
    if plan is True:
        facts.append(
            ("Payment plan", "active" + (f", started {fmt_value(start)}" if start else ""))
        )
    elif plan is False:
        facts.append(("Payment plan", "none"))
    elif start:
        facts.append(("Payment plan", f"start date {fmt_value(start)}; active or not not stated"))
    return facts


# Fields a followup record may use for the amount of the payment it triggered.
_PAYMENT_AMOUNT_FIELDS = ("payment_amount", "amount_paid", "paid_amount", "amount")


def _payment_row(f: FollowupView, rec: dict[str, Any], debt: dict[str, Any] | None) -> PaymentRow:
    amount = None
    for name in _PAYMENT_AMOUNT_FIELDS:
        if rec.get(name) not in (None, ""):
            currency = (
                rec.get("payment_currency") or rec.get("currency") or (debt or {}).get("currency")
            )
            amount = fmt_money(rec[name], currency)
            break
    return PaymentRow(f.id, f.when, f.type, f.status, amount)


def _month_axis(dated: list[datetime]) -> list[tuple[str, int]]:
    """Followups per month, every month from the first to the last, months without any at 0."""
    if not dated:
        return []
    counts = Counter((d.year, d.month) for d in dated)
    (year, month), last = min(counts), max(counts)
    out = []
    while (year, month) <= last:
        out.append((f"{year:04d}-{month:02d}", counts.get((year, month), 0)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _statuses(
    debt_facts: bool, debt: dict[str, Any] | None, followup: list[str]
) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    status = (debt or {}).get("status")
    if debt_facts and status not in (None, ""):
        text = fmt_value(status)
        out.append((text, "debt", debt_status_meaning(text) or UNKNOWN))
    out += [(s, "followup", followup_status_meaning(s) or UNKNOWN) for s in sorted(set(followup))]
    return out


def _event_time(event: dict[str, Any]) -> tuple[datetime, str, str]:
    # Readable times in time order (whatever their offset notation); unreadable ones first.
    at = parse_iso_lenient(event.get("at"))
    floor = datetime.min.replace(tzinfo=UTC)
    return (at or floor, str(event.get("at", "")), str(event.get("action", "")))


def event_matter(event: dict[str, Any]) -> str | None:
    """The matter a hold/release event belongs to; None for the unnamed matter of events
    written before matters existed."""
    matter = event.get("matter")
    return matter if isinstance(matter, str) and matter.strip() else None


def open_matters(events: list[dict[str, Any]]) -> list[OpenMatter]:
    """The matters held and not released by ``events``, oldest hold first.

    A matter opens at its first hold and closes at its next release; a release without a
    matter closes only the unnamed matter (never a named one), so a held debt is never shown
    as released. Other events (purges) are ignored.
    """
    held: dict[str | None, OpenMatter] = {}
    for event in sorted(events, key=_event_time):
        action, matter = event.get("action"), event_matter(event)
        if action == "hold" and matter not in held:
            held[matter] = OpenMatter(
                matter=matter,
                since=_str_or_none(event.get("at")),
                reason=_str_or_none(event.get("reason")),
                actor=_str_or_none(event.get("actor")),
            )
        elif action == "release":
            held.pop(matter, None)
    return list(held.values())


def _endpoint(value: str | None) -> str | None:
    # Only a URL, and never its user:password or query (credentials must not be printed).
    if not isinstance(value, str) or not value.strip():
        return None
    clean = strip_query(value.strip())
    return clean.rstrip("/") if clean.startswith(("http://", "https://")) else None


def build_view(inp: DossierInput, *, renderer_version: str = "?") -> DossierView:
    """Join the manifest with its records and compute everything the dossier shows
    (``renderer_version`` goes into the version line)."""
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
    tool = man.get("tool") or {}
    debt_unavailable = man.get("debt_unavailable")
    source = (man.get("source") or {}).get("api_base_url")
    events = sorted(inp.events, key=_event_time)
    later_events = sorted(inp.later_events, key=_event_time)
    debt_ref = man.get("debt")
    debt_purged = purge_mark(debt_ref.get("purged")) if isinstance(debt_ref, dict) else None
    purges = _purges(followups, debt_purged, events)
    debt_facts = [] if debt_purged else _debt_facts(inp.debt)
    payment_rows = [
        _payment_row(f, inp.records.get(f.id) or {}, inp.debt)
        for f in followups
        if f.triggered_payment
    ]
    tool_name, tool_version = tool.get("name", "?"), tool.get("version", "?")
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
        debt_facts=debt_facts,
        debt_unavailable=(
            str(debt_unavailable.get("reason")) if isinstance(debt_unavailable, dict) else None
        ),
        previous=man.get("previous"),
        followups=followups,
        media=media,
        by_type=sorted(Counter(f.type for f in followups).items()),
        by_status=sorted(Counter(f.status for f in followups).items()),
        by_month=_month_axis(dated),
        total_call_ms=sum(f.duration_ms or 0 for f in followups),
        payments=payment_rows,
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
        version_line=f"{tool_name} {tool_version}, dossier renderer {renderer_version}",
        payment_facts=[] if debt_purged else _payment_facts(inp.debt),
        statuses=_statuses(bool(debt_facts), inp.debt, [f.status for f in followups]),
        open_matters=open_matters(events + later_events),
        later_events=later_events,
        bucket=inp.bucket.strip() if isinstance(inp.bucket, str) and inp.bucket.strip() else None,
        endpoint=_endpoint(inp.endpoint),
        timestamps=_timestamps(inp),
    )


def _timestamps(inp: DossierInput) -> list[TimestampView]:
    """The tokens of :attr:`DossierInput.timestamps`, by sequence; the SHA-256 they stamp is
    compared where the dossier knows the manifest's (this one and the one before it)."""
    man = inp.manifest
    debt_id, sequence = str(man.get("debt_id", "")), int(man.get("sequence", 0))
    known = {sequence: inp.manifest_sha256}
    prev = man.get("previous")
    if isinstance(prev, dict) and isinstance(prev.get("sha256"), str):
        known[sequence - 1] = prev["sha256"]
    if not inp.timestamps:
        return []
    # cryptography and rfc3161-client load only for a debt that has tokens.
    from archiver.timestamps.tokens import read_token

    out = []
    for seq in sorted(inp.timestamps):
        key = keys.manifest_token_key(debt_id, seq)
        info = read_token(inp.timestamps[seq])
        if info is None:
            out.append(TimestampView(seq, key, "—", None, "unreadable token"))
            continue
        note = None
        if seq in known and info.sha256 != known[seq]:
            note = "does not stamp this manifest's SHA-256"
        out.append(TimestampView(seq, key, info.tsa, info.gen_time, note))
    return out


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
