"""Sync run records: ``sync/runs/{started_at}-{run_id}.json``, one per run (each shard its
own), immutable evidence of what a scheduled run did and what it left for the next one.

A record (schema ``sync_run``) says the mode, window, shard, requests spent, the debts it
touched with their manifest keys and SHA-256s, followups seen, media stored, problems, what
is pending, whether it is ``complete``, and the key and SHA-256 of the previous record of
its *lane* (``window``, ``full``, or either with ``-shard-I-of-N``): a chain per lane, like a
debt's manifests. Records are written like every object: conditional, checksummed, locked.

The next window starts from these records (:mod:`archiver.sync.window`), not from a local
file, so any machine can run the next sync. :func:`run_chain_problems` is what ``verify``
checks: every link resolves to the exact bytes it names, each lane has one first record,
no two records continue the same one (a fork: two runs of one lane at the same time), and
every manifest a record names is stored with the SHA-256 it says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archiver.common.canonical import canonical_json, sha256_hex
from archiver.common.problems import Problem, ProblemKind
from archiver.common.schemas import validate
from archiver.common.time import compact_stamp
from archiver.retention.locks import new_lock
from archiver.retention.policies import AnchorDates, RetentionPolicy
from archiver.store.objects import ObjectStore

__all__ = [
    "RUNS_PREFIX",
    "RUN_FORMAT",
    "StoredRun",
    "lane_of",
    "latest_of_lane",
    "lane_history",
    "new_run_id",
    "read_runs",
    "run_overview",
    "run_chain_problems",
    "run_key",
    "write_run",
]

RUNS_PREFIX = "sync/runs/"
RUN_FORMAT = "getbill-archiver/sync-run"


def new_run_id() -> str:
    """A short random id; the key's timestamp orders runs, this keeps them apart."""
    return uuid.uuid4().hex[:12]


def run_key(started_at: datetime, run_id: str) -> str:
    """``sync/runs/20261201T101500.123456Z-3f2a9c1b7d4e.json``: sorts by start time."""
    return f"{RUNS_PREFIX}{compact_stamp(started_at)}-{run_id}.json"


def lane_of(mode: str, shard_index: int, shard_count: int) -> str:
    """The chain a record belongs to: ``window``, ``full-shard-1-of-4``, ..."""
    return mode if shard_count == 1 else f"{mode}-shard-{shard_index}-of-{shard_count}"


@dataclass(frozen=True)
class StoredRun:
    """A run record as stored: key, exact bytes, parsed content."""

    key: str
    data: bytes
    record: dict[str, Any]

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    @property
    def lane(self) -> str:
        return str(self.record.get("lane", ""))

    def ref(self) -> dict[str, str]:
        return {"key": self.key, "sha256": self.sha256}


def run_bytes(record: dict[str, Any]) -> bytes:
    """The canonical bytes of a record (RFC 8785), as hashed and stored."""
    return canonical_json(record)


def write_run(
    store: ObjectStore, record: dict[str, Any], policy: RetentionPolicy, now: datetime
) -> StoredRun:
    """Store a record under its key: conditional, checksummed, locked like a manifest."""
    problems = validate("sync_run", record, label="sync run record")
    if problems:
        raise problems[0]  # a ValidationError naming the field: a bug of this tool, said clearly
    key = run_key(now if not record.get("started_at") else _started(record), record["run_id"])
    data = run_bytes(record)
    lock = new_lock(policy, "manifest", AnchorDates(archived_at=now), hold=False)
    # Conditional: a key holding other bytes is refused (ObjectConflictError), never replaced.
    store.put_bytes(
        key, data, lock=lock, content_type="application/json", metadata={"kind": "sync-run"}
    )
    return StoredRun(key, data, record)


def _started(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["started_at"]).replace("Z", "+00:00"))


def run_keys(store: ObjectStore) -> list[str]:
    """Every run record key, oldest first."""
    return sorted(k for k in store.list_keys(RUNS_PREFIX) if k.endswith(".json"))


def read_run(store: ObjectStore, key: str) -> StoredRun:
    """One record (raises on unreadable JSON: :func:`read_runs` reports it instead)."""
    data = store.read_bytes(key)
    return StoredRun(key, data, json.loads(data))


def read_runs(store: ObjectStore, *, newest_first: bool = False) -> Iterator[StoredRun]:
    """Records in key order (start time); unreadable ones, and ones that do not fit the
    schema, are skipped (``verify --all`` reports them): a sync never trips on them."""
    keys = run_keys(store)
    if newest_first:
        keys.reverse()
    for key in keys:
        try:
            run = read_run(store, key)
        except ValueError:
            continue
        if isinstance(run.record, dict) and not validate("sync_run", run.record):
            yield run


RECENT = 50
"""Records read, newest start first, to find the one of a lane that finished last."""


def latest_of_lane(store: ObjectStore, lane: str) -> StoredRun | None:
    """The record of ``lane`` that finished last among the :data:`RECENT` newest: runs that
    overlap (a manual run during a scheduled one) end in another order than they start,
    and the next record chains onto the one that ended last."""
    found: list[StoredRun] = []
    for n, run in enumerate(read_runs(store, newest_first=True)):
        if run.lane == lane:
            found.append(run)
        if n + 1 >= RECENT and found:
            break
    return max(found, key=lambda r: str(r.record.get("finished_at", ""))) if found else None


def lane_history(store: ObjectStore, latest: StoredRun) -> Iterator[StoredRun]:
    """``latest`` and the records before it in its lane, following ``previous`` links."""
    run: StoredRun | None = latest
    seen: set[str] = set()
    while run is not None and run.key not in seen:
        seen.add(run.key)
        yield run
        prev = run.record.get("previous")
        if not prev:
            return
        try:
            run = read_run(store, prev["key"])
        except (ValueError, KeyError):
            return
        if run.sha256 != prev.get("sha256"):
            return  # verify reports the broken link


def run_overview(run: StoredRun) -> dict[str, Any]:
    """One line of ``archiver status --runs``: what a record says, without its debt list."""
    r = run.record
    return {
        "key": run.key,
        "sha256": run.sha256,
        "lane": run.lane,
        "mode": r.get("mode"),
        "started_at": r.get("started_at"),
        "finished_at": r.get("finished_at"),
        "window": r.get("window"),
        "full_pass": r.get("full_pass"),
        "requests": (r.get("requests") or {}).get("total"),
        "per_debt_cost": r.get("per_debt_cost"),
        "debts": len(r.get("debts") or []),
        "followups_seen": r.get("followups_seen"),
        "media_stored": r.get("media_stored"),
        "problems": len(r.get("problems") or []),
        "pending": r.get("pending"),
        "complete": r.get("complete"),
    }


def run_chain_problems(store: ObjectStore, *, check_manifests: bool = True) -> list[Problem]:
    """Everything wrong with the run records: unreadable or invalid records, broken links,
    forks, lanes with more than one start, manifests not stored as a record says."""
    problems: list[Problem] = []
    runs: dict[str, StoredRun] = {}
    for key in run_keys(store):
        try:
            run = read_run(store, key)
        except ValueError as exc:
            problems.append(Problem(ProblemKind.RUN_RECORD_INVALID, f"not JSON: {exc}", key=key))
            continue
        invalid = validate("sync_run", run.record, label=key)
        if invalid:
            problems.append(
                Problem(
                    ProblemKind.RUN_RECORD_INVALID,
                    "does not fit the sync run schema: " + invalid[0].message,
                    key=key,
                )
            )
            continue
        if run.data != run_bytes(run.record):
            problems.append(
                Problem(
                    ProblemKind.RUN_RECORD_INVALID,
                    "not in canonical form (RFC 8785): its bytes were not written by this tool",
                    key=key,
                )
            )
        runs[key] = run
    by_lane: dict[str, list[StoredRun]] = {}
    for run in runs.values():
        by_lane.setdefault(run.lane, []).append(run)
    for lane, members in sorted(by_lane.items()):
        problems.extend(_lane_problems(lane, members, runs))
    if check_manifests:
        for run in runs.values():
            problems.extend(_manifest_problems(store, run))
    return problems


def _lane_problems(
    lane: str, members: list[StoredRun], runs: dict[str, StoredRun]
) -> list[Problem]:
    problems: list[Problem] = []
    firsts = [r for r in members if not r.record.get("previous")]
    if len(firsts) > 1:
        # Two runs of the lane started on an empty lane at the same time: each record is
        # intact and names what it did; the lane forked (a warning, like any fork).
        problems.append(
            Problem(
                ProblemKind.RUN_CHAIN_FORK,
                f"lane {lane} has {len(firsts)} first records (no previous; runs of one lane "
                "at the same time): " + ", ".join(sorted(r.key for r in firsts)),
                key=sorted(r.key for r in firsts)[1],
                severity="warning",
            )
        )
    continued: dict[str, list[str]] = {}
    for run in members:
        prev = run.record.get("previous")
        if not prev:
            continue
        target = runs.get(prev["key"])
        if target is None:
            problems.append(
                Problem(
                    ProblemKind.RUN_CHAIN_BROKEN,
                    f"names a previous run record that is missing or unreadable: {prev['key']}",
                    key=run.key,
                )
            )
            continue
        if target.sha256 != prev["sha256"]:
            problems.append(
                Problem(
                    ProblemKind.RUN_CHAIN_BROKEN,
                    f"the previous run record {prev['key']} is not the one it names",
                    key=run.key,
                    expected=prev["sha256"],
                    found=target.sha256,
                )
            )
            continue
        if target.lane != lane:
            problems.append(
                Problem(
                    ProblemKind.RUN_CHAIN_BROKEN,
                    f"continues {prev['key']} of another lane ({target.lane})",
                    key=run.key,
                )
            )
        continued.setdefault(prev["key"], []).append(run.key)
    for prev_key, nexts in sorted(continued.items()):
        if len(nexts) > 1:
            problems.append(
                Problem(
                    ProblemKind.RUN_CHAIN_FORK,
                    f"{len(nexts)} runs of lane {lane} continue {prev_key} (they ended at the "
                    "same time; each record is intact): " + ", ".join(sorted(nexts)),
                    key=prev_key,
                    severity="warning",
                )
            )
    return problems


def _manifest_problems(store: ObjectStore, run: StoredRun) -> list[Problem]:
    problems = []
    for debt in run.record.get("debts", []):
        key, sha = debt.get("manifest_key"), debt.get("manifest_sha256")
        if not key or not sha:
            continue
        info = store.head(key)
        found = None
        if info is not None:
            found = store.sha256_of(key, info.version_id)[0]
        if found != sha:
            problems.append(
                Problem(
                    ProblemKind.RUN_MANIFEST_MISMATCH,
                    f"names manifest {key} "
                    + ("which is not stored" if found is None else "with other bytes than stored"),
                    key=run.key,
                    debt_id=debt.get("debt_id"),
                    expected=sha,
                    found=found,
                )
            )
    return problems
