"""What an archive run reports: progress events for the caller, record events for its
subscribers (the catalog), results per debt and run.

Plain data, no I/O; the CLI turns these into progress bars, JSON lines and exit codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ArchiveEventKind(StrEnum):
    """What a progress event reports."""

    RUN_STARTED = "run_started"  # count: the debts of the run
    DEBT_STARTED = "debt_started"
    MEDIA_REUSED = "media_reused"  # count: media taken from earlier runs
    MEDIA_PLANNED = "media_planned"  # count: media to download
    MEDIA_STORED = "media_stored"  # size: one medium downloaded and stored
    MEDIA_FAILED = "media_failed"  # message: which medium, why
    DOSSIER_STARTED = "dossier_started"  # count: the manifest sequence being rendered
    DEBT_DONE = "debt_done"  # message: the debt's status
    LOG = "log"  # message


@dataclass(frozen=True)
class ArchiveEvent:
    """Progress reported to the caller (the CLI draws bars from these; core code never prints).
    May come from any thread of the run."""

    kind: ArchiveEventKind
    debt_id: str | None = None
    count: int = 0
    size: int = 0
    message: str = ""


# --------------------------------------------------------------------------- record events


@dataclass(frozen=True)
class RunStarted:
    """An archive run (not a dry run) began."""

    run_id: str
    started_at: datetime
    debt_ids: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class ManifestStored:
    """A new manifest was written to S3."""

    run_id: str
    manifest: dict[str, Any]
    key: str
    sha256: str
    version_id: str | None


@dataclass(frozen=True)
class DossierStored:
    """A dossier was rendered and written to S3."""

    debt_id: str
    sequence: int
    key: str
    sha256: str
    version_id: str | None
    renderer_version: str


@dataclass(frozen=True)
class RunFinished:
    """An archive run (not a dry run) ended; ``summary`` is :meth:`RunResult.summary`."""

    run_id: str
    finished_at: datetime
    status: str
    summary: dict[str, Any]


RunRecord = RunStarted | ManifestStored | DossierStored | RunFinished
"""What an archive run tells its subscribers, always on the thread that called ``run``."""

RunSubscriber = Callable[[RunRecord], None]


@dataclass
class DebtResult:
    """What happened to one debt. ``status``: archived | unchanged | partial | failed | planned."""

    debt_id: str
    status: str
    sequence: int | None = None
    manifest_key: str | None = None
    manifest_sha256: str | None = None
    followups: int = 0
    media_stored: int = 0
    media_reused: int = 0
    media_bytes_stored: int = 0
    retention_extended: int = 0
    dossier_key: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    policy: str | None = None  # the policy the debt is (or would be) archived under
    policy_kept_from: int | None = None  # the manifest whose policy the debt keeps
    policy_change: dict[str, Any] | None = None  # the manifest's policy_change, if any
    manifest_attempts: int = 1  # > 1: other runs wrote the debt's next manifest meanwhile
    timestamp_keys: list[str] = field(default_factory=list)  # manifest tokens stored this run

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "debt_id": self.debt_id,
            "status": self.status,
            "sequence": self.sequence,
            "manifest_key": self.manifest_key,
            "manifest_sha256": self.manifest_sha256,
            "followups": self.followups,
            "media_stored": self.media_stored,
            "media_reused": self.media_reused,
            "media_bytes_stored": self.media_bytes_stored,
            "retention_extended": self.retention_extended,
            "dossier_key": self.dossier_key,
            "problems": self.problems,
        }
        if self.error:
            out["error"] = self.error
        if self.policy:
            out["policy"] = self.policy
            out["policy_kept_from"] = self.policy_kept_from
        if self.policy_change:
            out["policy_change"] = self.policy_change
        if self.manifest_attempts > 1:
            out["manifest_attempts"] = self.manifest_attempts
        if self.timestamp_keys:
            out["timestamps"] = self.timestamp_keys
        return out


@dataclass
class RunResult:
    run_id: str
    debts: list[DebtResult]

    @property
    def exit_status(self) -> str:
        """``ok`` | ``partial`` | ``failed`` over the whole run."""
        statuses = {d.status for d in self.debts}
        if "failed" in statuses:
            return "failed"  # a whole debt not archived is a failure, not a partial run
        if "partial" in statuses:
            return "partial"
        return "ok"

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for d in self.debts:
            counts[d.status] = counts.get(d.status, 0) + 1
        return {
            "run_id": self.run_id,
            "debts": len(self.debts),
            "by_status": counts,
            "followups": sum(d.followups for d in self.debts),
            "media_stored": sum(d.media_stored for d in self.debts),
            "media_reused": sum(d.media_reused for d in self.debts),
            "media_bytes_stored": sum(d.media_bytes_stored for d in self.debts),
            "problems": sum(len(d.problems) for d in self.debts),
            "status": self.exit_status,
        }
