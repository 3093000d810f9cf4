"""Purge: delete the object versions whose maximum retention has passed, with a record first.

:func:`plan_purge` only reads (a dry run changes nothing); :func:`execute_purge` deletes.

Decisions, written down so a compliance officer can check them:

* **What is considered.** Every object version a manifest names (debt record, followup
  records, media), plus the manifest itself and its dossier, so that a policy giving those
  kinds a maximum is applied too. Events (holds, releases, deletion records) are never purged.
  A kind without a maximum is never purged.
* **Anchor dates.** ``call_date`` of the followup (records and media), ``last_activity`` from
  the *latest* manifest of the debt (activity moves forward), ``archived_at`` = the naming
  manifest's ``created_at`` (a media's own ``downloaded_at`` when it has one). A missing anchor
  falls back as :func:`archiver.retention.policies.resolve_anchor` says (the latest known date).
* **Policy.** The one given (``--policy``), else the one each manifest names, loaded by name;
  a manifest whose policy cannot be loaded keeps its objects (listed as a problem). When the
  loaded file's SHA-256 differs from the one the manifest recorded, the current file is used
  and the difference is listed as a problem (informational): the deletion record names the
  SHA-256 of the file actually applied.
* **Named by several manifests.** Considered once, with the *latest* delete-after date of all
  of them (and never purged if any of them gives its kind no maximum): the conservative side.
* **Legal holds win.** A version with its legal hold on, or any version of a debt whose
  latest hold/release event is a hold, is listed under ``held`` and never deleted; S3 would
  refuse anyway.
* **Record first.** Before deleting anything of a debt, :func:`execute_purge` writes a
  deletion record at ``debts/{id}/events/{ts}-purge.json`` (keys, version ids, SHA-256s,
  sizes, policy names and SHA-256s, reason, actor, time), conditional and locked as every
  event (:func:`.holds.event_lock`: 6 years from the purge at least, in the mode of the
  debt's latest manifest). If the record cannot be written, nothing of that debt is deleted.
  The record says what was to be deleted; a version the server then refused is still listed
  by S3 and in the result (``refused``), so a rerun plans it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.common.ids import check_id
from archiver.common.time import iso, parse_iso, utcnow
from archiver.errors import ArchiverError, ConfigError, PolicyError, RetentionError, ValidationError
from archiver.manifest.document import all_objects
from archiver.manifest.reader import debts_in_bucket, manifest_keys
from archiver.retention.holds import (
    EVENT_SCHEMA,
    Clock,
    EventSink,
    event_lock,
    hold_active,
    refusal_reason,
    write_event,
)
from archiver.retention.policies import (
    AnchorDates,
    ObjectKind,
    RetentionPolicy,
    delete_after,
    load_policy,
    resolve_anchor,
)
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = [
    "PurgeCandidate",
    "PurgePlan",
    "PurgeProblem",
    "PurgeRefusal",
    "PurgeResult",
    "execute_purge",
    "plan_purge",
]


@dataclass(frozen=True)
class PurgeCandidate:
    """One object version past its maximum retention (or held, in ``PurgePlan.held``)."""

    debt_id: str
    key: str
    version_id: str
    kind: str
    sha256: str | None
    size: int
    delete_after: datetime
    anchor: str
    anchor_date: datetime
    policy_name: str
    policy_sha256: str
    manifest_key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "debt_id": self.debt_id,
            "key": self.key,
            "version_id": self.version_id,
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "delete_after": iso(self.delete_after),
            "anchor": self.anchor,
            "anchor_date": iso(self.anchor_date),
            "policy": {"name": self.policy_name, "sha256": self.policy_sha256},
            "manifest_key": self.manifest_key,
        }


@dataclass(frozen=True)
class PurgeProblem:
    """Something that kept objects out of the plan, or is worth a look."""

    type: str
    message: str
    debt_id: str | None = None
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class PurgePlan:
    """What a purge would delete (``candidates``) and what it keeps because of a hold."""

    now: datetime
    policy_name: str | None
    candidates: list[PurgeCandidate] = field(default_factory=list)
    held: list[PurgeCandidate] = field(default_factory=list)
    considered: int = 0
    problems: list[PurgeProblem] = field(default_factory=list)
    debts: list[str] = field(default_factory=list)

    def by_debt(self) -> dict[str, list[PurgeCandidate]]:
        grouped: dict[str, list[PurgeCandidate]] = {}
        for c in self.candidates:
            grouped.setdefault(c.debt_id, []).append(c)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": iso(self.now),
            "policy": self.policy_name,
            "debts": self.debts,
            "considered": self.considered,
            "candidates": [c.to_dict() for c in self.candidates],
            "held": [c.to_dict() for c in self.held],
            "problems": [p.to_dict() for p in self.problems],
        }


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


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Named:
    """One object as named by one manifest, with the dates and policy that apply there."""

    debt_id: str
    key: str
    version_id: str | None
    kind: ObjectKind
    sha256: str | None
    size: int | None
    dates: AnchorDates
    policy: RetentionPolicy
    manifest_key: str


def _manifests(store: ObjectStore, debt_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for seq, key in manifest_keys(store, debt_id):
        try:
            manifest = json.loads(store.read_bytes(key))
        except ValueError as exc:
            raise ValidationError(f"manifest is not JSON: {exc}", key=key) from None
        out.append((seq, key, manifest))
    return out


class _Policies:
    """Policies by name, loaded once; problems reported once per manifest."""

    def __init__(self, override: RetentionPolicy | None) -> None:
        self.override = override
        self.cache: dict[str, RetentionPolicy | ArchiverError] = {}

    def for_manifest(
        self, manifest: dict[str, Any], key: str, debt_id: str, problems: list[PurgeProblem]
    ) -> RetentionPolicy | None:
        if self.override is not None:
            return self.override
        ref = manifest.get("policy") or {}
        name = ref.get("name")
        if not isinstance(name, str) or not name:
            problems.append(PurgeProblem("no_policy", "the manifest names no policy", debt_id, key))
            return None
        if name not in self.cache:
            try:
                self.cache[name] = load_policy(name)
            except (ConfigError, PolicyError) as exc:
                self.cache[name] = exc
        policy = self.cache[name]
        if isinstance(policy, ArchiverError):
            problems.append(
                PurgeProblem(
                    "policy_unavailable",
                    f"policy {name!r} named by the manifest cannot be loaded ({policy}); "
                    "its objects are kept",
                    debt_id,
                    key,
                )
            )
            return None
        if ref.get("sha256") and ref["sha256"] != policy.sha256:
            problems.append(
                PurgeProblem(
                    "policy_changed",
                    f"policy {name!r} has changed since the manifest was written "
                    f"(recorded sha256 {ref['sha256'][:12]}..., now {policy.sha256[:12]}...); "
                    "the current file is applied",
                    debt_id,
                    key,
                )
            )
        return policy


def _named_objects(
    debt_id: str,
    seq: int,
    key: str,
    manifest: dict[str, Any],
    policy: RetentionPolicy,
    last_activity: datetime | None,
) -> Iterable[_Named]:
    created = parse_iso(manifest.get("created_at"))
    if created is None:
        return
    call_dates = {f["id"]: parse_iso(f.get("call_date")) for f in manifest.get("followups", [])}
    for obj in all_objects(manifest):
        archived = created
        if obj["kind"] in ("audio", "pdf"):
            archived = parse_iso(obj.get("downloaded_at")) or created
        yield _Named(
            debt_id=debt_id,
            key=obj["key"],
            version_id=obj.get("version_id"),
            kind=obj["kind"],
            sha256=obj.get("sha256"),
            size=obj.get("size"),
            dates=AnchorDates(
                archived_at=archived,
                call_date=call_dates.get(obj.get("followup_id") or ""),
                last_activity=last_activity,
            ),
            policy=policy,
            manifest_key=key,
        )
    # The manifest itself and its dossier: the archive's bookkeeping, purged only when the
    # policy gives these kinds a maximum.
    dates = AnchorDates(archived_at=created, last_activity=last_activity)
    yield _Named(debt_id, key, None, "manifest", None, None, dates, policy, key)
    dossier = keys.dossier_key(debt_id, seq)
    yield _Named(debt_id, dossier, None, "dossier", None, None, dates, policy, key)


def _plan_debt(
    store: ObjectStore, debt_id: str, policies: _Policies, now: datetime, plan: PurgePlan
) -> None:
    manifests = _manifests(store, debt_id)
    if not manifests:
        plan.problems.append(PurgeProblem("no_manifest", "no manifest for this debt", debt_id))
        return
    latest = manifests[-1][2]
    last_activity = parse_iso((latest.get("summary") or {}).get("last_activity"))
    on_hold = hold_active(store, debt_id)

    # (key, version_id or "") -> (latest delete-after, the naming that gives it) or None when
    # some manifest gives no maximum (never purged).
    decided: dict[tuple[str, str], tuple[datetime, _Named] | None] = {}
    for seq, mkey, manifest in manifests:
        policy = policies.for_manifest(manifest, mkey, debt_id, plan.problems)
        if policy is None:
            # No usable policy: every object this manifest names is kept.
            for obj in all_objects(manifest):
                decided[(obj["key"], obj.get("version_id") or "")] = None
            continue
        for named in _named_objects(debt_id, seq, mkey, manifest, policy, last_activity):
            ident = (named.key, named.version_id or "")
            if ident in decided and decided[ident] is None:
                continue
            limit = delete_after(named.policy, named.kind, named.dates)
            if limit is None:
                decided[ident] = None
                continue
            previous = decided.get(ident)
            if previous is None or limit > previous[0]:
                decided[ident] = (limit, named)

    plan.considered += len(decided)
    for (key, _), entry in sorted(decided.items()):
        if entry is None or not now > entry[0]:
            continue
        limit, named = entry
        info = store.head(key, named.version_id)
        if info is None or info.version_id is None:
            if named.kind not in ("manifest", "dossier"):  # a dossier may not exist
                plan.problems.append(
                    PurgeProblem(
                        "missing",
                        "named by a manifest but not stored (already purged?)",
                        debt_id,
                        key,
                    )
                )
            continue
        if named.sha256 and info.sha256 and named.sha256 != info.sha256:
            plan.problems.append(
                PurgeProblem(
                    "sha256_mismatch",
                    f"stored sha256 {info.sha256} differs from the manifest's {named.sha256}; "
                    "kept for investigation",
                    debt_id,
                    key,
                )
            )
            continue
        resolved = resolve_anchor(named.policy.rules[named.kind].anchor, named.dates)
        candidate = PurgeCandidate(
            debt_id=debt_id,
            key=key,
            version_id=info.version_id,
            kind=named.kind,
            sha256=named.sha256 or info.sha256,
            size=info.size,
            delete_after=limit,
            anchor=resolved.used,
            anchor_date=resolved.date,
            policy_name=named.policy.name,
            policy_sha256=named.policy.sha256,
            manifest_key=named.manifest_key,
        )
        (plan.held if on_hold or info.legal_hold else plan.candidates).append(candidate)


def plan_purge(
    store: ObjectStore,
    *,
    policy: RetentionPolicy | None,
    now: datetime,
    debt_ids: Sequence[str] | None = None,
) -> PurgePlan:
    """List the object versions past their maximum retention at ``now`` and not under legal
    hold (``candidates``), and those past it but held (``held``). Reads only.

    ``policy`` overrides the policy each manifest names. ``debt_ids`` limits the debts (default:
    every debt with a manifest). See the module docstring for the rules applied.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    ids = [check_id(d, what="debt id") for d in debt_ids] if debt_ids else None
    plan = PurgePlan(now=now.astimezone(UTC), policy_name=policy.name if policy else None)
    policies = _Policies(policy)
    for debt_id in ids if ids is not None else debts_in_bucket(store):
        plan.debts.append(debt_id)
        _plan_debt(store, debt_id, policies, plan.now, plan)
    return plan


# ---------------------------------------------------------------------------------------------
# Executing


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
    result = PurgeResult()
    for debt_id, candidates in sorted(plan.by_debt().items()):
        now = clock()
        record = _deletion_record(
            debt_id,
            candidates,
            at=iso(now),
            reason=reason.strip(),
            actor=actor.strip(),
            bypass_governance=bypass_governance,
            plan=plan,
        )
        try:
            lock = event_lock(store, debt_id, now)
            key, sha, version_id = write_event(store, record, now=now, lock=lock, catalog=catalog)
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
                reason = f"{refusal_reason(exc)}{_lock_state(store, c.key, c.version_id)}"
                result.refused.append(PurgeRefusal(debt_id, c.key, c.version_id, reason))
                continue
            result.deleted.append(c)
    return result
