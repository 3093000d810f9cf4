"""Keeps the catalog in step with an archive run: a subscriber of the run's record events.

The archive pipeline knows nothing of the catalog; :mod:`archiver.wiring` subscribes a
:class:`CatalogRecorder` to it. Record events arrive on the thread that runs the archive,
which is the thread that opened the SQLite connection.

The catalog is derived from S3, so it never stops or fails a run: a corrupt catalog, or one
that fails while written, is reported once (a warning naming `archiver reindex`, which
rebuilds it) and the run goes on without it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

from archiver.archive.results import (
    DossierStored,
    ManifestStored,
    RunFinished,
    RunRecord,
    RunStarted,
)
from archiver.catalog.db import Catalog, is_corrupt, unusable
from archiver.common.time import iso

__all__ = ["CatalogRecorder"]

log = logging.getLogger(__name__)


class CatalogRecorder:
    """Journals runs and indexes the manifests and dossiers an archive run stores.

    ``catalog`` is None when there is none to keep (see the module docstring); ``path`` names
    the catalog in the warning.
    """

    def __init__(self, catalog: Catalog | None, *, path: str | Path | None = None) -> None:
        self.catalog = catalog
        self.path = str(path) if path is not None else None

    @classmethod
    def open(cls, path: str | Path) -> CatalogRecorder:
        """The recorder of the catalog at ``path``, checked first (SQLite's quick check).

        A corrupt catalog gives a recorder that records nothing, after one warning; a path
        that cannot be opened at all (no such folder) is a :class:`ConfigError`.
        """
        recorder = cls(None, path=path)
        try:
            recorder.catalog = Catalog.connect(path, check=True)
        except sqlite3.Error as exc:
            if not is_corrupt(exc):
                raise unusable(path, exc) from None
            recorder._give_up(exc)
        return recorder

    def claim_bucket(self, bucket: str) -> None:
        """Make the catalog the bucket's own (:meth:`Catalog.claim_bucket`; a catalog of another
        bucket is a :class:`ConfigError`); a corrupt catalog is given up like any write."""
        if self.catalog is None:
            return
        try:
            self.catalog.claim_bucket(bucket)
        except sqlite3.Error as exc:
            self._give_up(exc)

    def close(self) -> None:
        """Close the catalog (if there is one)."""
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None

    def __call__(self, event: RunRecord) -> None:
        """Record one event of an archive run (nothing once the catalog has failed)."""
        if self.catalog is None:
            return
        try:
            self._record(self.catalog, event)
        except sqlite3.Error as exc:
            self._give_up(exc)

    def _give_up(self, exc: sqlite3.Error) -> None:
        where = f" {self.path}" if self.path else ""
        log.warning(
            "the catalog%s is unusable (%s); this run goes on without it and S3 holds "
            "everything it archives: `archiver reindex` rebuilds the catalog from S3",
            where,
            exc,
        )
        if self.catalog is not None:
            with contextlib.suppress(sqlite3.Error):  # already reported: the run goes on
                self.catalog.close()
        self.catalog = None

    @staticmethod
    def _record(catalog: Catalog, event: RunRecord) -> None:
        match event:
            case RunStarted():
                catalog.start_run(
                    run_id=event.run_id,
                    started_at=iso(event.started_at),
                    command="archive",
                    debt_ids=list(event.debt_ids),
                    options=event.options,
                )
            case ManifestStored():
                catalog.record_manifest(
                    event.manifest,
                    key=event.key,
                    sha256=event.sha256,
                    version_id=event.version_id,
                    run_id=event.run_id,
                )
            case DossierStored():
                catalog.record_dossier(
                    debt_id=event.debt_id,
                    sequence=event.sequence,
                    key=event.key,
                    sha256=event.sha256,
                    version_id=event.version_id,
                    renderer_version=event.renderer_version,
                )
            case RunFinished():
                catalog.finish_run(
                    event.run_id,
                    finished_at=iso(event.finished_at),
                    status=event.status,
                    summary=event.summary,
                )
