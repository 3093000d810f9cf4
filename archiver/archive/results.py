"""What an archive run reports: progress events for the caller, results per debt and run.

Plain data, no I/O; the CLI turns these into progress bars, JSON lines and exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArchiveEvent:
    """Progress reported to the caller (the CLI draws bars from these; core code never prints).

    kinds: ``debt_started``, ``media_reused`` (count), ``media_planned`` (count to fetch),
    ``media_done`` (size, one stored), ``media_failed``, ``debt_done``, ``log`` (message).
    """

    kind: str
    debt_id: str | None = None
    count: int = 0
    size: int = 0
    message: str = ""


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
