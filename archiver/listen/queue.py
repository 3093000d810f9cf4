"""The delivery queue: a local SQLite file of the deliveries stored in S3 and what became of
each. The stored deliveries are the work; this file is their durable "archived" mark.

A row goes ``receiving`` (written before the S3 PUT) -> ``stored`` (after it, before the
200) -> ``resolved`` (its debt is known) -> ``archived``; or ends ``ignored`` (an event that
concerns no debt), ``malformed`` (stored and reported) or ``failed`` (given up after
retries, or the API says the followup does not exist; the hourly sync still covers it).

Crash safety: the row exists before the object may, so no stored delivery lacks a row. On
start, :meth:`DeliveryQueue.receiving` lists the rows of PUTs a crash interrupted: the
listener asks S3 whether each object exists and keeps (``stored``) or forgets the row (no
200 was sent for it). A row is ``archived`` only after its debt's manifest is written, so a
crash between the 200 and the archive leaves it ``stored`` or ``resolved``: picked up again.
WAL with ``synchronous=NORMAL``: every commit survives the process being killed; a power
loss may take the last commits (the hourly sync covers those deliveries' debts).

Thread-safe: one connection behind a lock (commits are short; the HTTP handlers and the
worker's threads share it).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from archiver.errors import ConfigError

__all__ = ["STATES", "DeliveryQueue", "QueuedDelivery"]

STATES = ("receiving", "stored", "resolved", "archived", "ignored", "malformed", "failed")
WAITING = ("receiving", "stored", "resolved")
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    sha256 TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    received_ts REAL NOT NULL,
    event_type TEXT,
    hint_kind TEXT,
    hint_ref TEXT,
    debt_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    done_ts REAL,
    manifest_key TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (state, not_before);
CREATE INDEX IF NOT EXISTS deliveries_debt ON deliveries (debt_id, state);
"""


@dataclass(frozen=True)
class QueuedDelivery:
    """One row of the queue."""

    sha256: str
    state: str
    received_ts: float
    event_type: str | None
    hint_kind: str | None
    hint_ref: str | None
    debt_id: str | None
    attempts: int
    not_before: float
    last_error: str | None
    done_ts: float | None
    manifest_key: str | None


_COLUMNS = ", ".join(QueuedDelivery.__dataclass_fields__)


class DeliveryQueue:
    """The queue file at ``path`` (``:memory:`` for a throwaway one)."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._db = connection
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> DeliveryQueue:
        """Open (create) the queue file; a folder that cannot hold it is a :class:`ConfigError`."""
        name = str(path)
        if name != ":memory:":
            try:
                Path(name).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the folder of {name}: {exc.strerror}") from None
        try:
            db = sqlite3.connect(name, timeout=10, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise ConfigError(
                    f"the listener queue {name} was written by a newer archiver "
                    f"(schema {version}); upgrade, or move the file aside"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the listener queue {name}: {exc}") from None
        return cls(db, name)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(params))

    def _rows(self, sql: str, params: Iterable[object] = ()) -> list[QueuedDelivery]:
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM deliveries {sql}", tuple(params))
            return [QueuedDelivery(*row) for row in found.fetchall()]

    # -- receiving a delivery

    def reserve(
        self, sha256: str, received_ts: float, event_type: str | None, kind: str, ref: str | None
    ) -> str | None:
        """Write the row of a delivery about to be stored: None if it is new, else the state
        of the row already there (the body was delivered before)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (sha256, state, received_ts, event_type, "
                "hint_kind, hint_ref) VALUES (?, 'receiving', ?, ?, ?, ?)",
                (sha256, received_ts, event_type, kind, ref),
            )
            if cursor.rowcount == 1:
                return None
            row = self._db.execute(
                "SELECT state FROM deliveries WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return str(row[0]) if row else "receiving"

    def mark_stored(
        self,
        sha256: str,
        state: str,
        received_ts: float,
        event_type: str | None,
        kind: str,
        ref: str | None,
    ) -> None:
        """The delivery's object exists: its row waits in ``state`` (``stored``, or ``ignored``
        / ``malformed`` for one with nothing to archive). A row a concurrent duplicate had
        already moved on is left as it is; one it had forgotten is written again."""
        self._run(
            "INSERT INTO deliveries (sha256, state, received_ts, event_type, hint_kind, "
            "hint_ref) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sha256) DO UPDATE SET state = excluded.state "
            "WHERE deliveries.state = 'receiving'",
            (sha256, state, received_ts, event_type, kind, ref),
        )

    def forget(self, sha256: str) -> None:
        """The PUT failed (no 200 was sent): drop the row if it is still ``receiving``."""
        self._run("DELETE FROM deliveries WHERE sha256 = ? AND state = 'receiving'", (sha256,))

    def receiving(self) -> list[QueuedDelivery]:
        """Rows whose PUT a crash interrupted (see the module docstring)."""
        return self._rows("WHERE state = 'receiving'")

    # -- the worker

    def due(
        self, now: float, limit: int, received_before: float | None = None
    ) -> list[QueuedDelivery]:
        """``stored`` rows to resolve now, oldest first; with ``received_before``, only
        those that arrived before it."""
        if received_before is None:
            return self._rows(
                "WHERE state = 'stored' AND not_before <= ? ORDER BY received_ts LIMIT ?",
                (now, limit),
            )
        return self._rows(
            "WHERE state = 'stored' AND not_before <= ? AND received_ts <= ? "
            "ORDER BY received_ts LIMIT ?",
            (now, received_before, limit),
        )

    def debts_due(self, now: float, received_before: float | None = None) -> list[str]:
        """Debts with ``resolved`` rows to archive now, by their oldest delivery; with
        ``received_before``, only those whose oldest delivery arrived before it."""
        params: tuple[float, ...] = (now,)
        having = ""
        if received_before is not None:
            params, having = (now, received_before), "HAVING MIN(received_ts) <= ? "
        with self._lock:
            found = self._db.execute(
                "SELECT debt_id FROM deliveries WHERE state = 'resolved' AND not_before <= ? "
                f"GROUP BY debt_id {having}ORDER BY MIN(received_ts)",
                params,
            )
            return [str(row[0]) for row in found.fetchall()]

    def resolved_of(self, debt_id: str) -> list[QueuedDelivery]:
        """The ``resolved`` rows of one debt: what one archive of it answers."""
        return self._rows("WHERE state = 'resolved' AND debt_id = ?", (debt_id,))

    def resolve(self, sha256: str, debt_id: str) -> None:
        """The delivery concerns ``debt_id`` (as the API says)."""
        self._run(
            "UPDATE deliveries SET state = 'resolved', debt_id = ?, not_before = 0 "
            "WHERE sha256 = ? AND state = 'stored'",
            (debt_id, sha256),
        )

    def archived(self, shas: Iterable[str], manifest_key: str | None, now: float) -> None:
        """These deliveries' debt is archived (``manifest_key``: its latest manifest)."""
        with self._lock:
            self._db.executemany(
                "UPDATE deliveries SET state = 'archived', done_ts = ?, manifest_key = ?, "
                "last_error = NULL WHERE sha256 = ?",
                [(now, manifest_key, sha) for sha in shas],
            )

    def retry(self, shas: Iterable[str], error: str, not_before: float) -> None:
        """Try these again from ``not_before`` (their state stays); one attempt more."""
        with self._lock:
            self._db.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, not_before = ?, last_error = ? "
                "WHERE sha256 = ?",
                [(not_before, error[:500], sha) for sha in shas],
            )

    def fail(self, shas: Iterable[str], error: str, now: float) -> None:
        """Give these up (``failed``, with the reason)."""
        with self._lock:
            self._db.executemany(
                "UPDATE deliveries SET state = 'failed', done_ts = ?, last_error = ? "
                "WHERE sha256 = ?",
                [(now, error[:500], sha) for sha in shas],
            )

    # -- reading

    def get(self, sha256: str) -> QueuedDelivery | None:
        rows = self._rows("WHERE sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def counts(self) -> dict[str, int]:
        """Rows by state (every state, zeros included)."""
        with self._lock:
            found = self._db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
            counts = Counter({str(state): int(n) for state, n in found.fetchall()})
        return {state: counts.get(state, 0) for state in STATES}

    def waiting(self) -> int:
        """Deliveries not yet done (``receiving``, ``stored``, ``resolved``)."""
        counts = self.counts()
        return sum(counts[s] for s in WAITING)
