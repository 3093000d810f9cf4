"""Legal holds on a debt's archive, and the immutable events that record them.

A legal hold overrides every maximum retention while a dispute is open: S3 refuses to delete a
held version, even with governance bypass. Placing a hold puts ``LegalHold=ON`` on **every**
stored version under ``debts/{id}/`` (records, media, debt records, manifests, dossiers and
earlier events; delete markers have nothing to hold); releasing lifts it from every version.
Each action is written down as an event at ``debts/{id}/events/{timestamp}-{action}.json``.

Decisions, written down so a compliance officer can check them:

* **Order and crash safety.** *Hold: event first, then the holds.* The event is the
  declaration that a dispute is open; as soon as it exists :func:`hold_active` is true, so an
  archive run stores new objects with the hold already on, and a crash half-way leaves the debt
  marked as held. Running ``hold`` again finds the open hold, writes no second event, and puts
  the hold on whatever is still missing. *Release: holds first, then the event.* A crash
  half-way leaves the debt marked as held (the conservative side), and running ``release``
  again lifts what is left and then writes the event. If the server refuses to lift any hold,
  no release event is written: the debt is still (partly) held and says so.
* **Idempotent.** ``hold`` on a debt already on hold and ``release`` on a debt not on hold
  write no event; the first completes any missing holds, the second changes nothing. The
  reason of the open hold stands until it is released.
* **Events are locked like evidence.** An event is written conditionally (never overwritten),
  with its SHA-256 checked by the server, in the Object Lock mode of the debt's latest manifest
  (GOVERNANCE when it has none) until the later of that manifest's retain-until date and
  :data:`EVENT_RETENTION` (6 years, the longest limitation period in the reference notes:
  Limitation Act 1980 s.5) after the event. Proof of a hold or of a deletion must outlive any
  claim about it.
* **Hold events carry the hold themselves** (written with legal hold ON), so the record of an
  open dispute cannot go while the dispute is open. A release lifts the hold from every
  version, hold events included, so once released every event is again deletable by its
  retention date only. Release events are written without a hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from archiver.common.canonical import canonical_sha256
from archiver.common.ids import check_id
from archiver.common.time import compact_stamp, iso, utcnow
from archiver.errors import RetentionError, StorageError, ValidationError
from archiver.manifest.reader import manifest_keys
from archiver.retention.policies import Duration, add_duration
from archiver.store import keys
from archiver.store.objects import Lock, ObjectStore, VersionInfo

if TYPE_CHECKING:
    from archiver.store.objects import Mode

__all__ = [
    "EVENT_RETENTION",
    "EVENT_SCHEMA",
    "Clock",
    "EventSink",
    "HoldRefusal",
    "HoldResult",
    "event_lock",
    "hold_active",
    "list_events",
    "place_hold",
    "refusal_reason",
    "release_hold",
    "write_event",
]

EVENT_SCHEMA = "getbill-archiver/event/v1"
# How long an event (hold, release, purge record) is kept at least, counted from the event.
EVENT_RETENTION = Duration(years=6)

Clock = Callable[[], datetime]
Action = Literal["hold", "release"]


class EventSink(Protocol):
    """What is needed of a catalog: :meth:`archiver.catalog.db.Catalog.record_event`."""

    def record_event(self, event: dict[str, Any], *, key: str, sha256: str) -> None: ...


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
    (``event_written`` False), the open hold event found (for a hold) or None.
    ``versions`` lists every version whose hold was set (or lifted) by this call.
    """

    action: Action
    debt_id: str
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
            "ok": self.ok,
        }


# ---------------------------------------------------------------------------------------------
# Reading events


def _event_action(key: str) -> str | None:
    m = keys.EVENT_KEY_RE.match(key)
    return m.group(3) if m else None


def _event_keys(store: ObjectStore, debt_id: str) -> list[str]:
    prefix = f"{keys.debt_prefix(debt_id)}events/"
    return sorted(k for k in store.list_keys(prefix) if keys.EVENT_KEY_RE.match(k))


def _latest_hold_event(store: ObjectStore, debt_id: str) -> str | None:
    """Key of the latest hold/release event (purge records do not count), or None."""
    latest = None
    # Keys sort by their timestamp, so the last hold/release key is the latest one.
    for key in _event_keys(store, debt_id):
        if _event_action(key) in ("hold", "release"):
            latest = key
    return latest


def hold_active(store: ObjectStore, debt_id: str) -> bool:
    """True when the latest hold/release event of ``debt_id`` is a hold.

    The archive pipeline asks this before storing, so that new objects of a debt in dispute
    are stored with the legal hold already on.
    """
    latest = _latest_hold_event(store, debt_id)
    return latest is not None and _event_action(latest) == "hold"


def list_events(store: ObjectStore, debt_id: str) -> list[dict[str, Any]]:
    """Every event of ``debt_id`` (hold, release, purge), parsed, oldest first.

    Each dict is the stored event plus ``"key"`` (where it is stored). Sorted by ``at``, then
    key. An event that is not JSON raises :class:`StorageError` naming its key.
    """
    found: list[dict[str, Any]] = []
    for key in _event_keys(store, debt_id):
        data = store.read_bytes(key)
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise StorageError(f"event is not JSON: {exc}", key=key, debt_id=debt_id) from None
        if isinstance(event, dict):
            found.append({**event, "key": key})
    return sorted(found, key=lambda e: (str(e.get("at", "")), e["key"]))


# ---------------------------------------------------------------------------------------------
# Writing events


def _latest_manifest_lock(store: ObjectStore, debt_id: str) -> Lock | None:
    stored = manifest_keys(store, debt_id)
    if not stored:
        return None
    info = store.head(stored[-1][1])
    if info is None or info.lock_mode is None or info.retain_until is None:
        return None
    return Lock(info.lock_mode, info.retain_until)


def event_lock(
    store: ObjectStore,
    debt_id: str,
    now: datetime,
    *,
    mode: Mode | None = None,
    legal_hold: bool = False,
) -> Lock:
    """The Object Lock of an event (see the module docstring): ``mode`` if given, else the
    latest manifest's, else GOVERNANCE; until the later of the latest manifest's retain-until
    and ``now`` + :data:`EVENT_RETENTION`."""
    manifest = _latest_manifest_lock(store, debt_id)
    until = add_duration(now.astimezone(UTC), EVENT_RETENTION)
    if manifest is not None and manifest.retain_until > until:
        until = manifest.retain_until
    chosen: Mode = mode or (manifest.mode if manifest else "GOVERNANCE")
    return Lock(chosen, until, legal_hold=legal_hold)


def write_event(
    store: ObjectStore,
    event: dict[str, Any],
    *,
    now: datetime,
    lock: Lock,
    catalog: EventSink | None = None,
) -> tuple[str, str, str | None]:
    """Store ``event`` (canonical JSON) at ``debts/{id}/events/{ts}-{action}.json``, conditional,
    checksummed and locked; index it in ``catalog`` if given. Returns ``(key, sha256,
    version_id)``."""
    key = keys.event_key(event["debt_id"], compact_stamp(now), event["action"])
    data, sha256 = canonical_sha256(event)
    stored = store.put_bytes(
        key,
        data,
        lock=lock,
        content_type="application/json",
        metadata={"kind": "event", "action": event["action"]},
    )
    if catalog is not None:
        catalog.record_event(event, key=key, sha256=sha256)
    return key, sha256, stored.version_id


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


def _check(debt_id: str, reason: str, actor: str) -> None:
    check_id(debt_id, what="debt id")
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


def _event(
    action: Action, debt_id: str, at: str, reason: str, actor: str, versions: list[VersionInfo]
) -> dict[str, Any]:
    return {
        "schema": EVENT_SCHEMA,
        "action": action,
        "debt_id": debt_id,
        "at": at,
        "reason": reason,
        "actor": actor,
        "objects": len({v.key for v in versions}),
        "versions": [{"key": v.key, "version_id": v.version_id} for v in versions],
    }


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
    clock: Clock = utcnow,
    catalog: EventSink | None = None,
) -> HoldResult:
    """Put a legal hold on every stored version of ``debt_id`` and record a ``hold`` event.

    The event is written first, with the hold on (see the module docstring for why); then the
    hold goes on every version, including any stored while this ran. On a debt already on hold
    no event is written and missing holds are completed. Versions the server refuses to hold
    are listed in ``refused`` with its reason. Raises :class:`ValidationError` for an empty
    reason or actor, :class:`UnsafeIdError` for a bad id, :class:`StorageError` when nothing is
    archived for the debt.
    """
    _check(debt_id, reason, actor)
    now = clock()
    versions = _versions(store, debt_id)
    if not versions:
        raise _nothing_archived(store, debt_id)
    result = HoldResult("hold", debt_id, reason.strip(), actor.strip(), iso(now))
    open_hold = _latest_hold_event(store, debt_id)
    if open_hold is not None and _event_action(open_hold) == "hold":
        result.already = True
        result.event_key = open_hold
    else:
        event = _event("hold", debt_id, result.at, result.reason, result.actor, versions)
        lock = event_lock(store, debt_id, now, legal_hold=True)
        key, sha, version_id = write_event(store, event, now=now, lock=lock, catalog=catalog)
        result.event_key, result.event_sha256, result.event_version_id = key, sha, version_id
        result.event_written = True
    # A fresh listing: includes the event and anything stored since the first listing.
    _set_holds(store, _versions(store, debt_id), True, result)
    return result


def release_hold(
    store: ObjectStore,
    debt_id: str,
    *,
    reason: str,
    actor: str,
    clock: Clock = utcnow,
    catalog: EventSink | None = None,
) -> HoldResult:
    """Lift the legal hold from every stored version of ``debt_id``, then record a ``release``
    event naming them.

    On a debt that is not on hold nothing changes and no event is written (``already``). If
    the server refuses to lift any hold, no event is written (the debt stays on hold; fix the
    cause and run it again) and ``refused`` says why, per version.
    """
    _check(debt_id, reason, actor)
    now = clock()
    versions = _versions(store, debt_id)
    if not versions:
        raise _nothing_archived(store, debt_id)
    result = HoldResult("release", debt_id, reason.strip(), actor.strip(), iso(now))
    if not hold_active(store, debt_id):
        result.already = True
        return result
    _set_holds(store, versions, False, result)
    if result.refused:
        return result
    lifted = [v for v in versions if (v.key, v.version_id) in set(result.versions)]
    event = _event("release", debt_id, result.at, result.reason, result.actor, lifted)
    lock = event_lock(store, debt_id, now, legal_hold=False)
    key, sha, version_id = write_event(store, event, now=now, lock=lock, catalog=catalog)
    result.event_key, result.event_sha256, result.event_version_id = key, sha, version_id
    result.event_written = True
    return result
