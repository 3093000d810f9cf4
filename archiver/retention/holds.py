"""Legal holds on a debt's archive, per matter, and the immutable events that record them.

A legal hold overrides every maximum retention while a dispute is open: S3 refuses to delete a
held version, even with governance bypass. Holds are per *matter* (a dispute, a complaint, an
inquiry, named by its id): each ``hold`` of a matter and each ``release`` of it is an event
(:mod:`archiver.retention.events`), and the debt is held while any matter is open. S3 has one
legal hold flag per version: it is ON on **every** stored version under ``debts/{id}/``
(records, media, debt records, manifests, dossiers and events; delete markers have nothing to
hold) from the first open matter until the last one is released.

Decisions, written down so a compliance officer can check them:

* **Order and crash safety.** *Hold: event first, then the holds.* The event is the
  declaration that a dispute is open; as soon as it exists :func:`hold_active` is true, so an
  archive run stores new objects with the hold already on, and a crash half-way leaves the debt
  marked as held. Running ``hold`` again finds the matter open, writes no second event, and
  puts the hold on whatever is still missing. *Release of the last open matter: holds first,
  then the event.* A crash half-way leaves the debt marked as held (the conservative side),
  and running ``release`` again lifts what is left and then writes the event. If the server
  refuses to lift any hold, no release event is written: the debt is still (partly) held and
  says so. *Release of a matter while others stay open:* the event only; no hold changes.
* **Idempotent.** ``hold`` of a matter already open and ``release`` of a matter not open write
  no event; the first completes any missing holds, the second changes nothing. The reason of
  an open matter stands until it is released. Releasing a matter that was never held on a
  held debt is an error (a mistyped matter id must not pass for done).
* **Events are locked like evidence** (:mod:`archiver.retention.events`: conditional,
  checksummed, locked at least 6 years after the event, ordered by sequence number).
* **Events written while the debt is held carry the hold themselves** (hold events, and the
  release of a matter while others stay open), so the record of an open dispute cannot go
  while a dispute is open. Releasing the last matter lifts the hold from every version,
  events included, so once released every event is again deletable by its retention date
  only. That last release event is written without a hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from archiver.common.ids import check_id
from archiver.common.time import iso_precise, utcnow
from archiver.errors import RetentionError, StorageError, ValidationError
from archiver.retention.events import (
    DEFAULT_MATTER,
    EVENT_SCHEMA,
    Clock,
    EventSink,
    event_lock,
    event_matter,
    open_matters,
    read_events,
    write_event,
)
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import VersionInfo

__all__ = [
    "HoldRefusal",
    "HoldResult",
    "hold_active",
    "place_hold",
    "refusal_reason",
    "release_hold",
]

Action = Literal["hold", "release"]


@dataclass(frozen=True)
class HoldRefusal:
    """The server refused to change the hold of one version; ``reason`` is what it said."""

    key: str
    version_id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "version_id": self.version_id, "reason": self.reason}


@dataclass
class HoldResult:
    """What :func:`place_hold` / :func:`release_hold` did.

    ``event_key`` is the event written by this call, or, when none was needed
    (``event_written`` False), the hold event that opened the matter (for a hold) or None.
    ``versions`` lists every version whose hold was set (or lifted) by this call;
    ``open_matters`` the matters open after it (the debt is held while there is one).
    """

    action: Action
    debt_id: str
    matter: str
    reason: str
    actor: str
    at: str
    event_key: str | None = None
    event_sha256: str | None = None
    event_version_id: str | None = None
    event_written: bool = False
    already: bool = False
    versions: list[tuple[str, str | None]] = field(default_factory=list)
    refused: list[HoldRefusal] = field(default_factory=list)
    open_matters: list[str] = field(default_factory=list)

    @property
    def objects(self) -> int:
        """Distinct keys among ``versions``."""
        return len({k for k, _ in self.versions})

    @property
    def ok(self) -> bool:
        return not self.refused

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "debt_id": self.debt_id,
            "matter": self.matter,
            "reason": self.reason,
            "actor": self.actor,
            "at": self.at,
            "event_key": self.event_key,
            "event_sha256": self.event_sha256,
            "event_version_id": self.event_version_id,
            "event_written": self.event_written,
            "already": self.already,
            "objects": self.objects,
            "versions": len(self.versions),
            "refused": [r.to_dict() for r in self.refused],
            "open_matters": self.open_matters,
            "ok": self.ok,
        }


# ---------------------------------------------------------------------------------------------
# Hold state


def hold_active(store: ObjectStore, debt_id: str) -> bool:
    """True while any matter of ``debt_id`` is on hold (:func:`open_matters` over its events:
    one LIST and one GET per event).

    The archive pipeline asks this before storing, so that new objects of a debt in dispute
    are stored with the legal hold already on.
    """
    return bool(open_matters(read_events(store, debt_id)))


def refusal_reason(exc: RetentionError) -> str:
    """What the server said when refusing, e.g. ``AccessDenied: forbidden by object lock``."""
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code, message = err.get("Code", ""), err.get("Message", "")
        said = ": ".join(p for p in (code, message) if p)
        if said:
            return f"{exc.message}: {said}"
    code = exc.context.get("code")
    return f"{exc.message} ({code})" if code else exc.message


# ---------------------------------------------------------------------------------------------
# Hold and release


def _check(debt_id: str, matter: str | None, reason: str, actor: str) -> None:
    check_id(debt_id, what="debt id")
    if matter is not None:
        check_id(matter, what="matter id", debt_id=debt_id)
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("a reason is required for a legal hold or release", debt_id=debt_id)
    if not isinstance(actor, str) or not actor.strip():
        raise ValidationError("an actor (who asks) is required", debt_id=debt_id)


def _versions(store: ObjectStore, debt_id: str) -> list[VersionInfo]:
    found = [v for v in store.list_versions(keys.debt_prefix(debt_id)) if not v.is_delete_marker]
    return sorted(found, key=lambda v: (v.key, v.version_id or ""))


def _set_holds(
    store: ObjectStore, versions: Iterable[VersionInfo], on: bool, result: HoldResult
) -> None:
    for v in versions:
        try:
            store.set_legal_hold(v.key, v.version_id, on)
        except RetentionError as exc:
            result.refused.append(HoldRefusal(v.key, v.version_id, refusal_reason(exc)))
            continue
        result.versions.append((v.key, v.version_id))


def _event(result: HoldResult, versions: list[VersionInfo]) -> dict[str, Any]:
    return {
        "schema": EVENT_SCHEMA,
        "action": result.action,
        "debt_id": result.debt_id,
        "matter": result.matter,
        "at": result.at,
        "reason": result.reason,
        "actor": result.actor,
        "objects": len({v.key for v in versions}),
        "versions": [{"key": v.key, "version_id": v.version_id} for v in versions],
    }


def _store_event(
    store: ObjectStore,
    result: HoldResult,
    event: dict[str, Any],
    *,
    held: bool,
    now: datetime,
    catalog: EventSink | None,
) -> None:
    lock = event_lock(store, result.debt_id, now, legal_hold=held)
    key, sha, version_id = write_event(store, event, lock=lock, catalog=catalog)
    result.event_key, result.event_sha256, result.event_version_id = key, sha, version_id
    result.event_written = True


def _nothing_archived(store: ObjectStore, debt_id: str) -> StorageError:
    return StorageError(
        f"nothing is archived for debt {debt_id} in bucket {store.bucket}: "
        "there is nothing to hold or release",
        debt_id=debt_id,
        bucket=store.bucket,
    )


def place_hold(
    store: ObjectStore,
    debt_id: str,
    *,
    reason: str,
    actor: str,
    matter: str = DEFAULT_MATTER,
    clock: Clock = utcnow,
    catalog: EventSink | None = None,
) -> HoldResult:
    """Open ``matter`` on ``debt_id``: record a ``hold`` event, then put a legal hold on every
    stored version.

    The event is written first, with the hold on (see the module docstring for why); then the
    hold goes on every version, including any stored while this ran. When the matter is
    already open no event is written and missing holds are completed (``already``); another
    open matter does not stop a new one from being recorded. Versions the server refuses to
    hold are listed in ``refused`` with its reason. Raises :class:`ValidationError` for an
    empty reason or actor, :class:`UnsafeIdError` for a bad debt or matter id,
    :class:`StorageError` when nothing is archived for the debt.
    """
    _check(debt_id, matter, reason, actor)
    now = clock()
    versions = _versions(store, debt_id)
    if not versions:
        raise _nothing_archived(store, debt_id)
    result = HoldResult("hold", debt_id, matter, reason.strip(), actor.strip(), iso_precise(now))
    opened = open_matters(read_events(store, debt_id))
    if matter in opened:
        result.already = True
        result.event_key = opened[matter].get("key")
    else:
        _store_event(store, result, _event(result, versions), held=True, now=now, catalog=catalog)
    result.open_matters = [*opened, *([] if matter in opened else [matter])]
    # A fresh listing: includes the event and anything stored since the first listing.
    _set_holds(store, _versions(store, debt_id), True, result)
    return result


def release_hold(
    store: ObjectStore,
    debt_id: str,
    *,
    reason: str,
    actor: str,
    matter: str | None = None,
    clock: Clock = utcnow,
    catalog: EventSink | None = None,
) -> HoldResult:
    """Close ``matter`` on ``debt_id`` (the only open matter when None) with a ``release``
    event; when it was the last open matter, lift the legal hold from every stored version
    first.

    While other matters stay open the S3 holds stay on and the event is written held. On a
    debt that is not on hold, or when the matter was already released, nothing changes and no
    event is written (``already``). If the server refuses to lift any hold, no event is
    written (the debt stays on hold; fix the cause and run it again) and ``refused`` says
    why, per version. Raises :class:`ValidationError` when ``matter`` is None and several
    matters are open (context ``open_matters``), or when ``matter`` was never held on a held
    debt.
    """
    _check(debt_id, matter, reason, actor)
    now = clock()
    versions = _versions(store, debt_id)
    if not versions:
        raise _nothing_archived(store, debt_id)
    events = read_events(store, debt_id)
    opened = open_matters(events)
    if matter is None:
        if len(opened) > 1:
            raise ValidationError(
                f"debt {debt_id} is on hold for {len(opened)} matters ({', '.join(opened)}): "
                "say which one to release",
                debt_id=debt_id,
                open_matters=list(opened),
            )
        matter = next(iter(opened), DEFAULT_MATTER)
    result = HoldResult("release", debt_id, matter, reason.strip(), actor.strip(), iso_precise(now))
    still_open = [m for m in opened if m != matter]
    result.open_matters = list(opened) if matter not in opened else still_open
    if matter not in opened:
        held_before = any(e.get("action") == "hold" and event_matter(e) == matter for e in events)
        if opened and not held_before:
            raise ValidationError(
                f"debt {debt_id} has no hold for matter {matter!r}; open matters: "
                f"{', '.join(opened)}",
                debt_id=debt_id,
                matter=matter,
                open_matters=list(opened),
            )
        result.already = True
        return result
    if still_open:
        # Other disputes keep the debt held: the holds stay, and so does this record's.
        _store_event(store, result, _event(result, []), held=True, now=now, catalog=catalog)
        return result
    _set_holds(store, versions, False, result)
    if result.refused:
        return result
    lifted = [v for v in versions if (v.key, v.version_id) in set(result.versions)]
    _store_event(store, result, _event(result, lifted), held=False, now=now, catalog=catalog)
    return result
