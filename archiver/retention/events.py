"""The event store of a debt: immutable records of holds, releases and purges.

Every event is one object ``debts/{id}/events/{timestamp}-{action}.json`` (canonical JSON,
schema :data:`EVENT_SCHEMA`). This module is the only place that writes or reads them; what
the events *mean* is decided by pure functions over what :func:`read_events` returns
(:func:`hold_open`, :func:`purged_versions`).

Decisions, written down so a compliance officer can check them:

* **Events are locked like evidence.** An event is written conditionally (never overwritten),
  with its SHA-256 checked by the server, in the Object Lock mode of the debt's latest manifest
  (GOVERNANCE when it has none) until the later of that manifest's retain-until date and
  :data:`EVENT_RETENTION` (6 years, the longest limitation period in the reference notes:
  Limitation Act 1980 s.5) after the event. Proof of a hold or of a deletion must outlive any
  claim about it.
* **Hold state** is the last ``hold`` or ``release`` event, oldest first; other actions (purge
  records) do not change it. No event at all means not on hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from archiver.archive.resume import manifest_keys
from archiver.common.canonical import canonical_sha256
from archiver.common.time import compact_stamp
from archiver.errors import StorageError
from archiver.retention.durations import Duration, add_duration
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock

if TYPE_CHECKING:
    from archiver.store.types import Mode

__all__ = [
    "EVENT_RETENTION",
    "EVENT_SCHEMA",
    "Clock",
    "EventReader",
    "EventSink",
    "event_action",
    "event_keys",
    "event_lock",
    "hold_open",
    "purged_versions",
    "read_events",
    "write_event",
]

EVENT_SCHEMA = "getbill-archiver/event/v1"
# How long an event (hold, release, purge record) is kept at least, counted from the event.
EVENT_RETENTION = Duration(years=6)

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


def event_action(key: str) -> str | None:
    """The action an event key names (``...-hold.json`` -> ``"hold"``), or None."""
    m = keys.EVENT_KEY_RE.match(key)
    return m.group(3) if m else None


def event_keys(store: EventReader, debt_id: str) -> list[str]:
    """Keys of every event of ``debt_id``, sorted (keys sort by their timestamp)."""
    prefix = f"{keys.debt_prefix(debt_id)}events/"
    return sorted(k for k in store.list_keys(prefix) if keys.EVENT_KEY_RE.match(k))


def read_events(store: EventReader, debt_id: str) -> list[dict[str, Any]]:
    """Every event of ``debt_id`` (hold, release, purge), parsed, oldest first.

    Each dict is the stored event plus ``"key"`` (where it is stored). Sorted by ``at``, then
    key. An event that is not JSON raises :class:`StorageError` naming its key; one that is
    JSON but not an object is skipped.
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
    return sorted(found, key=lambda e: (str(e.get("at", "")), e["key"]))


def hold_open(actions_oldest_first: Iterable[str | None]) -> bool:
    """Whether a debt is on hold after these event actions: the last ``hold``/``release``
    decides; any other action leaves the state as it was."""
    held = False
    for action in actions_oldest_first:
        if action == "hold":
            held = True
        elif action == "release":
            held = False
    return held


def purged_versions(
    events: Iterable[dict[str, Any]],
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Object versions the deletion records among ``events`` (as :func:`read_events` gives
    them) say were purged: ``(key, version_id) -> {"event_key", "at", "sha256"}``.

    A listed version may still exist (the server refused to delete it): callers check before
    treating it as gone. A version named by several records keeps the latest one.
    """
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for event in events:
        if event_action(event["key"]) != "purge":
            continue
        versions: list[Any] = event.get("versions") or []
        for v in versions:
            found[(v.get("key"), v.get("version_id"))] = {
                "event_key": event["key"],
                "at": event.get("at"),
                "sha256": v.get("sha256"),
            }
    return found


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
