"""Retention policies: the model and the retention date maths. Pure, no S3.

A policy (``retention_policies/{name}.toml``, validated against
``schemas/retention_policy.schema.json`` by :mod:`archiver.retention.policy_files`, found by
name through :class:`archiver.retention.registry.PolicyRegistry`) gives, for each kind of
archived object, a **minimum** retention that S3 Object Lock enforces and an optional
**maximum** after which the purge step deletes the object (unless a legal hold is on).
Durations are calendar durations (:mod:`archiver.retention.durations`).

Decisions, written down so a compliance officer can check them:

* **One anchor per kind.** ``min`` and ``max`` both count from the kind's ``anchor``. The
  sources give both limits from the same event (the call, the last collection activity), and a
  shared anchor makes ``min <= max`` checkable once, in the file, for every object.
* **Missing anchor date.** An email has no ``call_date``; a debt may have no followup yet. Then
  the anchor is the *latest* known date among call_date, last_activity and archived_at
  (archived_at is always known). Later is the conservative choice for an evidence archive: the
  object is never released or purged earlier than with the true anchor, which must lie before
  archiving. :func:`resolve_anchor` says which date was used, for the audit trail.
* **last_activity** of a debt is the latest ``call_date`` or ``processed_at`` of its followups:
  both mark a contact attempt or a letter actually sent. ``scheduled_at`` is left out: a planned
  action is not an activity until it happens. For a manifest (one per debt and run), it is the
  debt's last activity at that run; later runs extend earlier retention dates.
* **Past max** means strictly after :func:`delete_after`.

Every datetime is timezone-aware; results are in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from archiver.retention.durations import Duration, add_duration

if TYPE_CHECKING:
    from archiver.getbill.records import Followup

__all__ = [
    "ANCHORS",
    "DEFAULT_POLICY",
    "OBJECT_KINDS",
    "Anchor",
    "AnchorDates",
    "Citation",
    "KindRule",
    "Mode",
    "ObjectKind",
    "ResolvedAnchor",
    "RetentionPolicy",
    "delete_after",
    "last_activity",
    "last_activity_of",
    "resolve_anchor",
    "retain_until",
]

ObjectKind = Literal["audio", "pdf", "record", "debt", "manifest", "dossier"]
Anchor = Literal["call_date", "last_activity", "archived_at"]
Mode = Literal["GOVERNANCE", "COMPLIANCE"]
OBJECT_KINDS: tuple[ObjectKind, ...] = get_args(ObjectKind)
ANCHORS: tuple[Anchor, ...] = get_args(Anchor)

# The policy a run applies when none is configured.
DEFAULT_POLICY = "default"

# ---------------------------------------------------------------------------------------------
# Policies


@dataclass(frozen=True)
class KindRule:
    """Retention of one kind of object: keep ``min`` from ``anchor``; delete after ``max``."""

    min: Duration
    anchor: Anchor
    max: Duration | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": str(self.min),
            "anchor": self.anchor,
            "max": str(self.max) if self.max else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Citation:
    """One legal source of a policy."""

    citation: str
    summary: str
    url: str | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    """A loaded, validated policy. ``sha256`` is of the file's bytes, for the manifest."""

    name: str
    title: str
    jurisdiction: str
    legal_basis: tuple[Citation, ...]
    mode: Mode
    rules: dict[ObjectKind, KindRule]
    sha256: str
    source_path: Path
    notice: str = ""
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (used by ``archiver policies show --json``)."""
        return {
            "name": self.name,
            "title": self.title,
            "jurisdiction": self.jurisdiction,
            "mode": self.mode,
            "notice": self.notice,
            "description": self.description,
            "legal_basis": [
                {"citation": c.citation, "summary": c.summary, "url": c.url}
                for c in self.legal_basis
            ],
            "rules": {kind: rule.to_dict() for kind, rule in self.rules.items()},
            "sha256": self.sha256,
            "source_path": str(self.source_path),
        }

    def manifest_ref(self) -> dict[str, str]:
        """What a manifest records about the policy it applied (see manifest.schema.json)."""
        return {"name": self.name, "title": self.title, "sha256": self.sha256, "mode": self.mode}


# ---------------------------------------------------------------------------------------------
# Retention dates


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class AnchorDates:
    """The dates an object's retention can count from. Stored in UTC."""

    archived_at: datetime
    call_date: datetime | None = None
    last_activity: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("archived_at", "call_date", "last_activity"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc(value, name))


@dataclass(frozen=True)
class ResolvedAnchor:
    """The anchor date actually used, and whether it stands in for a missing one."""

    anchor: Anchor
    used: Anchor
    date: datetime

    @property
    def is_fallback(self) -> bool:
        return self.used != self.anchor


def resolve_anchor(anchor: Anchor, dates: AnchorDates) -> ResolvedAnchor:
    """The date ``anchor`` stands for; if unknown, the latest known date (conservative)."""
    value = getattr(dates, anchor)
    if value is not None:
        return ResolvedAnchor(anchor, anchor, value)
    known = [(getattr(dates, a), a) for a in ANCHORS if getattr(dates, a) is not None]
    latest, used = max(known, key=lambda pair: pair[0])
    return ResolvedAnchor(anchor, used, latest)


def retain_until(policy: RetentionPolicy, kind: ObjectKind, dates: AnchorDates) -> datetime:
    """End of the minimum retention of an object of ``kind`` (the Object Lock date), UTC."""
    rule = policy.rules[kind]
    return add_duration(resolve_anchor(rule.anchor, dates).date, rule.min)


def delete_after(policy: RetentionPolicy, kind: ObjectKind, dates: AnchorDates) -> datetime | None:
    """End of the maximum retention (after it the purge step deletes), or None if no max."""
    rule = policy.rules[kind]
    if rule.max is None:
        return None
    return add_duration(resolve_anchor(rule.anchor, dates).date, rule.max)


def last_activity(followup_dates: Iterable[datetime | None]) -> datetime | None:
    """The latest of the given dates (Nones skipped) in UTC, or None if there is none.

    Feed it the ``call_date`` and ``processed_at`` of every followup of a debt
    (:func:`last_activity_of` does so).
    """
    dates = [_utc(d, "activity date") for d in followup_dates if d is not None]
    return max(dates, default=None)


def last_activity_of(followups: Iterable[Followup]) -> datetime | None:
    """Last collection activity of a debt: latest ``call_date`` / ``processed_at`` of its
    followups (``scheduled_at`` is a plan, not an activity)."""
    return last_activity(d for f in followups for d in (f.call_date, f.processed_at))
