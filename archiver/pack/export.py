"""The export event: handing a pack over is recorded in the debt's chain of custody.

After a pack is complete, ``archiver pack`` writes one immutable ``export`` event through the
event store (:func:`archiver.retention.events.write_event`: the next sequence number,
conditional, checksummed, locked like every event, and held while a matter is open). It says
who made the pack, when, from which manifest, and the SHA-256 of the pack's
``tagmanifest-sha256.txt``: that file names ``bag-info.txt`` and both payload manifests by their
SHA-256, and they name every file of the pack, so this one digest identifies the whole pack.
Later dossiers show it in their chain of custody.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from archiver.common.time import iso_precise
from archiver.retention.events import (
    EVENT_SCHEMA,
    EXPORT,
    EventSink,
    event_lock,
    open_matters,
    read_events,
    write_event,
)
from archiver.store.objects import ObjectStore

__all__ = ["export_event", "record_export"]


def export_event(
    *,
    debt_id: str,
    at: datetime,
    actor: str,
    reason: str | None,
    manifest: dict[str, Any],
    pack: dict[str, Any],
) -> dict[str, Any]:
    """The event of one pack handed over. ``manifest`` is ``{"key", "sha256", "sequence"}``,
    ``pack`` ``{"name", "serialization", "tagmanifest_sha256", "payload_oxum", "files"}``."""
    event: dict[str, Any] = {
        "schema": EVENT_SCHEMA,
        "action": EXPORT,
        "debt_id": debt_id,
        "at": iso_precise(at),
        "actor": actor,
        "manifest": manifest,
        "pack": pack,
        "objects": pack.get("files"),
    }
    if reason:
        event["reason"] = reason
    return event


def record_export(
    store: ObjectStore,
    event: dict[str, Any],
    *,
    now: datetime,
    catalog: EventSink | None = None,
) -> tuple[str, str, str | None]:
    """Store ``event`` (see the module docstring): ``(key, sha256, version_id)``. Written while
    the debt is held, it carries the hold itself, as hold events do."""
    debt_id = event["debt_id"]
    held = bool(open_matters(read_events(store, debt_id)))
    lock = event_lock(store, debt_id, now, legal_hold=held)
    return write_event(store, event, lock=lock, catalog=catalog)
