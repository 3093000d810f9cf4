"""Multipart uploads a killed process left behind: found per debt, aborted on request.

An upload started and never completed nor aborted keeps its parts (and their cost) in the
bucket; the lifecycle rule of ``archiver init-bucket`` aborts them where the server supports
it, and ``archiver verify`` reports those older than a threshold (a younger one may belong to a
run still going).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from archiver.common.ids import is_safe_id
from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import iso, utcnow
from archiver.store import keys
from archiver.store.objects import ObjectStore

if TYPE_CHECKING:
    from archiver.audit.verify import DebtVerification

__all__ = [
    "STALE_UPLOAD_AGE",
    "debts_with_stale_uploads",
    "repair_stale_uploads",
    "stale_upload_problems",
]

# An upload older than this is not one of a run still going: its process is gone.
STALE_UPLOAD_AGE = timedelta(days=1)


def _stale(initiated: datetime | None, started_before: datetime) -> bool:
    return initiated is None or initiated <= started_before


def stale_upload_problems(
    store: ObjectStore, debt_id: str, started_before: datetime
) -> list[Problem]:
    """A :attr:`ProblemKind.STALE_UPLOAD` for each upload under the debt that began at or
    before ``started_before`` (the upload id and start time in its details)."""
    return [
        Problem(
            ProblemKind.STALE_UPLOAD,
            "a multipart upload was started and never completed (an interrupted run); "
            "its parts take space until it is aborted (`archiver verify --repair`)",
            debt_id=debt_id,
            key=upload.key,
            details={"upload_id": upload.upload_id, "initiated": iso(upload.initiated)},
        )
        for upload in store.list_multipart_uploads(keys.debt_prefix(debt_id))
        if _stale(upload.initiated, started_before)
    ]


def repair_stale_uploads(store: ObjectStore, result: DebtVerification) -> list[Problem]:
    """Abort every stale upload ``result`` found. Their problems move from ``problems`` to
    ``repaired``; returns them."""
    fixed: list[Problem] = []
    kept: list[Problem] = []
    for problem in result.problems:
        if problem.kind is ProblemKind.STALE_UPLOAD and problem.key:
            # Already gone (aborted or completed meanwhile) is as good as aborted.
            store.abort_multipart_upload(problem.key, str(problem.details["upload_id"]))
            fixed.append(problem)
        else:
            kept.append(problem)
    result.problems = kept
    result.repaired.extend(fixed)
    return fixed


def debts_with_stale_uploads(
    store: ObjectStore,
    stale_after: timedelta = STALE_UPLOAD_AGE,
    now: Callable[[], datetime] = utcnow,
) -> set[str]:
    """Debt ids with a stale multipart upload: a first run killed before its manifest leaves
    one under a debt that no manifest names yet."""
    started_before = now() - stale_after
    found = set()
    for upload in store.list_multipart_uploads("debts/"):
        parts = upload.key.split("/")
        if _stale(upload.initiated, started_before) and len(parts) > 2 and is_safe_id(parts[1]):
            found.add(parts[1])
    return found
