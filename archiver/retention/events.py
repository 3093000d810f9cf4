"""The event store of a debt: immutable records of holds, releases, purges and exports.

Every event is one object ``debts/{id}/events/{sequence:08d}.json`` (canonical JSON, schema
:data:`EVENT_SCHEMA`). This module is the only place that writes or reads them; what the
events *mean* is decided by pure functions over what :func:`read_events` returns
(:func:`open_matters`, :func:`hold_open`, :func:`purged_versions`).

Decisions, written down so a compliance officer can check them:

* **Order comes from the store, never from a clock.** Each event claims the next sequence
  number of its debt with a conditional create (``If-None-Match: *``): when another writer
  took that number first (the key holds other bytes), the event takes the one after, a
  bounded number of times. Events are ordered by that number. The time of the writer's clock
  is kept in the event (``at``) as data only, so a machine whose clock is behind cannot put
  its hold before an earlier release. Events stored by earlier versions under
  ``debts/{id}/events/{timestamp}-{action}.json`` are still read, ordered by that timestamp
  and before every sequenced event (they were all written before it).
* **Events are locked like evidence.** An event is written conditionally (never overwritten),
  with its SHA-256 checked by the server, in the Object Lock mode of the debt's latest manifest
  (GOVERNANCE when it has none) until the later of that manifest's retain-until date and
  :data:`EVENT_RETENTION` (6 years, the longest limitation period in the reference notes:
  Limitation Act 1980 s.5) after the event. Proof of a hold or of a deletion must outlive any
  claim about it.
* **Holds are per matter** (a dispute, a complaint, an inquiry: its ``matter`` id). A ``hold``
  event opens its matter, a ``release`` event closes its matter; the debt is on hold while any
  matter is open (:func:`open_matters`). Events written before matters existed carry none: a
  hold then opens :data:`DEFAULT_MATTER`, a release then closes every open matter (it lifted
  the one hold there was). Other actions (purge records) change nothing. No event at all means
  not on hold.
* **A purge writes two records.** Before deleting, an *intent* (``"stage": "intent"``: the
  versions it is about to delete); after, an *outcome* (``"stage": "outcome"``, naming its
  intent: the versions actually deleted, the refusals apart). Only outcomes (and deletion
  records of earlier versions, which carry no stage) say that a version was purged
  (:func:`purged_versions`); an intent no outcome names is a purge that was interrupted
  (:func:`unfinished_purges`), which the next purge completes.
* **An export is part of the chain of custody.** Handing an evidence pack over
  (``archiver pack``) writes an ``export`` event (:data:`EXPORT`): who, when, which manifest,
  and the SHA-256 of the pack's tag manifest, which names every file of the pack. It changes
  no hold and purges nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from archiver.common.canonical import canonical_sha256
from archiver.errors import ObjectConflictError, StorageError
from archiver.manifest.reader import manifest_keys
from archiver.retention.durations import Duration, add_duration
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock

if TYPE_CHECKING:
    from archiver.store.types import Mode

__all__ = [
    "DEFAULT_MATTER",
    "EVENT_RETENTION",
    "EVENT_SCHEMA",
    "EXPORT",
    "PURGE_INTENT",
    "PURGE_OUTCOME",
    "Clock",
    "EventReader",
    "EventSink",
    "event_keys",
    "event_lock",
    "event_matter",
    "event_order",
    "hold_open",
    "open_matters",
    "purged_versions",
    "read_events",
    "unfinished_purges",
    "write_event",
]

EVENT_SCHEMA = "getbill-archiver/event/v1"
# How long an event (hold, release, purge record) is kept at least, counted from the event.
EVENT_RETENTION = Duration(years=6)
# The matter of a hold placed without one, and of hold events written before matters existed.
DEFAULT_MATTER = "default"
# The two records of one purge (``"stage"`` of a ``purge`` event; see the module docstring).
PURGE_INTENT = "intent"
PURGE_OUTCOME = "outcome"
# The action of the event an evidence pack handed over writes (see the module docstring).
EXPORT = "export"
# How many sequence numbers one write tries before giving up (each loss means another writer
# stored an event meanwhile; this many in a row means something is wrong).
MAX_SEQUENCE_CLAIMS = 32

Clock = Callable[[], datetime]


class EventSink(Protocol):
    """What is needed of a catalog: :meth:`archiver.catalog.db.Catalog.record_event`."""

    def record_event(self, event: dict[str, Any], *, key: str, sha256: str) -> None: ...


class EventReader(Protocol):
    """The two read methods of :class:`archiver.store.objects.ObjectStore` events need."""

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def read_bytes(self, key: str, version_id: str | None = None) -> bytes: ...


# ---------------------------------------------------------------------------------------------
# Reading


def event_order(key: str) -> tuple[int, int, str]:
    """Sort key of an event key: events of earlier versions (timestamp keys) first, by their
    timestamp, then sequenced events by their number. Raises ValueError for other keys."""
    m = keys.EVENT_KEY_RE.match(key)
    if m is None:
        raise ValueError(f"not an event key: {key!r}")
    marker = m.group(2)
    if marker.isdigit():
        return (1, int(marker), key)
    # Same prefix within a debt: the key sorts by its timestamp.
    return (0, 0, key)


def _sequence(key: str) -> int | None:
    m = keys.EVENT_KEY_RE.match(key)
    return int(m.group(2)) if m and m.group(2).isdigit() else None


def event_keys(store: EventReader, debt_id: str) -> list[str]:
    """Keys of every event of ``debt_id``, in event order (:func:`event_order`)."""
    prefix = f"{keys.debt_prefix(debt_id)}events/"
    return sorted(
        (k for k in store.list_keys(prefix) if keys.EVENT_KEY_RE.match(k)), key=event_order
    )


def read_events(store: EventReader, debt_id: str) -> list[dict[str, Any]]:
    """Every event of ``debt_id`` (hold, release, purge, export), parsed, in event order (by
    sequence number, see the module docstring; never by the ``at`` a clock gave).

    Each dict is the stored event plus ``"key"`` (where it is stored). An event that is not
    JSON raises :class:`StorageError` naming its key; one that is JSON but not an object is
    skipped.
    """
    found: list[dict[str, Any]] = []
    for key in event_keys(store, debt_id):
        data = store.read_bytes(key)
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise StorageError(f"event is not JSON: {exc}", key=key, debt_id=debt_id) from None
        if isinstance(event, dict):
            found.append({**event, "key": key})
    return found


def event_matter(event: Mapping[str, Any]) -> str:
    """The matter a hold or release event is about (:data:`DEFAULT_MATTER` when it names
    none)."""
    matter = event.get("matter")
    return matter if isinstance(matter, str) and matter else DEFAULT_MATTER


def open_matters(events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The matters on hold after ``events`` (oldest first, as :func:`read_events` gives
    them): matter id -> the hold event that opened it, in the order they were opened.

    A hold of a matter already open changes nothing (the first hold stands); a release closes
    its matter, or every matter when it names none (written before matters existed).
    """
    opened: dict[str, Mapping[str, Any]] = {}
    for event in events:
        action = event.get("action")
        if action == "hold":
            opened.setdefault(event_matter(event), event)
        elif action == "release":
            if event.get("matter"):
                opened.pop(event_matter(event), None)
            else:
                opened.clear()
    return opened


def hold_open(events: Iterable[Mapping[str, Any] | str | None]) -> bool:
    """Whether a debt is on hold after ``events`` (oldest first): any matter open
    (:func:`open_matters`). An item may also be an action alone (``"hold"``), standing for an
    event of that action that names no matter, for callers that only know actions."""
    return bool(
        open_matters(
            {"action": e} if isinstance(e, str) else (e if e is not None else {}) for e in events
        )
    )


def purged_versions(
    events: Iterable[dict[str, Any]],
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Object versions the deletion records among ``events`` (as :func:`read_events` gives
    them) say were purged: ``(key, version_id) -> {"event_key", "at", "sha256"}``.

    Only outcome records count (and records of earlier versions, written before the deletes
    and so naming what was to be deleted): an intent says what a purge was about to do, not
    what it did. A record of an earlier version may name a version that still exists (the
    server refused to delete it): callers check before treating it as gone. A version named
    by several records keeps the latest one.
    """
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for event in events:
        if event.get("action") != "purge" or event.get("stage") == PURGE_INTENT:
            continue
        versions: list[Any] = event.get("versions") or []
        for v in versions:
            found[(v.get("key"), v.get("version_id"))] = {
                "event_key": event["key"],
                "at": event.get("at"),
                "sha256": v.get("sha256"),
            }
    return found


def unfinished_purges(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The purge intents among ``events`` that no outcome names (``"intent": key``): purges
    interrupted between their intent and their outcome, oldest first."""
    events = list(events)
    closed = {
        e.get("intent")
        for e in events
        if e.get("action") == "purge" and e.get("stage") == PURGE_OUTCOME
    }
    return [
        e
        for e in events
        if e.get("action") == "purge"
        and e.get("stage") == PURGE_INTENT
        and e.get("key") not in closed
    ]


# ---------------------------------------------------------------------------------------------
# Writing


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
    lock: Lock,
    catalog: EventSink | None = None,
) -> tuple[str, str, str | None]:
    """Store ``event`` (canonical JSON) at ``debts/{id}/events/{sequence:08d}.json``,
    conditional, checksummed and locked; index it in ``catalog`` if given. Returns ``(key,
    sha256, version_id)``.

    The sequence number is the next after the highest listed; when another writer took it
    (the key holds other bytes), the next one is tried, up to :data:`MAX_SEQUENCE_CLAIMS`
    times, then :class:`StorageError`. The time is the event's own ``at`` (data only).
    """
    debt_id = event["debt_id"]
    taken = [n for n in map(_sequence, event_keys(store, debt_id)) if n is not None]
    sequence = max(taken, default=0) + 1
    data, sha256 = canonical_sha256(event)
    for _ in range(MAX_SEQUENCE_CLAIMS):
        key = keys.event_key(debt_id, sequence)
        try:
            stored = store.put_bytes(
                key,
                data,
                lock=lock,
                content_type="application/json",
                metadata={"kind": "event", "action": event["action"]},
            )
        except ObjectConflictError:
            sequence += 1  # another writer's event holds this number
            continue
        if catalog is not None:
            catalog.record_event(event, key=key, sha256=sha256)
        return key, sha256, stored.version_id
    raise StorageError(
        f"no event sequence number could be claimed in {MAX_SEQUENCE_CLAIMS} tries "
        "(other writers took each one)",
        debt_id=debt_id,
        key=keys.event_key(debt_id, sequence),
    )
