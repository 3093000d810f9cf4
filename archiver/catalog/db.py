"""The local catalog: a SQLite index of what is archived, rebuilt from S3 by
:func:`archiver.catalog.reindex.reindex`; its tables are in :mod:`archiver.catalog.schema`.

S3 stays the source of truth. The catalog only stores what manifests, events and dossier keys
already say (plus a local journal of runs), so it never holds a token, a client secret or a
signed query string. It answers ``archiver status`` quickly (:mod:`archiver.catalog.status`);
an archive run keeps it up to date through :class:`archiver.catalog.recorder.CatalogRecorder`.

Everything sits behind one :class:`sqlite_utils.Database`, so tests use ``":memory:"``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from archiver.catalog.schema import DERIVED_TABLES, LOCAL_TABLES, create_schema
from archiver.catalog.status import debt_status
from archiver.common.redact import redact_mapping, strip_query
from archiver.common.time import compact_stamp, iso_from_compact, utcnow
from archiver.errors import ConfigError
from archiver.manifest.entries import DebtEntry, FollowupEntry, MediaEntry
from archiver.store.keys import EVENT_KEY_RE

__all__ = ["Catalog", "is_corrupt", "set_aside", "unusable"]

log = logging.getLogger(__name__)

# SQLite's primary result codes for a damaged file: "malformed", "file is not a database".
_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_corrupt(exc: BaseException) -> bool:
    """True when ``exc`` says the catalog file itself is damaged (rebuild it from S3), not
    that it cannot be reached (a missing folder, no permission, a full disk)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF in _CORRUPT_CODES


def unusable(path: str | Path, exc: sqlite3.Error) -> ConfigError:
    """The error of a catalog that cannot be used: corrupt (then `archiver reindex` rebuilds
    it) or unreachable."""
    if is_corrupt(exc):
        return ConfigError(
            f"the catalog is corrupt ({exc}); `archiver reindex` rebuilds it from S3",
            catalog=str(path),
        )
    return ConfigError(f"cannot open the catalog: {exc}", catalog=str(path))


def set_aside(path: Path) -> Path:
    """Rename a corrupt catalog file (and its WAL files) to ``<name>.corrupt-<time>``."""
    kept = path.with_name(f"{path.name}.corrupt-{compact_stamp(utcnow())}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(kept.with_name(kept.name + suffix))
    return kept


BUSY_TIMEOUT_S = 30.0
"""How long a catalog write waits for another process's (or thread's) lock."""


class Catalog:
    """A SQLite index of archived debts, manifests, followups, media, dossiers and events."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        create_schema(db)

    @classmethod
    def open(cls, path: str | Path, *, replace_corrupt: bool = False) -> Catalog:
        """Open (or create) the catalog at ``path``; ``":memory:"`` gives a throwaway one.

        A path that cannot be opened, or a corrupt file, is a :class:`ConfigError`. With
        ``replace_corrupt`` (a rebuild from S3 follows) a corrupt file, one that fails SQLite's
        quick check included, is kept aside as ``<name>.corrupt-<time>`` and a new, empty
        catalog takes its place.
        """
        try:
            return cls.connect(path, check=replace_corrupt)
        except sqlite3.Error as exc:
            if not (replace_corrupt and is_corrupt(exc)):
                raise unusable(path, exc) from None
        kept = set_aside(Path(path))
        log.warning("the catalog %s was corrupt (kept as %s); starting a new one", path, kept)
        try:
            return cls.connect(path)
        except sqlite3.Error as exc:
            raise unusable(path, exc) from None

    @classmethod
    def connect(cls, path: str | Path, *, check: bool = False) -> Catalog:
        """Like :meth:`open`, but SQLite's own errors are raised as they are; with ``check``,
        SQLite's quick check runs too (a corrupt file raises :class:`sqlite3.DatabaseError`)."""
        if str(path) == ":memory:":
            return cls(sqlite_utils.Database(memory=True))
        # Several runs may share one catalog (sync shards on one machine, a manual archive
        # during a scheduled one): wait for another writer's lock instead of failing.
        db = sqlite_utils.Database(sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S))
        try:
            # WAL lets `archiver status` read while an archive run writes.
            if db.journal_mode != "wal":
                db.enable_wal()
            if check:
                found = [row[0] for row in db.execute("pragma quick_check").fetchall()]
                if found != ["ok"]:
                    fault = sqlite3.DatabaseError(f"the quick check failed: {found[0]}")
                    fault.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
                    raise fault
            return cls(db)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        """Close the connection (the WAL is written back into the file)."""
        self.db.close()

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
        followups = [FollowupEntry.from_json(f) for f in manifest.get("followups") or []]
        problems: list[dict[str, Any]] = manifest.get("problems") or []
        all_media = [(f.id, m) for f in followups for m in f.media or []]
        policy = manifest.get("policy") or {}
        previous = manifest.get("previous") or {}
        debt_ref = DebtEntry.from_json(manifest["debt"]) if manifest.get("debt") else None
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
                    "media_bytes": sum(int(m.size or 0) for _, m in all_media),
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
                        "debt_record_key": debt_ref.key if debt_ref else None,
                        "debt_record_sha256": debt_ref.sha256 if debt_ref else None,
                        "debt_unavailable": unavailable.get("reason"),
                    },
                    pk="debt_id",
                )

            self._record_followups(debt_id, seq, followups)
            self._record_media(debt_id, seq, all_media)
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

    def _record_followups(self, debt_id: str, seq: int, followups: list[FollowupEntry]) -> None:
        existing = {
            r["followup_id"]: r
            for r in self.db.table("followups").rows_where("debt_id = ?", [debt_id])
        }
        rows = []
        for f in followups:
            old = existing.get(f.id)
            # Rows are always complete: upsert_all fills columns missing from a row with NULL.
            if old is None or seq >= (old["last_seen_sequence"] or 0):
                row: dict[str, Any] = {
                    "debt_id": debt_id,
                    "followup_id": f.id,
                    "type": f.type,
                    "status": f.status,
                    "call_date": f.call_date,
                    "record_key": f.record_key,
                    "record_sha256": f.record_sha256,
                }
            else:
                row = dict(old)
            row["first_seen_sequence"] = min(seq, (old or {}).get("first_seen_sequence") or seq)
            row["last_seen_sequence"] = max(seq, (old or {}).get("last_seen_sequence") or seq)
            rows.append(row)
        if rows:
            self.db.table("followups").upsert_all(rows, pk=("debt_id", "followup_id"))

    def _record_media(
        self, debt_id: str, seq: int, all_media: list[tuple[str, MediaEntry]]
    ) -> None:
        existing = {
            r["key"]: r for r in self.db.table("media").rows_where("debt_id = ?", [debt_id])
        }
        rows = []
        for followup_id, m in all_media:
            old = existing.get(m.key)
            if old is None or seq >= (old["last_sequence"] or 0):
                row: dict[str, Any] = dict(
                    key=m.key,
                    debt_id=debt_id,
                    followup_id=followup_id,
                    kind=m.kind,
                    sha256=m.sha256,
                    size=m.size,
                    version_id=m.version_id,
                    content_type=m.content_type,
                    sniffed_type=m.sniffed_type,
                    # Manifests already hold the URL without its query; strip again anyway,
                    # the catalog must never hold a signature.
                    source=strip_query(m.source),
                    retain_until=m.retain_until,
                    retention_mode=m.retention_mode,
                    legal_hold=1 if m.legal_hold else 0,
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

    # -- dossiers, events -------------------------------------------------------------------

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

    # -- the bucket it indexes ----------------------------------------------------------------

    def bucket(self) -> str | None:
        """The bucket this catalog indexes (None until a writing command names one)."""
        if "meta" not in self.db.table_names():
            return None
        row = self._get("meta", "bucket")
        return str(row["value"]) if row else None

    def claim_bucket(self, bucket: str, *, switch: bool = False) -> None:
        """Record that this catalog indexes ``bucket``. A catalog of another bucket is refused
        (:class:`ConfigError`: its rows would mix two buckets' archives) unless ``switch``,
        which empties it first, the local journal included."""
        known = self.bucket()
        if known == bucket:
            return
        if known is not None and not switch:
            raise ConfigError(f"this catalog indexes bucket {known!r}, not {bucket!r}")
        with self.db.atomic():
            if known is not None:
                self.clear(include_local=True)
            self.db.table("meta").upsert({"name": "bucket", "value": bucket}, pk="name")

    # -- reading ------------------------------------------------------------------------------

    def status(self, debt_id: str | None = None) -> list[dict[str, Any]]:
        """One dict per catalogued debt (or just ``debt_id``): see
        :func:`archiver.catalog.status.debt_status`. A catalog corrupted inside (the quick
        check at open only reads its header) is a :class:`ConfigError` naming `reindex`."""
        try:
            return debt_status(self.db, debt_id)
        except sqlite3.DatabaseError as exc:
            path = self.db.conn.execute("pragma database_list").fetchone()[2]
            raise unusable(path, exc) from None

    def clear(self, *, include_local: bool = False) -> None:
        """Empty every table derived from S3 (used by :func:`reindex`).

        The local journal (``runs``) is kept unless ``include_local``.
        """
        tables = DERIVED_TABLES + (LOCAL_TABLES if include_local else ())
        with self.db.atomic():
            for name in tables:
                self.db.execute(f"delete from [{name}]")

    def _get(self, table: str, pk: Any) -> dict[str, Any] | None:
        try:
            return dict(self.db.table(table).get(pk))
        except sqlite_utils.db.NotFoundError:
            return None
