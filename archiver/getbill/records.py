"""getbill API records: their typed views, and which records are accepted into the archive.

The typed views (:class:`Followup`, :class:`Debt`) keep the raw record exactly as received;
:func:`Followup.from_record` / :func:`Debt.from_record` are pure and take a dict already
checked against ``followup.schema.json`` / ``debt.schema.json``.

Acceptance policy (the archive exists to keep evidence, so losing a record is worse than
keeping an imperfect one):

* a record without a usable ``id`` (followups: also ``debt_id``) cannot be named in the
  archive: the problem carries ``kept=False`` and the caller skips the record;
* every other problem (wrong type of a non-essential field, bad date) carries ``kept=True``:
  the record is archived exactly as received and the problem is reported beside it;
* a value outside a documented enum (a new ``status`` or ``type``) is a ``severity="warning"``:
  the API adds values over time and the record is still good evidence;
* unknown extra fields are allowed by the schemas and kept in ``raw`` untouched.

Every problem is an :class:`archiver.errors.ValidationError` whose message names the record
(index and id) and the JSON path of the field, e.g.::

    followup #3 (id=abc): field 'duration_ms': expected integer or null, got 'x'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from archiver.common.canonical import canonical_json
from archiver.common.ids import check_id, is_safe_id
from archiver.common.redact import strip_query, strip_signed_urls
from archiver.common.schemas import validate
from archiver.common.time import parse_iso
from archiver.errors import ValidationError

RecordKind = Literal["followup", "debt"]
# Without these a record cannot be named in the archive (keys are built from them).
ESSENTIAL_FIELDS: dict[str, tuple[str, ...]] = {"followup": ("id", "debt_id"), "debt": ("id",)}

MediaKind = Literal["audio", "pdf"]
MEDIA_FIELDS: dict[MediaKind, str] = {"audio": "audio_url", "pdf": "pdf_url"}
# Fields that change every time the API signs the media URLs again. They are not part of the
# stored record (else every listing would look like a change); the manifest keeps them per
# media entry as ``url_expires_at``.
VOLATILE_FIELDS = ("media_urls_expire_at",)
_DATE_FIELDS = ("call_date", "processed_at", "media_urls_expire_at")


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
        check_id(fid, what="followup id")
        check_id(raw.get("debt_id"), what="debt_id", followup_id=fid)
        dates: dict[str, datetime | None] = {}
        for name in _DATE_FIELDS:
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


# -- acceptance


def record_label(kind: str, record: Any, where: int | str | None) -> str:
    """``followup #3 (id=abc)``: how messages name a record."""
    label = kind if where is None else (f"{kind} #{where}" if isinstance(where, int) else where)
    rid = record.get("id") if isinstance(record, dict) else None
    if is_safe_id(rid):
        return f"{label} (id={rid})"
    if rid is not None:
        return f"{label} (id={rid!r:.40})"
    return label


def validate_record(
    kind: RecordKind, record: Any, *, where: int | str | None = None
) -> list[ValidationError]:
    """Validate one API record (``kind`` is ``"followup"`` or ``"debt"``).

    ``where`` is the record's index in its listing (``3`` -> ``followup #3``) or a label.
    Each problem's context has ``field`` (JSON path), ``severity`` (``error``/``warning``),
    ``kept`` (False when the record cannot be archived: see the module docstring) and the ids
    that are known. Problems are sorted by field.
    """
    essential = ESSENTIAL_FIELDS.get(kind, ("id",))
    label = record_label(kind, record, where)
    ids: dict[str, Any] = {}
    if isinstance(record, dict):
        id_key = "followup_id" if kind == "followup" else "debt_id"
        if isinstance(record.get("id"), str):
            ids[id_key] = record["id"]
        if kind == "followup" and isinstance(record.get("debt_id"), str):
            ids["debt_id"] = record["debt_id"]
    problems = []
    for problem in validate(kind, record, label=label):
        path = problem.context.get("field") or ""
        top = path.split(".", 1)[0].split("[", 1)[0]
        kept = bool(path) and top not in essential
        problems.append(
            ValidationError(
                problem.message,
                field=path or None,
                severity=problem.context.get("severity"),
                kept=kept,
                **ids,
            )
        )
    return problems


def is_fatal(problem: ValidationError) -> bool:
    """True if the problem means the record cannot be archived (``kept=False``)."""
    return problem.context.get("kept") is False


Builder = Callable[[dict[str, Any], str], tuple[Any, list[ValidationError]]]


def accept_listed(
    kind: RecordKind,
    raw: Any,
    index: int,
    build: Builder,
    expected_debt_id: str | None,
) -> tuple[Any, list[ValidationError]]:
    """Decide about record ``index`` of a listing: ``(typed record or None, its problems)``.

    ``None`` means the record is skipped (its problems say why, with ``kept=False``).
    ``expected_debt_id``: the debt the listing belongs to; a record naming another debt is
    skipped (it would be archived under the wrong debt).
    """
    problems = validate_record(kind, raw, where=index)
    if any(is_fatal(p) for p in problems):
        return None, problems
    label = record_label(kind, raw, index)
    if expected_debt_id is not None and raw.get("debt_id") != expected_debt_id:
        problems.append(
            ValidationError(
                f"{label}: field 'debt_id': names debt {raw.get('debt_id')}, not the listed "
                f"debt {expected_debt_id}; skipped (it would be archived under another debt)",
                field="debt_id",
                severity="error",
                kept=False,
                followup_id=raw.get("id"),
                debt_id=expected_debt_id,
            )
        )
        return None, problems
    try:
        item, more = build(raw, label)
    except ValidationError as exc:
        problems.append(
            ValidationError(f"{label}: {exc.message}; skipped", **{**exc.context, "kept": False})
        )
        return None, problems
    known = {p.context.get("field") for p in problems}
    problems.extend(p for p in more if p.context.get("field") not in known)
    return item, problems


def accept_single(
    kind: RecordKind, raw: dict[str, Any], wanted_id: str, path: str
) -> list[ValidationError]:
    """The problems of a record read on its own (``path``), if it can be kept.

    Raises :class:`ValidationError` if it cannot (no/unsafe id, or not the id asked for).
    """
    problems = validate_record(kind, raw, where=None)
    fatal = [p for p in problems if is_fatal(p)]
    if fatal:
        raise ValidationError(
            f"{fatal[0].message} (from {path}); the record cannot be archived",
            **{k: v for k, v in fatal[0].context.items() if k != "kept"},
        )
    if raw.get("id") != wanted_id:
        raise ValidationError(
            f"asked getbill for {kind} {wanted_id} and got {kind} {raw.get('id')!r:.40}",
            field="id",
        )
    return problems


def build_followup(raw: dict[str, Any], label: str) -> tuple[Followup, list[ValidationError]]:
    """Followup.from_record, but a bad date costs only that date, not the record.

    The record is evidence: it is kept exactly as received (``raw``) and the field is read as
    unknown (None) in the typed view, with a problem reported.
    """
    cleaned = raw
    problems: list[ValidationError] = []
    for _ in range(len(_DATE_FIELDS) + 1):
        try:
            followup = Followup.from_record(cleaned)
        except ValidationError as exc:
            name = exc.context.get("field")
            if name not in _DATE_FIELDS or cleaned.get(name) is None:
                raise
            cleaned = {**cleaned, name: None}
            problems.append(
                ValidationError(
                    f"{label}: field {name!r}: {exc.message}; record kept, date read as unknown",
                    field=name,
                    severity="error",
                    kept=True,
                    followup_id=raw.get("id"),
                    debt_id=raw.get("debt_id"),
                )
            )
            continue
        if cleaned is not raw:
            followup = dataclasses.replace(followup, raw=raw)
        return followup, problems
    raise AssertionError("unreachable")


def build_debt(raw: dict[str, Any], label: str) -> tuple[Debt, list[ValidationError]]:
    """Debt.from_record in the shape of :func:`build_followup` (a debt has no dates to spare)."""
    return Debt.from_record(raw), []


def stable_fingerprint(record: dict[str, Any]) -> bytes:
    """Canonical bytes ignoring what changes with each signing (URL queries, expiry)."""
    stable = {k: v for k, v in record.items() if k not in VOLATILE_FIELDS}
    for name in MEDIA_FIELDS.values():
        if isinstance(stable.get(name), str):
            stable[name] = strip_query(stable[name])
    try:
        return canonical_json(stable)
    except Exception:  # noqa: BLE001 - e.g. a float RFC 8785 refuses; repr still tells apart
        return repr(sorted(stable.items(), key=lambda kv: str(kv[0]))).encode()
