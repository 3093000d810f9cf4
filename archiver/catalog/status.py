"""What ``archiver status`` shows: one row per catalogued debt, read from the catalog tables."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from archiver.retention.events import event_order, open_matters

__all__ = ["debt_status"]

_STATUS_SQL = """
    select d.debt_id, d.sequence, d.manifest_key, d.manifest_sha256,
           d.last_archived_at, d.last_activity, d.policy, d.policy_mode,
           d.debt_unavailable,
           coalesce(m.followups, 0) as followups, coalesce(m.media, 0) as media,
           coalesce(m.media_bytes, 0) as media_bytes,
           coalesce(m.problems, 0) as problems,
           (select max(sequence) from dossiers x where x.debt_id = d.debt_id)
               as dossier_sequence
    from debts d
    left join manifests m on m.debt_id = d.debt_id and m.sequence = d.sequence
"""


def debt_status(db: sqlite_utils.Database, debt_id: str | None = None) -> list[dict[str, Any]]:
    """One dict per catalogued debt (or just ``debt_id``), ordered by debt id.

    Keys: debt_id, sequence, manifest_key, manifest_sha256, last_archived_at,
    last_activity, followups, media, media_bytes, problems (counts of the latest
    manifest), on_hold (any legal-hold matter open), open_matters (their ids, in the order
    they were opened), last_event, policy, policy_mode, debt_unavailable, dossier_sequence
    (latest dossier, or None). Events are ordered by their key (sequence), never by a clock.
    """
    sql = _STATUS_SQL
    args: list[Any] = []
    if debt_id is not None:
        sql += " where d.debt_id = ?"
        args.append(debt_id)
    sql += " order by d.debt_id"
    rows = [dict(r) for r in db.query(sql, args)]
    for row in rows:
        events = sorted(
            db.table("events").rows_where("debt_id = ?", [row["debt_id"]]),
            key=lambda e: event_order(e["key"]),
        )
        row["last_event"] = events[-1]["action"] if events else None
        matters = open_matters(_event(e) for e in events)
        row["on_hold"] = bool(matters)
        row["open_matters"] = list(matters)
    return rows


def _event(row: dict[str, Any]) -> dict[str, Any]:
    """The stored event of a catalog row (its JSON column), or what the row's columns say."""
    try:
        event = json.loads(row.get("event") or "null")
    except ValueError:
        event = None
    event = event if isinstance(event, dict) else {}
    return {**event, "action": event.get("action") or row.get("action")}
