"""What ``archiver status`` shows: one row per catalogued debt, read from the catalog tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlite_utils

__all__ = ["HOLD_ACTIONS", "RELEASE_ACTIONS", "debt_status"]

# Actions of events that put a debt on hold / take it off hold.
HOLD_ACTIONS = frozenset({"hold", "legal-hold", "legal_hold", "hold-on"})
RELEASE_ACTIONS = frozenset({"release", "unhold", "hold-off", "legal-hold-release"})

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
    manifest), on_hold (latest hold/release event), last_event, policy, policy_mode,
    debt_unavailable, dossier_sequence (latest dossier, or None).
    """
    sql = _STATUS_SQL
    args: list[Any] = []
    if debt_id is not None:
        sql += " where d.debt_id = ?"
        args.append(debt_id)
    sql += " order by d.debt_id"
    rows = [dict(r) for r in db.query(sql, args)]
    for row in rows:
        events = list(
            db.table("events").rows_where(
                "debt_id = ?", [row["debt_id"]], order_by="at desc, key desc"
            )
        )
        row["last_event"] = events[0]["action"] if events else None
        row["on_hold"] = _on_hold(e["action"] for e in events)
    return rows


def _on_hold(actions_newest_first: Iterable[str | None]) -> bool:
    for action in actions_newest_first:
        if action in HOLD_ACTIONS:
            return True
        if action in RELEASE_ACTIONS:
            return False
    return False
