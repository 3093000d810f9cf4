"""Purge planning: which object versions are past their maximum retention. Reads only.

:func:`plan_purge` changes nothing (a dry run is a plan);
:func:`archiver.retention.purge.execute_purge` deletes what a plan lists.

Decisions, written down so a compliance officer can check them:

* **What is considered.** Every object version a manifest names (debt record, followup
  records, media), plus the manifest itself and its dossier, so that a policy giving those
  kinds a maximum is applied too. Events (holds, releases, deletion records) are never purged.
  A kind without a maximum is never purged.
* **Anchor dates.** ``call_date`` of the followup (records and media), ``last_activity`` from
  the *latest* manifest of the debt (activity moves forward), ``archived_at`` = the naming
  manifest's ``created_at`` (a media's own ``downloaded_at`` when it has one). A missing anchor
  falls back as :func:`archiver.retention.policies.resolve_anchor` says (the latest known date).
* **Policy.** The one given (``--policy``), else the one each manifest names, looked up by name
  in the same :class:`~archiver.retention.registry.PolicyRegistry` the archive run uses (the
  user's policy folders, then the shipped policies); a manifest whose policy cannot be loaded
  keeps its objects (listed as a problem). When the loaded file's SHA-256 differs from the one
  the manifest recorded, the current file is used and the difference is listed as a problem
  (informational): the deletion record names the SHA-256 of the file actually applied.
* **Named by several manifests.** Considered once, with the *latest* delete-after date of all
  of them (and never purged if any of them gives its kind no maximum): the conservative side.
* **Legal holds win.** A version with its legal hold on, or any version of a debt with a
  matter on hold (:func:`archiver.retention.events.open_matters`), is listed under ``held``
  and never deleted; S3 would refuse anyway.
* **Locks are read, not tried.** A version past its maximum whose Object Lock still runs at
  ``now`` (its retain-until date is later) is listed under ``locked`` with that lock, and left
  out of the candidates: COMPLIANCE always, GOVERNANCE unless the plan is made for a purge
  that bypasses governance. Nothing is written for a version S3 would refuse to delete.
* **Interrupted purges.** A purge intent no outcome names (see
  :mod:`archiver.retention.events`) means a purge stopped between its deletes and its outcome
  record: the versions it named that are gone are listed under ``unfinished`` (not as missing)
  for the next execution to record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.common.ids import check_id
from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import iso, parse_iso
from archiver.errors import ArchiverError, ConfigError, PolicyError, ValidationError
from archiver.manifest.document import all_objects
from archiver.manifest.reader import debts_in_bucket, manifest_keys
from archiver.retention.events import open_matters, read_events, unfinished_purges
from archiver.retention.policies import (
    AnchorDates,
    ObjectKind,
    RetentionPolicy,
    delete_after,
    resolve_anchor,
)
from archiver.retention.registry import PolicyRegistry
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["PurgeCandidate", "PurgePlan", "UnfinishedPurge", "lock_refuses", "plan_purge"]


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
    lock_mode: str | None = None  # the version's Object Lock when planned
    retain_until: datetime | None = None

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
            "lock": {"mode": self.lock_mode, "retain_until": iso(self.retain_until)},
        }

    def lock_text(self) -> str:
        """``GOVERNANCE until 2027-01-01T00:00:00Z`` (or ``no lock``)."""
        if self.lock_mode is None or self.retain_until is None:
            return "no lock"
        return f"{self.lock_mode} until {iso(self.retain_until)}"


@dataclass(frozen=True)
class UnfinishedPurge:
    """A purge intent that no outcome names: ``gone`` are the versions it named that no
    longer exist (deleted, never recorded as such), as the intent lists them."""

    debt_id: str
    intent_key: str
    gone: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"debt_id": self.debt_id, "intent_key": self.intent_key, "versions": self.gone}


@dataclass
class PurgePlan:
    """What a purge would delete (``candidates``), what it keeps because of a hold (``held``)
    or a lock still running (``locked``), and what an interrupted purge left unrecorded."""

    now: datetime
    policy_name: str | None
    bypass_governance: bool = False
    candidates: list[PurgeCandidate] = field(default_factory=list)
    held: list[PurgeCandidate] = field(default_factory=list)
    locked: list[PurgeCandidate] = field(default_factory=list)
    unfinished: list[UnfinishedPurge] = field(default_factory=list)
    considered: int = 0
    problems: list[Problem] = field(default_factory=list)
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
            "bypass_governance": self.bypass_governance,
            "debts": self.debts,
            "considered": self.considered,
            "candidates": [c.to_dict() for c in self.candidates],
            "held": [c.to_dict() for c in self.held],
            "locked": [c.to_dict() for c in self.locked],
            "unfinished": [u.to_dict() for u in self.unfinished],
            "problems": [p.to_dict() for p in self.problems],
        }


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

    def __init__(self, override: RetentionPolicy | None, registry: PolicyRegistry) -> None:
        self.override = override
        self.registry = registry
        self.cache: dict[str, RetentionPolicy | ArchiverError] = {}

    def for_manifest(
        self, manifest: dict[str, Any], key: str, debt_id: str, problems: list[Problem]
    ) -> RetentionPolicy | None:
        if self.override is not None:
            return self.override
        ref = manifest.get("policy") or {}
        name = ref.get("name")
        if not isinstance(name, str) or not name:
            problems.append(
                Problem(
                    ProblemKind.NO_POLICY, "the manifest names no policy", debt_id=debt_id, key=key
                )
            )
            return None
        if name not in self.cache:
            try:
                self.cache[name] = self.registry.load(name)
            except (ConfigError, PolicyError) as exc:
                self.cache[name] = exc
        policy = self.cache[name]
        if isinstance(policy, ArchiverError):
            problems.append(
                Problem(
                    ProblemKind.POLICY_UNAVAILABLE,
                    f"policy {name!r} named by the manifest cannot be loaded ({policy}); "
                    "its objects are kept",
                    debt_id=debt_id,
                    key=key,
                )
            )
            return None
        if ref.get("sha256") and ref["sha256"] != policy.sha256:
            problems.append(
                Problem(
                    ProblemKind.POLICY_CHANGED,
                    f"policy {name!r} has changed since the manifest was written "
                    f"(recorded sha256 {ref['sha256'][:12]}..., now {policy.sha256[:12]}...); "
                    "the current file is applied",
                    debt_id=debt_id,
                    key=key,
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
    # The manifest itself (with its timestamp token, when it has one) and its dossier: the
    # archive's bookkeeping, purged only when the policy gives these kinds a maximum.
    dates = AnchorDates(archived_at=created, last_activity=last_activity)
    yield _Named(debt_id, key, None, "manifest", None, None, dates, policy, key)
    token = keys.manifest_token_key(debt_id, seq)
    yield _Named(debt_id, token, None, "manifest", None, None, dates, policy, key)
    dossier = keys.dossier_key(debt_id, seq)
    yield _Named(debt_id, dossier, None, "dossier", None, None, dates, policy, key)


def _plan_debt(
    store: ObjectStore, debt_id: str, policies: _Policies, now: datetime, plan: PurgePlan
) -> None:
    manifests = _manifests(store, debt_id)
    if not manifests:
        plan.problems.append(
            Problem(ProblemKind.NO_MANIFEST, "no manifest for this debt", debt_id=debt_id)
        )
        return
    latest = manifests[-1][2]
    last_activity = parse_iso((latest.get("summary") or {}).get("last_activity"))
    events = read_events(store, debt_id)
    on_hold = bool(open_matters(events))
    unrecorded = _unfinished(store, debt_id, events, plan)

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
            if (key, named.version_id) in unrecorded:
                continue  # deleted by an interrupted purge: listed under "unfinished"
            if named.kind not in ("manifest", "dossier"):  # a dossier may not exist
                plan.problems.append(
                    Problem(
                        ProblemKind.MISSING,
                        "named by a manifest but not stored (already purged?)",
                        debt_id=debt_id,
                        key=key,
                    )
                )
            continue
        if named.sha256 and info.sha256 and named.sha256 != info.sha256:
            plan.problems.append(
                Problem(
                    ProblemKind.SHA256_MISMATCH,
                    f"stored sha256 {info.sha256} differs from the manifest's {named.sha256}; "
                    "kept for investigation",
                    debt_id=debt_id,
                    key=key,
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
            lock_mode=info.lock_mode,
            retain_until=info.retain_until,
        )
        if on_hold or info.legal_hold:
            plan.held.append(candidate)
        elif lock_refuses(candidate, now, bypass_governance=plan.bypass_governance):
            plan.locked.append(candidate)
        else:
            plan.candidates.append(candidate)


def lock_refuses(candidate: PurgeCandidate, now: datetime, *, bypass_governance: bool) -> bool:
    """Whether S3 would refuse to delete ``candidate`` at ``now`` because of its retention:
    its retain-until date is later, and the lock is COMPLIANCE or governance is not bypassed.
    (Legal holds are apart: see ``held``.)"""
    if candidate.retain_until is None or candidate.retain_until <= now:
        return False
    return candidate.lock_mode == "COMPLIANCE" or not bypass_governance


def _unfinished(
    store: ObjectStore, debt_id: str, events: list[dict[str, Any]], plan: PurgePlan
) -> set[tuple[str, str | None]]:
    """Record the interrupted purges of the debt in ``plan``; the versions they deleted."""
    gone: set[tuple[str, str | None]] = set()
    for intent in unfinished_purges(events):
        deleted = [
            v
            for v in intent.get("versions") or []
            if isinstance(v, dict) and store.head(v.get("key", ""), v.get("version_id")) is None
        ]
        plan.unfinished.append(UnfinishedPurge(debt_id, intent["key"], deleted))
        gone.update((str(v.get("key")), v.get("version_id")) for v in deleted)
    return gone


def plan_purge(
    store: ObjectStore,
    *,
    policy: RetentionPolicy | None,
    registry: PolicyRegistry,
    now: datetime,
    debt_ids: Sequence[str] | None = None,
    bypass_governance: bool = False,
) -> PurgePlan:
    """List the object versions past their maximum retention at ``now`` that a purge can
    delete (``candidates``: no legal hold, no lock still running, GOVERNANCE locks counted as
    over when ``bypass_governance``), those past it but held (``held``) or still locked
    (``locked``), and what interrupted purges deleted without recording it. Reads only.

    ``policy`` overrides the policy each manifest names; without it, each manifest's policy is
    looked up by name in ``registry``. ``debt_ids`` limits the debts (default:
    every debt with a manifest). See the module docstring for the rules applied.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    ids = [check_id(d, what="debt id") for d in debt_ids] if debt_ids else None
    plan = PurgePlan(
        now=now.astimezone(UTC),
        policy_name=policy.name if policy else None,
        bypass_governance=bypass_governance,
    )
    policies = _Policies(policy, registry)
    for debt_id in ids if ids is not None else debts_in_bucket(store):
        plan.debts.append(debt_id)
        _plan_debt(store, debt_id, policies, plan.now, plan)
    return plan
