"""Verify the sync run records (``sync/runs/``): their chains, and the manifests they name.

See :func:`archiver.sync.runs.run_chain_problems` for what is checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archiver.common.problems import Problem
from archiver.store.objects import ObjectStore
from archiver.sync.runs import read_runs, run_chain_problems

__all__ = ["RunsVerification", "verify_runs"]


@dataclass
class RunsVerification:
    """What verifying the run records found: counts, and every problem (warnings apart)."""

    records: int = 0
    lanes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "sync_runs": {
                "ok": self.ok,
                "records": self.records,
                "lanes": self.lanes,
                "problems": [p.to_dict() for p in self.problems],
                "notices": [p.to_dict() for p in self.notices],
            }
        }


def verify_runs(store: ObjectStore) -> RunsVerification:
    """Check every run record of the bucket (a bucket without any is clean)."""
    runs = list(read_runs(store))
    found = run_chain_problems(store)
    return RunsVerification(
        records=len(runs),
        lanes=sorted({r.lane for r in runs}),
        problems=[p for p in found if p.severity == "error"],
        notices=[p for p in found if p.severity != "error"],
    )
