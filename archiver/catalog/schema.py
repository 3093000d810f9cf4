"""The tables of the catalog (created if missing; ``pk`` = primary key).

Datetimes are ISO 8601 strings exactly as the manifests carry them.

``runs`` (pk ``run_id``) — local journal, not derivable from S3, kept by ``Catalog.clear``
    run_id, started_at, finished_at, command, debt_ids (JSON list), options (JSON object),
    status, summary (JSON object)
``debts`` (pk ``debt_id``) — one row per debt, from its latest manifest
    debt_id, sequence, manifest_key, manifest_sha256, last_archived_at (manifest created_at),
    last_activity (summary.last_activity), policy, policy_mode, debt_record_key,
    debt_record_sha256, debt_unavailable (reason when the debt record could not be read)
``manifests`` (pk ``debt_id, sequence``)
    debt_id, sequence, key, sha256, version_id, created_at, run_id, previous_key,
    previous_sha256, policy, policy_sha256, policy_mode, tool_version, followups, media,
    media_bytes, problems (counts computed from the manifest's own lists)
``followups`` (pk ``debt_id, followup_id``) — fields from the newest manifest listing it
    debt_id, followup_id, type, status, call_date, record_key, record_sha256,
    first_seen_sequence, last_seen_sequence
``media`` (pk ``key``) — fields from the newest manifest listing it
    key, debt_id, followup_id, kind, sha256, size, version_id, content_type, sniffed_type,
    source (URL without query string), retain_until, retention_mode, legal_hold,
    first_sequence, last_sequence
``problems`` (pk ``debt_id, sequence, idx``)
    debt_id, sequence, idx, type, message, followup_id, kind, source
``dossiers`` (pk ``key``)
    key, debt_id, sequence, sha256, version_id, renderer_version
``events`` (pk ``key``) — legal hold / release / purge events written to S3
    key, debt_id, action, at, sha256, reason, actor, event (JSON of the whole event)
"""

from __future__ import annotations

import sqlite_utils

__all__ = ["DERIVED_TABLES", "LOCAL_TABLES", "create_schema"]

_TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "runs": (
        {
            "run_id": str,
            "started_at": str,
            "finished_at": str,
            "command": str,
            "debt_ids": str,
            "options": str,
            "status": str,
            "summary": str,
        },
        "run_id",
    ),
    "debts": (
        {
            "debt_id": str,
            "sequence": int,
            "manifest_key": str,
            "manifest_sha256": str,
            "last_archived_at": str,
            "last_activity": str,
            "policy": str,
            "policy_mode": str,
            "debt_record_key": str,
            "debt_record_sha256": str,
            "debt_unavailable": str,
        },
        "debt_id",
    ),
    "manifests": (
        {
            "debt_id": str,
            "sequence": int,
            "key": str,
            "sha256": str,
            "version_id": str,
            "created_at": str,
            "run_id": str,
            "previous_key": str,
            "previous_sha256": str,
            "policy": str,
            "policy_sha256": str,
            "policy_mode": str,
            "tool_version": str,
            "followups": int,
            "media": int,
            "media_bytes": int,
            "problems": int,
        },
        ("debt_id", "sequence"),
    ),
    "followups": (
        {
            "debt_id": str,
            "followup_id": str,
            "type": str,
            "status": str,
            "call_date": str,
            "record_key": str,
            "record_sha256": str,
            "first_seen_sequence": int,
            "last_seen_sequence": int,
        },
        ("debt_id", "followup_id"),
    ),
    "media": (
        {
            "key": str,
            "debt_id": str,
            "followup_id": str,
            "kind": str,
            "sha256": str,
            "size": int,
            "version_id": str,
            "content_type": str,
            "sniffed_type": str,
            "source": str,
            "retain_until": str,
            "retention_mode": str,
            "legal_hold": int,
            "first_sequence": int,
            "last_sequence": int,
        },
        "key",
    ),
    "problems": (
        {
            "debt_id": str,
            "sequence": int,
            "idx": int,
            "type": str,
            "message": str,
            "followup_id": str,
            "kind": str,
            "source": str,
        },
        ("debt_id", "sequence", "idx"),
    ),
    "dossiers": (
        {
            "key": str,
            "debt_id": str,
            "sequence": int,
            "sha256": str,
            "version_id": str,
            "renderer_version": str,
        },
        "key",
    ),
    "events": (
        {
            "key": str,
            "debt_id": str,
            "action": str,
            "at": str,
            "sha256": str,
            "reason": str,
            "actor": str,
            "event": str,
        },
        "key",
    ),
}

_INDEXES = (
    ("media", ["debt_id", "followup_id", "kind"]),
    ("dossiers", ["debt_id", "sequence"]),
    ("events", ["debt_id", "at"]),
)

DERIVED_TABLES = ("debts", "manifests", "followups", "media", "problems", "dossiers", "events")
"""Tables derived from S3: ``Catalog.clear`` empties these and only these."""
LOCAL_TABLES = ("runs",)
"""Local journals, not derivable from S3."""


def create_schema(db: sqlite_utils.Database) -> None:
    """Create every table and index that is missing (an existing catalog is left as it is).

    In one ``BEGIN IMMEDIATE`` transaction: runs opening a new catalog at the same moment
    (sync shards on one machine) wait for each other's write lock instead of one failing
    on a read lock it cannot upgrade."""
    if set(_TABLES) <= set(db.table_names()):
        indexes = {tuple(i.columns) for name, _ in _INDEXES for i in db.table(name).indexes}
        if all(tuple(cols) in indexes for _, cols in _INDEXES):
            return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        for name, (columns, pk) in _TABLES.items():
            db.table(name).create(columns, pk=pk, if_not_exists=True)
        for name, indexed in _INDEXES:
            db.table(name).create_index(indexed, if_not_exists=True)
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise
