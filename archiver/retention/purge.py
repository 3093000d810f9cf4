"""Purge execution: delete the versions a plan lists, between an intent and an outcome record.

What is deleted is decided by :func:`archiver.retention.purge_plan.plan_purge`; this module
only carries a plan out. The plan has already left out what S3 would refuse (legal holds,
locks still running with the given flags), so a refusal here means something changed since
planning (a hold placed meanwhile).

Decisions, written down so a compliance officer can check them:

* **Intent, deletes, outcome.** Per debt, :func:`execute_purge` first writes an *intent*
  (a ``purge`` event of :mod:`archiver.retention.events` with ``"stage": "intent"``: keys,
  version ids, SHA-256s, sizes, policy names and SHA-256s, reason, actor, time). If it cannot
  be written, nothing of that debt is deleted. Then it deletes each version, then writes the
  *outcome* (``"stage": "outcome"``, naming its intent): the versions actually deleted, and
  the refusals apart (``refused``, with the server's reason), never as deleted. Every record
  is conditional and locked as every event (:func:`archiver.retention.events.event_lock`:
  6 years from the purge at least, in the mode of the debt's latest manifest). Only
  outcomes say that a version was purged (:func:`archiver.retention.events.purged_versions`).
* **A crash between the deletes and the outcome** leaves an intent no outcome names. The next
  plan lists the versions it named that are gone (``unfinished``) and the next execution
  writes the missing outcome for them (``"completes_interrupted": true``) before anything
  else: no version is ever gone without a record saying so, and no record says a version
  was deleted before it was.
* **Refusals are reported, never raised**, with the server's reason and the version's lock
  state. ``bypass_governance`` can only shorten GOVERNANCE retention; COMPLIANCE and legal
  holds still refuse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from archiver.common.time import iso, iso_precise, utcnow
from archiver.errors import ArchiverError, RetentionError, ValidationError
from archiver.retention.events import (
    EVENT_SCHEMA,
    PURGE_INTENT,
    PURGE_OUTCOME,
    Clock,
    EventSink,
    event_lock,
    write_event,
)
from archiver.retention.holds import refusal_reason
from archiver.retention.purge_plan import PurgeCandidate, PurgePlan, UnfinishedPurge
from archiver.store.objects import ObjectStore

__all__ = ["PurgeRefusal", "PurgeResult", "execute_purge"]


@dataclass(frozen=True)
class PurgeRefusal:
    """The server refused to delete one version (still locked, held) or the debt's record
    could not be written; ``reason`` says why."""

    debt_id: str
    key: str
    version_id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class PurgeResult:
    """What :func:`execute_purge` did: versions deleted, refused, records written.

    ``records`` are the outcome records (what was deleted), ``intents`` the intent records
    written before the deletes; ``unrecorded`` says which outcomes could not be written
    (the next execution writes them, see the module docstring)."""

    deleted: list[PurgeCandidate] = field(default_factory=list)
    refused: list[PurgeRefusal] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    completed: list[dict[str, Any]] = field(default_factory=list)  # versions of interrupted purges
    unrecorded: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.unrecorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": len(self.deleted),
            "refused": len(self.refused),
            "deleted_versions": [
                {"key": c.key, "version_id": c.version_id, "sha256": c.sha256} for c in self.deleted
            ],
            "refusals": [r.to_dict() for r in self.refused],
            "records": self.records,
            "intents": self.intents,
            "completed": self.completed,
            "unrecorded": self.unrecorded,
            "ok": self.ok,
        }


def _version(c: PurgeCandidate) -> dict[str, Any]:
    return {
        "key": c.key,
        "version_id": c.version_id,
        "kind": c.kind,
        "sha256": c.sha256,
        "size": c.size,
        "delete_after": iso(c.delete_after),
        "anchor": c.anchor,
        "policy": c.policy_name,
    }


def _policies(candidates: list[PurgeCandidate]) -> list[dict[str, str]]:
    pairs = sorted({(c.policy_name, c.policy_sha256) for c in candidates})
    return [{"name": n, "sha256": s} for n, s in pairs]


def _record(
    debt_id: str,
    stage: str,
    versions: list[dict[str, Any]],
    policies: list[dict[str, Any]],
    *,
    at: str,
    reason: str,
    actor: str,
    bypass_governance: bool,
    plan: PurgePlan,
) -> dict[str, Any]:
    """One purge record (``stage`` intent or outcome) naming ``versions``."""
    return {
        "schema": EVENT_SCHEMA,
        "action": "purge",
        "stage": stage,
        "debt_id": debt_id,
        "at": at,
        "reason": reason,
        "actor": actor,
        "planned_at": iso(plan.now),
        "bypass_governance": bypass_governance,
        "policies": policies,
        "objects": len({v["key"] for v in versions}),
        "bytes": sum(int(v.get("size") or 0) for v in versions),
        "versions": versions,
    }


def _lock_state(store: ObjectStore, key: str, version_id: str) -> str:
    """`` [COMPLIANCE until 2027-01-01T00:00:00Z, legal hold ON]``: why S3 said no, in facts."""
    try:
        info = store.head(key, version_id)
    except ArchiverError:
        return ""
    if info is None:
        return ""
    parts = []
    if info.lock_mode and info.retain_until:
        parts.append(f"{info.lock_mode} until {iso(info.retain_until)}")
    parts.append(f"legal hold {'ON' if info.legal_hold else 'off'}")
    return f" [{', '.join(parts)}]"


def execute_purge(
    store: ObjectStore,
    plan: PurgePlan,
    *,
    reason: str,
    actor: str,
    bypass_governance: bool = False,
    clock: Clock = utcnow,
    catalog: EventSink | None = None,
) -> PurgeResult:
    """Carry out ``plan``: first the outcomes interrupted purges left unwritten, then per debt
    the intent record, the deletes, the outcome record (see the module docstring).

    Refusals (held or locked meanwhile, intent not writable) are collected per version with
    the server's reason, never raised. ``bypass_governance`` sends the governance-bypass
    header: only GOVERNANCE retention can be bypassed; COMPLIANCE and legal holds still
    refuse. A plan made for a purge that bypasses governance needs ``bypass_governance``.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("a reason is required to purge")
    if not isinstance(actor, str) or not actor.strip():
        raise ValidationError("an actor (who asks) is required to purge")
    if plan.bypass_governance and not bypass_governance:
        raise ValidationError(
            "this plan counts on bypassing governance retention: execute it with "
            "bypass_governance, or plan again without"
        )
    run = _Run(
        store,
        plan,
        reason=reason.strip(),  # bound once: what the operator said goes into every record
        actor=actor.strip(),
        bypass_governance=bypass_governance,
        clock=clock,
        catalog=catalog,
    )
    for unfinished in plan.unfinished:
        run.complete(unfinished)
    for debt_id, candidates in sorted(plan.by_debt().items()):
        run.purge_debt(debt_id, candidates)
    return run.result


class _Run:
    """One execution of a plan: writes the records, deletes, fills in ``result``."""

    def __init__(
        self,
        store: ObjectStore,
        plan: PurgePlan,
        *,
        reason: str,
        actor: str,
        bypass_governance: bool,
        clock: Clock,
        catalog: EventSink | None,
    ) -> None:
        self.store = store
        self.plan = plan
        self.reason = reason
        self.actor = actor
        self.bypass_governance = bypass_governance
        self.clock = clock
        self.catalog = catalog
        self.result = PurgeResult()

    def _write(
        self,
        debt_id: str,
        stage: str,
        versions: list[dict[str, Any]],
        policies: list[dict[str, Any]],
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one record; its reference (key, sha256, version id, versions named)."""
        now = self.clock()
        record = _record(
            debt_id,
            stage,
            versions,
            policies,
            at=iso_precise(now),
            reason=self.reason,
            actor=self.actor,
            bypass_governance=self.bypass_governance,
            plan=self.plan,
        )
        record.update(extra)
        lock = event_lock(self.store, debt_id, now)
        key, sha, version_id = write_event(self.store, record, lock=lock, catalog=self.catalog)
        return {
            "debt_id": debt_id,
            "key": key,
            "sha256": sha,
            "version_id": version_id,
            "versions": len(versions),
        }

    def complete(self, unfinished: UnfinishedPurge) -> None:
        """Write the outcome an interrupted purge did not: the versions of its intent that are
        gone (none: the intent is closed as having deleted nothing)."""
        names = {v.get("policy") for v in unfinished.gone}
        try:
            intent = json.loads(self.store.read_bytes(unfinished.intent_key))
            policies = [p for p in intent.get("policies") or [] if p.get("name") in names]
            ref = self._write(
                unfinished.debt_id,
                PURGE_OUTCOME,
                unfinished.gone,
                policies,
                intent=unfinished.intent_key,
                completes_interrupted=True,
            )
        except (ArchiverError, ValueError) as exc:
            self.result.unrecorded.append(
                f"{unfinished.debt_id}: the outcome of the interrupted purge "
                f"{unfinished.intent_key} could not be written ({exc}); the next purge retries"
            )
            return
        self.result.records.append(ref)
        self.result.completed.extend(unfinished.gone)

    def purge_debt(self, debt_id: str, candidates: list[PurgeCandidate]) -> None:
        """Intent, deletes, outcome for one debt."""
        policies = _policies(candidates)
        try:
            intent = self._write(debt_id, PURGE_INTENT, [_version(c) for c in candidates], policies)
        except ArchiverError as exc:
            # No intent, no deletion: every version of this debt is reported as refused.
            for c in candidates:
                self.result.refused.append(
                    PurgeRefusal(
                        debt_id,
                        c.key,
                        c.version_id,
                        f"purge intent record could not be written, nothing deleted: {exc}",
                    )
                )
            return
        self.result.intents.append(intent)
        deleted: list[PurgeCandidate] = []
        refused: list[PurgeRefusal] = []
        for c in candidates:
            try:
                self.store.delete_version(
                    c.key, c.version_id, bypass_governance=self.bypass_governance
                )
            except RetentionError as exc:
                because = f"{refusal_reason(exc)}{_lock_state(self.store, c.key, c.version_id)}"
                refused.append(PurgeRefusal(debt_id, c.key, c.version_id, because))
                continue
            deleted.append(c)
        self.result.deleted.extend(deleted)
        self.result.refused.extend(refused)
        try:
            outcome = self._write(
                debt_id,
                PURGE_OUTCOME,
                [_version(c) for c in deleted],
                _policies(deleted),
                intent=intent["key"],
                refused=[
                    {"key": r.key, "version_id": r.version_id, "reason": r.reason} for r in refused
                ],
            )
        except ArchiverError as exc:
            self.result.unrecorded.append(
                f"{debt_id}: {len(deleted)} version(s) deleted but the outcome record could not "
                f"be written ({exc}); the intent {intent['key']} names them and the next "
                "`archiver purge --execute` records them"
            )
            return
        self.result.records.append(outcome)
