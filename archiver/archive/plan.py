"""Planning one debt: read the previous manifest and the API, hash the records, decide what
to reuse and what to fetch, and which locks and extensions each object gets.

Planning reads (S3 and the API) and writes nothing: the retention extensions it decides are
applied by :mod:`archiver.archive.storing` before anything new is stored, and a dry run ends
here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from archiver.archive.results import ArchiveEvent, ArchiveEventKind
from archiver.archive.resume import StoredMedia
from archiver.common.canonical import canonical_sha256, sha256_hex
from archiver.common.problems import Problem
from archiver.common.time import iso, parse_iso
from archiver.errors import ApiAuthError, ApiError
from archiver.getbill.client import Listing
from archiver.getbill.records import Debt, Followup, MediaRef
from archiver.manifest.entries import (
    Extension,
    FollowupEntry,
    MediaEntry,
    Purged,
    followup_entries,
    media_entries,
)
from archiver.manifest.hidden import hidden_problems
from archiver.manifest.reader import latest_manifest
from archiver.retention.events import purged_versions, read_events
from archiver.retention.holds import hold_active
from archiver.retention.locks import extended_until, new_lock
from archiver.retention.policies import AnchorDates, ObjectKind, RetentionPolicy, last_activity
from archiver.retention.policy_choice import PolicyChange, PolicySelector
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock

__all__ = [
    "DebtFacts",
    "DebtPlan",
    "FollowupSource",
    "MediaFetch",
    "Planner",
    "PreviousManifest",
    "RecordPut",
    "carry_retention",
]


class FollowupSource(Protocol):
    """The part of :class:`archiver.getbill.client.GetbillClient` an archive run needs."""

    def list_followups(self, debt_id: str) -> Listing[Followup]: ...
    def get_followup(self, followup_id: str) -> Followup: ...
    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[Any]]: ...


class DebtRecordRule(Protocol):
    """Whether a run reads a debt's record from the API again, or keeps the archived one
    (:class:`archiver.sync.debts.DebtRecords` decides for sync runs; ``archive`` always reads)."""

    def needed(self, debt_id: str, previous: dict[str, Any] | None, changed: bool) -> bool:
        """``previous``: the latest manifest; ``changed``: the listing has a new or changed
        followup."""
        ...


@dataclass(frozen=True)
class PreviousManifest:
    """The latest manifest in S3, which the new one chains onto."""

    key: str
    data: bytes
    manifest: dict[str, Any]
    version_id: str | None

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    @property
    def sequence(self) -> int:
        return int(self.manifest["sequence"])


@dataclass(frozen=True)
class DebtFacts:
    """What planning read about one debt."""

    debt_id: str
    now: datetime
    previous: PreviousManifest | None
    followups: list[Followup]
    debt: Debt | None
    activity: datetime | None  # the debt's last activity
    hold: bool  # a legal hold is in force
    # (key, version id) -> deletion record: versions a purge deleted (never stored again)
    purged: dict[tuple[str, str | None], Purged]

    def dates(self, call_date: datetime | None = None) -> AnchorDates:
        """The dates an object's retention counts from."""
        return AnchorDates(archived_at=self.now, call_date=call_date, last_activity=self.activity)

    def lock(self, policy: RetentionPolicy, kind: str, call_date: datetime | None) -> Lock:
        """The lock of an object of ``kind`` stored now."""
        return new_lock(policy, cast(ObjectKind, kind), self.dates(call_date), hold=self.hold)


@dataclass(frozen=True)
class RecordPut:
    """A followup record to store."""

    followup_id: str
    data: bytes
    lock: Lock
    key: str


@dataclass(frozen=True)
class MediaFetch:
    """A medium to download and store."""

    ref: MediaRef
    lock: Lock


@dataclass
class DebtPlan:
    """What one run will do for one debt; storing fills in version ids, media and problems."""

    facts: DebtFacts
    problems: list[Problem]
    debt_unavailable: dict[str, Any] | None  # why the debt record is missing
    policy: RetentionPolicy  # the debt's (see archiver.retention.policy_choice)
    policy_change: PolicyChange | None = None  # recorded in the manifest
    policy_kept_from: int | None = None  # the manifest whose policy the debt keeps
    entries: dict[str, FollowupEntry] = field(default_factory=dict)  # by followup id
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # as stored, parsed back
    record_puts: list[RecordPut] = field(default_factory=list)
    to_fetch: list[MediaFetch] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)  # retain-until moved forward
    reused: int = 0  # media taken from earlier runs

    @property
    def debt_id(self) -> str:
        return self.facts.debt_id


def carry_retention(
    policy: RetentionPolicy,
    facts: DebtFacts,
    kind: str,
    key: str,
    version_id: str | None,
    current: str | None,
    call_date: datetime | None,
) -> tuple[str | None, Extension | None]:
    """Retain-until of a reused object: ``current``, or later when the policy anchors its kind
    on the last activity and that moved forward (then also the extension to apply)."""
    dates = facts.dates(call_date)
    wanted = extended_until(policy, cast(ObjectKind, kind), parse_iso(current), dates)
    if wanted is None:
        return current, None
    return iso(wanted), Extension(key, version_id, current, wanted)


def _changed(followups: list[Followup], archived: dict[str, FollowupEntry]) -> bool:
    """Whether a listing has a followup that is new, or differs from its archived record."""
    for f in followups:
        old = archived.get(f.id)
        if old is None or old.record_sha256 != canonical_sha256(f.sanitized_record())[1]:
            return True
    return False


class Planner:
    """Plans the debts of one run (see the module docstring)."""

    def __init__(
        self,
        *,
        api: FollowupSource,
        store: ObjectStore,
        policy: PolicySelector,
        clock: Callable[[], datetime],
        emit: Callable[[ArchiveEvent], None],
        debt_rule: DebtRecordRule | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.policy = policy
        self.clock = clock
        self._emit = emit
        self._debt_rule = debt_rule

    def plan(self, debt_id: str, *, media_only: bool = False) -> DebtPlan:
        """Read the previous manifest and the API, hash the records, decide what to reuse.

        Media already named by the previous manifest, or left in S3 by an interrupted run
        (same followup, kind and source), are reused without downloading. ``media_only``
        plans only which media to fetch (no debt record, no hidden-object check). Nothing the
        previous manifest names leaves the snapshot: a followup no longer listed, or a medium
        its record no longer links to, is carried with its retention (marked when purged).
        """
        stored = latest_manifest(self.store, debt_id)
        prev = PreviousManifest(*stored) if stored else None
        # Before the API is asked anything: a debt whose policy is unclear is not archived.
        choice = self.policy.choose(debt_id, prev.manifest if prev else None, self.clock())
        listing = self.api.list_followups(debt_id)
        followups: list[Followup] = list(listing.items)
        prev_entries = followup_entries(prev.manifest if prev else None)
        debt_problems: list[Problem] = []
        if media_only:  # which media to fetch now: no debt record, nothing else read
            debt, debt_unavailable = None, None
        else:
            debt, debt_unavailable, debt_problems = self._debt_record(
                debt_id, prev, _changed(followups, prev_entries)
            )
        dates = [f.call_date for f in followups] + [f.processed_at for f in followups]
        if listing.partial and prev is not None:
            # Part of the followups only: the activity of the others is the archived one.
            dates.append(parse_iso(prev.manifest.get("last_activity")))
        facts = DebtFacts(
            debt_id=debt_id,
            now=self.clock(),
            previous=prev,
            followups=followups,
            debt=debt,
            activity=last_activity(dates),
            hold=hold_active(self.store, debt_id),
            purged=self._purged(debt_id) if prev else {},
        )
        plan = DebtPlan(
            facts=facts,
            problems=[Problem.from_exception(p, debt_id=debt_id) for p in listing.problems]
            + debt_problems
            + choice.problems,
            debt_unavailable=debt_unavailable,
            policy=choice.policy,
            policy_change=choice.change,
            policy_kept_from=choice.kept_from,
        )
        if listing.unstable and listing.unstable_problem is not None:
            plan.problems.append(listing.unstable_problem)  # blocking: the run is partial
        prev_media = media_entries(prev.manifest if prev else None)
        orphans = StoredMedia(self.store, debt_id)
        for f in followups:
            data, sha = canonical_sha256(f.sanitized_record())
            plan.records[f.id] = json.loads(data)
            lock = facts.lock(plan.policy, "record", f.call_date)
            key = keys.record_key(debt_id, f.id, sha)
            entry = FollowupEntry.from_followup(f, key=key, sha256=sha, size=len(data), lock=lock)
            old = prev_entries.get(f.id)
            if old and old.record_sha256 == sha:
                entry = self._carry_record(plan, entry, old, f.call_date)
            else:
                plan.record_puts.append(RecordPut(f.id, data, lock, key))
            plan.entries[f.id] = entry

            # Media: reuse what the previous manifest names, or what an interrupted run left.
            for ref in f.media():
                old_m = prev_media.get((f.id, ref.kind, ref.source))
                if old_m is not None:
                    entry.media.append(self._carry_media(plan, old_m, f.call_date))
                    plan.reused += 1
                    continue
                lock = facts.lock(plan.policy, ref.kind, f.call_date)
                found = orphans.find(ref, lock, facts.now)
                if found is not None:
                    # Stored earlier (an interrupted run, or a sync ahead of this manifest):
                    # its lock follows the last activity as a reused object's would.
                    until = self._keep_or_extend(
                        plan,
                        ref.kind,
                        found.key,
                        found.version_id,
                        found.retain_until,
                        f.call_date,
                    )
                    entry.media.append(found.updated(retain_until=until))
                    plan.reused += 1
                else:
                    plan.to_fetch.append(MediaFetch(ref, lock))
            if old is not None:
                # Media an earlier manifest names that the record no longer links to (the
                # API dropped the URL) are still stored evidence: they stay, until purged.
                listed = {(ref.kind, ref.source) for ref in f.media()}
                for old_m in old.media or []:
                    if (old_m.kind, old_m.source) not in listed:
                        entry.media.append(self._carry_media(plan, old_m, f.call_date))
                        plan.reused += 1

        # Followups archived earlier but absent from this listing stay in the snapshot (their
        # evidence is still stored, still retained, still in the dossier), marked as such;
        # a listing that never settled may simply have missed them, and a partial one (a
        # sync window) leaves them out on purpose, so neither marks any.
        for fid, old in prev_entries.items():
            if fid in plan.entries:
                continue
            call_date = parse_iso(old.call_date)
            entry = old
            if not (listing.unstable or listing.partial or old.upstream_missing_since):
                entry = old.updated(upstream_missing_since=iso(facts.now))
            entry = self._carry_record(plan, entry, old, call_date)
            carried = [self._carry_media(plan, m, call_date) for m in old.media or []]
            entry = entry.updated(media=carried)
            plan.reused += len(entry.media)
            if not entry.record_purged:
                stored_record = self.store.read_bytes(old.record_key, old.record_version_id)
                plan.records[fid] = json.loads(stored_record)
            plan.entries[fid] = entry
        if plan.reused:
            self._emit(
                ArchiveEvent(ArchiveEventKind.MEDIA_REUSED, debt_id=debt_id, count=plan.reused)
            )
        if not media_only:
            plan.problems.extend(self._hidden_reused(plan))
        return plan

    def _hidden_reused(self, plan: DebtPlan) -> list[Problem]:
        """What this run would reuse (records, media, the debt record) that a delete marker
        hides: a problem each, saying how to show it again."""
        reused: list[dict[str, Any]] = []
        for entry in plan.entries.values():
            if entry.record_version_id and not entry.record_purged:
                reused.append(
                    {
                        "key": entry.record_key,
                        "version_id": entry.record_version_id,
                        "kind": "record",
                        "followup_id": entry.id,
                    }
                )
            reused += [
                {**m.to_json(), "followup_id": entry.id}
                for m in entry.media
                if m.version_id and not m.purged
            ]
        prev = plan.facts.previous
        archived = (prev.manifest.get("debt") if prev else None) or {}
        debt = plan.facts.debt
        sha = canonical_sha256(debt.sanitized_record())[1] if debt else None
        if archived and sha in (None, archived.get("sha256")):  # the archived one is kept
            reused.append({**archived, "kind": "debt"})
        return hidden_problems(self.store, plan.debt_id, reused) if reused else []

    def _debt_record(
        self, debt_id: str, prev: PreviousManifest | None, changed: bool
    ) -> tuple[Debt | None, dict[str, Any] | None, list[Problem]]:
        """The debt record: from the API, or the archived one when the rule says it cannot
        have changed (then its stored bytes, so that storing finds them unchanged)."""
        if self._debt_rule is None or self._debt_rule.needed(
            debt_id, prev.manifest if prev else None, changed
        ):
            return self._read_debt(debt_id)
        assert prev is not None  # a rule never skips a debt archived for the first time
        archived = prev.manifest.get("debt")
        if not archived or archived.get("purged"):
            # Nothing archived to keep (the token may not read debts): say what the last
            # manifest said, without asking again.
            return None, prev.manifest.get("debt_unavailable"), []
        stored = self.store.read_bytes(archived["key"], archived.get("version_id"))
        return Debt.from_record(json.loads(stored)), None, []

    def _read_debt(self, debt_id: str) -> tuple[Debt | None, dict[str, Any] | None, list[Problem]]:
        """The debt record, or why it is missing; plus validation problems of the record."""
        try:
            debt, problems = self.api.get_debt_checked(debt_id)
        except ApiAuthError as exc:
            # Typically 403: the token lacks debts:read. Noted in the manifest, not fatal.
            return None, {"reason": exc.api_message or exc.message, "status": exc.status}, []
        except ApiError as exc:
            # 404, or the API failing after retries: the followups are still worth archiving;
            # the previous debt record (if any) is carried forward when storing.
            reason = exc.api_message or exc.message
            return (
                None,
                {"reason": reason, "status": exc.status, "transient": exc.status != 404},
                [],
            )
        return debt, None, [Problem.from_exception(p, debt_id=debt_id) for p in problems]

    def _purged(self, debt_id: str) -> dict[tuple[str, str | None], Purged]:
        """Versions that deletion records name and that are really gone (a refused deletion
        leaves the version in place: it is still evidence)."""
        return {
            (key, vid): {"event_key": info["event_key"], "at": info["at"]}
            for (key, vid), info in purged_versions(read_events(self.store, debt_id)).items()
            if self.store.head(key, vid) is None
        }

    def _keep_or_extend(
        self,
        plan: DebtPlan,
        kind: str,
        key: str,
        version_id: str | None,
        current: str | None,
        call_date: datetime | None,
    ) -> str | None:
        until, extension = carry_retention(
            plan.policy, plan.facts, kind, key, version_id, current, call_date
        )
        if extension is not None:
            plan.extensions.append(extension)
        return until

    def _carry_record(
        self,
        plan: DebtPlan,
        entry: FollowupEntry,
        old: FollowupEntry,
        call_date: datetime | None,
    ) -> FollowupEntry:
        """Reuse the stored record an earlier manifest names (extended, or marked purged)."""
        vid = old.record_version_id
        gone = old.record_purged or plan.facts.purged.get((old.record_key, vid))
        if gone:
            plan.records.pop(entry.id, None)  # the dossier shows what is archived, only
            return entry.updated(
                record_version_id=vid,
                record_purged=gone,
                record_retain_until=old.record_retain_until,
            )
        until = self._keep_or_extend(
            plan, "record", old.record_key, vid, old.record_retain_until, call_date
        )
        return entry.updated(record_version_id=vid, record_retain_until=until)

    def _carry_media(
        self, plan: DebtPlan, old: MediaEntry, call_date: datetime | None
    ) -> MediaEntry:
        """Reuse a stored medium an earlier manifest names (extended, or marked purged)."""
        gone = old.purged or plan.facts.purged.get((old.key, old.version_id))
        if gone:
            return old.updated(purged=gone)
        until = self._keep_or_extend(
            plan, old.kind, old.key, old.version_id, old.retain_until, call_date
        )
        return old.updated(retain_until=until, legal_hold=plan.facts.hold)
