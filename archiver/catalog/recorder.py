"""Keeps the catalog in step with an archive run: a subscriber of the run's record events.

The archive pipeline knows nothing of the catalog; :mod:`archiver.wiring` subscribes a
:class:`CatalogRecorder` to it. Record events arrive on the thread that runs the archive,
which is the thread that opened the SQLite connection.
"""

from __future__ import annotations

from archiver.archive.results import (
    DossierStored,
    ManifestStored,
    RunFinished,
    RunRecord,
    RunStarted,
)
from archiver.catalog.db import Catalog
from archiver.common.time import iso

__all__ = ["CatalogRecorder"]


class CatalogRecorder:
    """Journals runs and indexes the manifests and dossiers an archive run stores."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, event: RunRecord) -> None:
        """Record one event of an archive run."""
        match event:
            case RunStarted():
                self.catalog.start_run(
                    run_id=event.run_id,
                    started_at=iso(event.started_at),
                    command="archive",
                    debt_ids=list(event.debt_ids),
                    options=event.options,
                )
            case ManifestStored():
                self.catalog.record_manifest(
                    event.manifest,
                    key=event.key,
                    sha256=event.sha256,
                    version_id=event.version_id,
                    run_id=event.run_id,
                )
            case DossierStored():
                self.catalog.record_dossier(
                    debt_id=event.debt_id,
                    sequence=event.sequence,
                    key=event.key,
                    sha256=event.sha256,
                    version_id=event.version_id,
                    renderer_version=event.renderer_version,
                )
            case RunFinished():
                self.catalog.finish_run(
                    event.run_id,
                    finished_at=iso(event.finished_at),
                    status=event.status,
                    summary=event.summary,
                )
