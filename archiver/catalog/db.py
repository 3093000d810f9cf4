"""The local catalog: a SQLite index of what is archived, rebuilt from S3 by
:func:`archiver.catalog.reindex.reindex`.

S3 stays the source of truth. The catalog only stores what manifests, events and dossier keys
already say (plus a local journal of runs and of objects stored before their manifest), so it
never holds a token, a client secret or a signed query string. It answers ``archiver status``
quickly and lets an interrupted run resume without downloading media again.

Everything sits behind one :class:`sqlite_utils.Database`, so tests use ``":memory:"``.
Datetimes are ISO 8601 strings exactly as the manifests carry them.

Schema (created if missing; ``pk`` = primary key):

``runs`` (pk ``run_id``) — local journal, not derivable from S3, kept by :meth:`Catalog.clear`
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
``stored_objects`` (pk ``key``) — local staging journal, kept by :meth:`Catalog.clear`
    key, debt_id, followup_id, kind, sha256, size, version_id, source, run_id
``dossiers`` (pk ``key``)
    key, debt_id, sequence, sha256, version_id, renderer_version
``events`` (pk ``key``) — legal hold / release / purge events written to S3
    key, debt_id, action, at, sha256, reason, actor, event (JSON of the whole event)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from archiver.common.redact import redact_mapping, strip_query
from archiver.common.time import iso_from_compact
from archiver.errors import ConfigError
from archiver.retention.events import hold_open
from archiver.store.keys import EVENT_KEY_RE

__all__ = ["Catalog"]

# Tables derived from S3; :meth:`Catalog.clear` empties these and only these.
_DERIVED_TABLES = ("debts", "manifests", "followups", "media", "problems", "dossiers", "events")
_LOCAL_TABLES = ("runs", "stored_objects")

# Option names that must never reach the catalog even if a caller passes them by mistake.


class Catalog:
    """A SQLite index of archived debts, manifests, followups, media, dossiers and events."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._create_schema()

    @classmethod
    def open(cls, path: str | Path) -> Catalog:
        """Open (or create) the catalog at ``path``; ``":memory:"`` gives a throwaway one."""
        if str(path) == ":memory:":
            return cls(sqlite_utils.Database(memory=True))
        try:
            db = sqlite_utils.Database(path)
            # WAL lets `archiver status` read while an archive run writes.
            db.enable_wal()
            return cls(db)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the catalog: {exc}", catalog=str(path)) from None

    # -- schema -------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        db = self.db
        db.table("runs").create(
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
            pk="run_id",
            if_not_exists=True,
        )
        db.table("debts").create(
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
            pk="debt_id",
            if_not_exists=True,
        )
        db.table("manifests").create(
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
            pk=("debt_id", "sequence"),
            if_not_exists=True,
        )
        db.table("followups").create(
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
            pk=("debt_id", "followup_id"),
            if_not_exists=True,
        )
        db.table("media").create(
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
            pk="key",
            if_not_exists=True,
        )
        db.table("problems").create(
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
            pk=("debt_id", "sequence", "idx"),
            if_not_exists=True,
        )
        db.table("stored_objects").create(
            {
                "key": str,
                "debt_id": str,
                "followup_id": str,
                "kind": str,
                "sha256": str,
                "size": int,
                "version_id": str,
                "source": str,
                "run_id": str,
            },
            pk="key",
            if_not_exists=True,
        )
        db.table("dossiers").create(
            {
                "key": str,
                "debt_id": str,
                "sequence": int,
                "sha256": str,
                "version_id": str,
                "renderer_version": str,
            },
            pk="key",
            if_not_exists=True,
        )
        db.table("events").create(
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
            pk="key",
            if_not_exists=True,
        )
        db.table("media").create_index(["debt_id", "followup_id", "kind"], if_not_exists=True)
        db.table("stored_objects").create_index(
            ["debt_id", "followup_id", "kind", "source"], if_not_exists=True
        )
        db.table("dossiers").create_index(["debt_id", "sequence"], if_not_exists=True)
        db.table("events").create_index(["debt_id", "at"], if_not_exists=True)

    # -- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        run_id: str,
        started_at: str,
        command: str,
        debt_ids: list[str],
        options: dict[str, Any],
    ) -> None:
        """Journal the start of a run. Secret-looking options are dropped, URLs lose queries."""
        self.db.table("runs").upsert(
            {
                "run_id": run_id,
                "started_at": started_at,
                "command": command,
                "debt_ids": json.dumps(list(debt_ids)),
                "options": json.dumps(redact_mapping(options), sort_keys=True, default=str),
                "status": "running",
            },
            pk="run_id",
        )

    def finish_run(
        self, run_id: str, *, finished_at: str, status: str, summary: dict[str, Any]
    ) -> None:
        """Journal the end of a run (``status`` such as ok / partial / failed)."""
        self.db.table("runs").upsert(
            {
                "run_id": run_id,
                "finished_at": finished_at,
                "status": status,
                "summary": json.dumps(redact_mapping(summary), sort_keys=True, default=str),
            },
            pk="run_id",
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs first, JSON columns decoded."""
        rows = self.db.table("runs").rows_where(
            order_by="started_at desc, run_id desc", limit=limit
        )
        out = []
        for row in rows:
            for name in ("debt_ids", "options", "summary"):
                if row.get(name) is not None:
                    row[name] = json.loads(row[name])
            out.append(row)
        return out

    # -- manifests ----------------------------------------------------------------------------

    def record_manifest(
        self,
        manifest: dict[str, Any],
        *,
        key: str,
        sha256: str,
        version_id: str | None,
        run_id: str | None = None,
    ) -> None:
        """Index one manifest (idempotent; manifests may arrive in any order).

        Rows shared between manifests (debt, followups, media) take their fields from the
        newest sequence that lists them, and keep the oldest sequence they were first seen in.
        """
        debt_id: str = manifest["debt_id"]
        seq: int = int(manifest["sequence"])
        followups: list[dict[str, Any]] = manifest.get("followups") or []
        problems: list[dict[str, Any]] = manifest.get("problems") or []
        all_media = [(f["id"], m) for f in followups for m in f.get("media") or []]
        policy = manifest.get("policy") or {}
        previous = manifest.get("previous") or {}
        debt_ref = manifest.get("debt") or {}
        summary = manifest.get("summary") or {}

        with self.db.atomic():
            self.db.table("manifests").upsert(
                {
                    "debt_id": debt_id,
                    "sequence": seq,
                    "key": key,
                    "sha256": sha256,
                    "version_id": version_id,
                    "created_at": manifest.get("created_at"),
                    "run_id": run_id or manifest.get("run_id"),
                    "previous_key": previous.get("key"),
                    "previous_sha256": previous.get("sha256"),
                    "policy": policy.get("name"),
                    "policy_sha256": policy.get("sha256"),
                    "policy_mode": policy.get("mode"),
                    "tool_version": (manifest.get("tool") or {}).get("version"),
                    "followups": len(followups),
                    "media": len(all_media),
                    "media_bytes": sum(int(m.get("size") or 0) for _, m in all_media),
                    "problems": len(problems),
                },
                pk=("debt_id", "sequence"),
            )

            current = self._get("debts", debt_id)
            if current is None or int(current["sequence"] or 0) <= seq:
                unavailable = manifest.get("debt_unavailable") or {}
                self.db.table("debts").upsert(
                    {
                        "debt_id": debt_id,
                        "sequence": seq,
                        "manifest_key": key,
                        "manifest_sha256": sha256,
                        "last_archived_at": manifest.get("created_at"),
                        "last_activity": summary.get("last_activity"),
                        "policy": policy.get("name"),
                        "policy_mode": policy.get("mode"),
                        "debt_record_key": debt_ref.get("key"),
                        "debt_record_sha256": debt_ref.get("sha256"),
                        "debt_unavailable": unavailable.get("reason"),
                    },
                    pk="debt_id",
                )

            self._record_followups(debt_id, seq, followups)
            self._record_media(debt_id, seq, all_media)
            # Staged objects now named by a manifest are no longer "stored before their manifest".
            media_keys = [m["key"] for _, m in all_media]
            if debt_ref.get("key"):
                media_keys.append(debt_ref["key"])
            media_keys += [f["record_key"] for f in followups if f.get("record_key")]
            for i in range(0, len(media_keys), 500):
                chunk = media_keys[i : i + 500]
                self.db.table("stored_objects").delete_where(
                    f"key in ({', '.join('?' * len(chunk))})", chunk
                )
            self._apply_retention_extensions(manifest.get("retention_extensions") or [])

            # A manifest's problem list is immutable: replace it whole, keyed by position.
            self.db.table("problems").delete_where("debt_id = ? and sequence = ?", [debt_id, seq])
            self.db.table("problems").insert_all(
                (
                    {
                        "debt_id": debt_id,
                        "sequence": seq,
                        "idx": i,
                        "type": p.get("type"),
                        "message": p.get("message"),
                        "followup_id": p.get("followup_id"),
                        "kind": p.get("kind"),
                        "source": strip_query(p.get("source")),
                    }
                    for i, p in enumerate(problems)
                ),
                pk=("debt_id", "sequence", "idx"),
            )

    def _record_followups(self, debt_id: str, seq: int, followups: list[dict[str, Any]]) -> None:
        existing = {
            r["followup_id"]: r
            for r in self.db.table("followups").rows_where("debt_id = ?", [debt_id])
        }
        rows = []
        for f in followups:
            old = existing.get(f["id"])
            # Rows are always complete: upsert_all fills columns missing from a row with NULL.
            if old is None or seq >= (old["last_seen_sequence"] or 0):
                row: dict[str, Any] = {
                    "debt_id": debt_id,
                    "followup_id": f["id"],
                    "type": f.get("type"),
                    "status": f.get("status"),
                    "call_date": f.get("call_date"),
                    "record_key": f.get("record_key"),
                    "record_sha256": f.get("record_sha256"),
                }
            else:
                row = dict(old)
            row["first_seen_sequence"] = min(seq, (old or {}).get("first_seen_sequence") or seq)
            row["last_seen_sequence"] = max(seq, (old or {}).get("last_seen_sequence") or seq)
            rows.append(row)
        if rows:
            self.db.table("followups").upsert_all(rows, pk=("debt_id", "followup_id"))

    def _record_media(
        self, debt_id: str, seq: int, all_media: list[tuple[str, dict[str, Any]]]
    ) -> None:
        existing = {
            r["key"]: r for r in self.db.table("media").rows_where("debt_id = ?", [debt_id])
        }
        rows = []
        for followup_id, m in all_media:
            old = existing.get(m["key"])
            if old is None or seq >= (old["last_sequence"] or 0):
                row: dict[str, Any] = dict(
                    key=m["key"],
                    debt_id=debt_id,
                    followup_id=followup_id,
                    kind=m.get("kind"),
                    sha256=m.get("sha256"),
                    size=m.get("size"),
                    version_id=m.get("version_id"),
                    content_type=m.get("content_type"),
                    sniffed_type=m.get("sniffed_type"),
                    # Manifests already hold the URL without its query; strip again anyway,
                    # the catalog must never hold a signature.
                    source=strip_query(m.get("source")),
                    retain_until=m.get("retain_until"),
                    retention_mode=m.get("retention_mode"),
                    legal_hold=1 if m.get("legal_hold") else 0,
                )
                if old is not None and (old["retain_until"] or "") > (row["retain_until"] or ""):
                    # Retention is only ever extended; a later extension may already be known.
                    row["retain_until"] = old["retain_until"]
            else:
                row = dict(old)
            row["first_sequence"] = min(seq, (old or {}).get("first_sequence") or seq)
            row["last_sequence"] = max(seq, (old or {}).get("last_sequence") or seq)
            rows.append(row)
        if rows:
            self.db.table("media").upsert_all(rows, pk="key")

    def _apply_retention_extensions(self, extensions: list[dict[str, Any]]) -> None:
        # ISO 8601 UTC strings of one format compare in time order.
        for ext in extensions:
            to = ext.get("to")
            if not to:
                continue
            self.db.execute(
                "update media set retain_until = ? where key = ? "
                "and (retain_until is null or retain_until < ?)",
                [to, ext.get("key"), to],
            )

    def latest_manifest(self, debt_id: str) -> dict[str, Any] | None:
        """The catalog row of the debt's highest-sequence manifest, or None."""
        rows = list(
            self.db.table("manifests").rows_where(
                "debt_id = ?", [debt_id], order_by="sequence desc", limit=1
            )
        )
        return rows[0] if rows else None

    def manifests(self, debt_id: str) -> list[dict[str, Any]]:
        """Every catalogued manifest of the debt, oldest sequence first."""
        return list(
            self.db.table("manifests").rows_where("debt_id = ?", [debt_id], order_by="sequence")
        )

    # -- staging, dossiers, events -----------------------------------------------------------

    def record_stored_object(
        self,
        *,
        debt_id: str,
        key: str,
        sha256: str,
        size: int,
        version_id: str | None,
        kind: str,
        followup_id: str | None,
        source: str | None,
        run_id: str | None,
    ) -> None:
        """Journal an object stored in S3 before the manifest naming it exists.

        A run killed mid-way and resumed finds it with :meth:`find_stored_media` and skips the
        download (the caller should still confirm the object exists in S3).
        """
        self.db.table("stored_objects").upsert(
            {
                "key": key,
                "debt_id": debt_id,
                "followup_id": followup_id,
                "kind": kind,
                "sha256": sha256,
                "size": size,
                "version_id": version_id,
                "source": strip_query(source),
                "run_id": run_id,
            },
            pk="key",
        )

    def find_stored_media(
        self, debt_id: str, followup_id: str, kind: str, source: str | None
    ) -> dict[str, Any] | None:
        """An already stored media object for this followup/kind/source, or None.

        Looks in the staging journal first (newest row), then in media named by manifests.
        The returned dict has key, sha256, size, version_id, source and ``origin``
        (``"staged"`` or ``"manifest"``).
        """
        src = strip_query(source)
        where = "debt_id = ? and followup_id = ? and kind = ? and source is ?"
        args = [debt_id, followup_id, kind, src]
        for table, origin in (("stored_objects", "staged"), ("media", "manifest")):
            rows = list(
                self.db.table(table).rows_where(where, args, order_by="rowid desc", limit=1)
            )
            if rows:
                row = rows[0]
                return {
                    "key": row["key"],
                    "sha256": row["sha256"],
                    "size": row["size"],
                    "version_id": row["version_id"],
                    "kind": row["kind"],
                    "followup_id": row["followup_id"],
                    "source": row["source"],
                    "origin": origin,
                }
        return None

    def record_dossier(
        self,
        *,
        debt_id: str,
        sequence: int,
        key: str,
        sha256: str,
        version_id: str | None,
        renderer_version: str | None,
    ) -> None:
        """Index one rendered PDF dossier."""
        self.db.table("dossiers").upsert(
            {
                "key": key,
                "debt_id": debt_id,
                "sequence": sequence,
                "sha256": sha256,
                "version_id": version_id,
                "renderer_version": renderer_version,
            },
            pk="key",
        )

    def record_event(self, event: dict[str, Any], *, key: str, sha256: str) -> None:
        """Index one legal hold / release / purge event stored at ``key``.

        ``debt_id``, ``action`` and ``at`` are read from the event (``at`` falls back to
        ``created_at``), else from the key ``debts/{id}/events/{timestamp}-{action}.json``.
        """
        parsed = EVENT_KEY_RE.match(key)
        debt_id = event.get("debt_id") or (parsed.group(1) if parsed else None)
        action = event.get("action") or (parsed.group(3) if parsed else None)
        at = event.get("at") or event.get("created_at")
        if not at and parsed:
            at = iso_from_compact(parsed.group(2))
        self.db.table("events").upsert(
            {
                "key": key,
                "debt_id": debt_id,
                "action": action,
                "at": at,
                "sha256": sha256,
                "reason": event.get("reason"),
                "actor": event.get("actor"),
                "event": json.dumps(redact_mapping(event), sort_keys=True, default=str),
            },
            pk="key",
        )

    # -- reading ------------------------------------------------------------------------------

    def status(self, debt_id: str | None = None) -> list[dict[str, Any]]:
        """One dict per catalogued debt (or just ``debt_id``), ordered by debt id.

        Keys: debt_id, sequence, manifest_key, manifest_sha256, last_archived_at,
        last_activity, followups, media, media_bytes, problems (counts of the latest
        manifest), on_hold (latest hold/release event), last_event, policy, policy_mode,
        debt_unavailable, dossier_sequence (latest dossier, or None).
        """
        sql = """
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
        args: list[Any] = []
        if debt_id is not None:
            sql += " where d.debt_id = ?"
            args.append(debt_id)
        sql += " order by d.debt_id"
        rows = [dict(r) for r in self.db.query(sql, args)]
        for row in rows:
            events = list(
                self.db.table("events").rows_where(
                    "debt_id = ?", [row["debt_id"]], order_by="at desc, key desc"
                )
            )
            row["last_event"] = events[0]["action"] if events else None
            row["on_hold"] = hold_open(e["action"] for e in reversed(events))
        return rows

    def clear(self, *, include_local: bool = False) -> None:
        """Empty every table derived from S3 (used by :func:`reindex`).

        The local journals (``runs``, ``stored_objects``) are kept unless ``include_local``.
        """
        tables = _DERIVED_TABLES + (_LOCAL_TABLES if include_local else ())
        with self.db.atomic():
            for name in tables:
                self.db.execute(f"delete from [{name}]")

    def counts(self) -> dict[str, int]:
        """Row count of every table (handy for reports and tests)."""
        return {name: self.db.table(name).count for name in _DERIVED_TABLES + _LOCAL_TABLES}

    def _get(self, table: str, pk: Any) -> dict[str, Any] | None:
        try:
            return dict(self.db.table(table).get(pk))
        except sqlite_utils.db.NotFoundError:
            return None
