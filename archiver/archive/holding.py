"""The legal hold of a run's debt, checked again after storing and after finishing.

Planning reads the hold state once, before anything is stored. A matter opened while the run
stores is recorded by ``archiver hold``, which holds every version it lists: the versions
this run stores after that listing would stay unheld, and the manifest would say what
planning saw. So the run asks again once it has stored everything (:meth:`HoldKeeper.settle`,
before the manifest is built) and once the manifest and dossier are written
(:meth:`HoldKeeper.after_finish`).

Decisions, written down so a compliance officer can check them:

* **While any matter is open, every stored version of the debt is held**, whoever stored it
  and whenever: the check lists every version and sets the hold where S3 says it is off.
  A version of this run gets it silently (the hold came while it was stored); an older one
  missing it was changed behind the tool's back (or a ``hold`` was interrupted): the hold is
  set again and the run reports it (a ``HoldMissing`` warning naming the key).
* **A manifest never claims a hold that is not set.** Its ``legal_hold`` flags (debt record,
  media) are set from what the check did: on where the hold is on, off for a version whose
  hold the server refused (reported as an error), and off on a debt with no open matter,
  except for versions this run stored under a hold (a release during the run lifts only the
  versions it listed; those keep theirs and say so).
* **The manifest records the open matters** (``legal_hold.open_matters``) it was built under,
  so that a hold or a release is a change of the archive: the next run writes a manifest. It
  also names the last event the check read (``legal_hold.last_event``): its dossier shows the
  events up to that one, in the store's order, whatever the clocks said.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archiver.archive.plan import DebtPlan
from archiver.archive.results import ArchiveEvent, ArchiveEventKind
from archiver.archive.storing import StoreOutcome, Version
from archiver.common.problems import Problem, ProblemKind, Severity
from archiver.errors import RetentionError
from archiver.manifest.entries import MediaEntry
from archiver.retention.events import open_matters, read_events
from archiver.retention.holds import refusal_reason
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["HoldCheck", "HoldKeeper"]


@dataclass
class HoldCheck:
    """What one check found: the matters open, and the versions whose hold it set."""

    open_matters: list[str]
    last_event: str | None  # the key of the last event read
    applied: list[Version] = field(default_factory=list)  # stored by this run
    repaired: list[Version] = field(default_factory=list)  # stored earlier, found unheld
    refused: list[Version] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.open_matters)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``legal_hold``: the matters open, and the last event that says so
        (the dossier of the manifest shows the events up to that one)."""
        return {"open_matters": list(self.open_matters), "last_event": self.last_event}


class HoldKeeper:
    """Keeps the versions of one run's debts under the hold the debt is under (see the module
    docstring)."""

    def __init__(self, store: ObjectStore, emit: Callable[[ArchiveEvent], None]) -> None:
        self.store = store
        self._emit = emit

    def settle(self, plan: DebtPlan, outcome: StoreOutcome) -> HoldCheck:
        """After storing, before the manifest: hold every version when a matter is open,
        correct the locks and flags of ``plan`` and ``outcome`` to what S3 has, note the open
        matters in ``outcome``, and report repairs and refusals in ``plan.problems``."""
        check = self._check(plan.debt_id, {key for key, _ in outcome.written})
        for key, vid in check.repaired:
            _hold_missing(plan, key, vid, "this version was not held: hold set again", "warning")
        for key, vid in check.refused:
            _hold_missing(plan, key, vid, "the server refused to hold this version", "error")
        self._correct_flags(plan, outcome, check)
        # The manifest and the dossier, written next, are stored under the hold found now.
        plan.facts = dataclasses.replace(plan.facts, hold=check.held)
        outcome.legal_hold = check.to_manifest()
        return check

    def after_finish(self, debt_id: str, before: HoldCheck, written: set[str]) -> None:
        """After the manifest and dossier (``written``, their keys): when a matter opened
        since :meth:`settle`, hold them (and every other version, as ``archiver hold``
        does)."""
        if before.held or not open_matters(read_events(self.store, debt_id)):
            return
        self._check(debt_id, written)

    def _check(self, debt_id: str, written: set[str]) -> HoldCheck:
        """Hold every unheld version of ``debt_id`` while a matter is open; ``written`` are the
        keys of this run (held silently), other keys found unheld are repairs."""
        events = read_events(self.store, debt_id)
        check = HoldCheck(list(open_matters(events)), events[-1]["key"] if events else None)
        if not check.held:
            return check
        for v in self.store.list_versions(keys.debt_prefix(debt_id)):
            if v.is_delete_marker:
                continue
            info = self.store.head(v.key, v.version_id)
            if info is None or info.legal_hold:
                continue
            try:
                self.store.set_legal_hold(v.key, v.version_id, True)
            except RetentionError as exc:
                check.refused.append((v.key, v.version_id))
                self._log(debt_id, f"legal hold refused on {v.key}: {refusal_reason(exc)}")
                continue
            version = (v.key, v.version_id)
            (check.applied if v.key in written else check.repaired).append(version)
        if check.applied:
            self._log(
                debt_id,
                f"a legal hold was placed during this run: held {len(check.applied)} "
                "version(s) it stored",
            )
        return check

    def _correct_flags(self, plan: DebtPlan, outcome: StoreOutcome, check: HoldCheck) -> None:
        """Set every ``legal_hold`` flag of the snapshot to what S3 has."""
        refused = set(check.refused)
        still_held: set[Version] = set()
        if not check.held and plan.facts.hold:
            # Released during the run: the release lifted the versions it listed; what this
            # run stored under the hold after that listing keeps it.
            for key, vid in outcome.written:
                info = self.store.head(key, vid)
                if info is not None and info.legal_hold:
                    still_held.add((key, vid))

        def flag(key: str, vid: str | None) -> bool:
            if check.held:
                return (key, vid) not in refused
            return (key, vid) in still_held

        for fid, entry in plan.entries.items():
            media: list[MediaEntry] = [
                m if m.purged else m.updated(legal_hold=flag(m.key, m.version_id))
                for m in entry.media or []
            ]
            plan.entries[fid] = entry.updated(media=media)
        debt = outcome.debt_entry
        if debt is not None and not debt.purged:
            outcome.debt_entry = debt.updated(legal_hold=flag(debt.key, debt.version_id))

    def _log(self, debt_id: str, message: str) -> None:
        self._emit(ArchiveEvent(ArchiveEventKind.LOG, debt_id=debt_id, message=message))


def _hold_missing(
    plan: DebtPlan, key: str, version_id: str | None, what: str, severity: Severity
) -> None:
    """Report a version of a held debt that S3 did not hold (repaired, or refused)."""
    plan.problems.append(
        Problem(
            ProblemKind.HOLD_MISSING,
            f"the debt is on legal hold but {what}",
            debt_id=plan.debt_id,
            key=key,
            expected="legal hold ON",
            found="OFF",
            severity=severity,
            details={"version_id": version_id},
        )
    )
