"""Purge execution: delete the versions a plan lists, each debt's deletion record first.

What is deleted is decided by :func:`archiver.retention.purge_plan.plan_purge`; this module
only carries a plan out.

Decisions, written down so a compliance officer can check them:

* **Record first.** Before deleting anything of a debt, :func:`execute_purge` writes a
  deletion record, a ``purge`` event of :mod:`archiver.retention.events` (keys, version ids,
  SHA-256s, sizes, policy names and SHA-256s, reason, actor, time), conditional and locked as
  every event (:func:`archiver.retention.events.event_lock`: 6 years from the purge at least, in the
  mode of the debt's latest manifest). If the record cannot be written, nothing of that debt
  is deleted. The record says what was to be deleted; a version the server then refused is
  still listed by S3 and in the result (``refused``), so a rerun plans it again.
* **Refusals are reported, never raised**, with the server's reason and the version's lock
  state. ``bypass_governance`` can only shorten GOVERNANCE retention; COMPLIANCE and legal
  holds still refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archiver.common.time import iso, iso_precise, utcnow
from archiver.errors import ArchiverError, RetentionError, ValidationError
from archiver.retention.events import EVENT_SCHEMA, Clock, EventSink, event_lock, write_event
from archiver.retention.holds import refusal_reason
from archiver.retention.purge_plan import PurgeCandidate, PurgePlan
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
    """What :func:`execute_purge` did: versions deleted, refused, deletion records written."""

    deleted: list[PurgeCandidate] = field(default_factory=list)
    refused: list[PurgeRefusal] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": len(self.deleted),
            "refused": len(self.refused),
            "deleted_versions": [
                {"key": c.key, "version_id": c.version_id, "sha256": c.sha256} for c in self.deleted
            ],
            "refusals": [r.to_dict() for r in self.refused],
            "records": self.records,
            "ok": self.ok,
        }


def _deletion_record(
    debt_id: str,
    candidates: list[PurgeCandidate],
    *,
    at: str,
    reason: str,
    actor: str,
    bypass_governance: bool,
    plan: PurgePlan,
) -> dict[str, Any]:
    policies = sorted({(c.policy_name, c.policy_sha256) for c in candidates})
    return {
        "schema": EVENT_SCHEMA,
        "action": "purge",
        "debt_id": debt_id,
        "at": at,
        "reason": reason,
        "actor": actor,
        "planned_at": iso(plan.now),
        "bypass_governance": bypass_governance,
        "policies": [{"name": n, "sha256": s} for n, s in policies],
        "objects": len({c.key for c in candidates}),
        "bytes": sum(c.size for c in candidates),
        "versions": [
            {
                "key": c.key,
                "version_id": c.version_id,
                "kind": c.kind,
                "sha256": c.sha256,
                "size": c.size,
                "delete_after": iso(c.delete_after),
                "anchor": c.anchor,
                "policy": c.policy_name,
            }
            for c in candidates
        ],
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
    """Delete the planned versions, debt by debt, each debt's deletion record first.

    Refusals (still locked, held, record not writable) are collected per object with the
    server's reason, never raised. ``bypass_governance`` sends the governance-bypass header:
    only GOVERNANCE retention can be bypassed; COMPLIANCE and legal holds still refuse.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("a reason is required to purge")
    if not isinstance(actor, str) or not actor.strip():
        raise ValidationError("an actor (who asks) is required to purge")
    # Bound once, before the loop: what the operator said goes into every debt's record.
    operator_reason, operator = reason.strip(), actor.strip()
    result = PurgeResult()
    for debt_id, candidates in sorted(plan.by_debt().items()):
        now = clock()
        record = _deletion_record(
            debt_id,
            candidates,
            at=iso_precise(now),
            reason=operator_reason,
            actor=operator,
            bypass_governance=bypass_governance,
            plan=plan,
        )
        try:
            lock = event_lock(store, debt_id, now)
            key, sha, version_id = write_event(store, record, lock=lock, catalog=catalog)
        except ArchiverError as exc:
            # No record, no deletion: every version of this debt is reported as refused.
            for c in candidates:
                result.refused.append(
                    PurgeRefusal(
                        debt_id,
                        c.key,
                        c.version_id,
                        f"deletion record could not be written, nothing deleted: {exc}",
                    )
                )
            continue
        result.records.append(
            {
                "debt_id": debt_id,
                "key": key,
                "sha256": sha,
                "version_id": version_id,
                "versions": len(candidates),
            }
        )
        for c in candidates:
            try:
                store.delete_version(c.key, c.version_id, bypass_governance=bypass_governance)
            except RetentionError as exc:
                refused_because = f"{refusal_reason(exc)}{_lock_state(store, c.key, c.version_id)}"
                result.refused.append(PurgeRefusal(debt_id, c.key, c.version_id, refused_because))
                continue
            result.deleted.append(c)
    return result
