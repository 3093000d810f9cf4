"""The archive pipeline: one debt at a time, every followup and its media into WORM storage.

Per debt (see README "What one run does"):
1. read the latest manifest from S3 (S3 is the source of truth, not the catalog);
2. list every followup (all pages) and read the debt record (a 403 is noted, not fatal);
3. plan: records are hashed in memory; media already named by the previous manifest, or left in
   S3 by an interrupted run (same followup, kind and source), are reused without downloading;
4. download the other media earliest-expiry first, a bounded pool of workers, each file
   streamed to a temp file while hashed, then stored with a conditional, checksummed, locked PUT;
5. extend the retention of earlier objects when the policy anchors on the last activity;
6. if the snapshot differs from the previous manifest, write manifest N+1 last, then the dossier.

A crash anywhere leaves either no manifest (rerun finds the stored objects and reuses them) or
a complete one (rerun finds nothing new). Nothing is ever overwritten: every PUT is
``If-None-Match: *`` and a same-key/different-bytes answer is a loud error.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from archiver.archive.results import ArchiveEvent, DebtResult, RunResult
from archiver.archive.resume import StoredMedia, media_metadata, purged_versions
from archiver.catalog.db import Catalog
from archiver.common.canonical import canonical_json, canonical_sha256, sha256_hex
from archiver.common.ids import check_id
from archiver.common.redact import redact_urls
from archiver.common.time import iso, parse_iso, utcnow
from archiver.errors import (
    ApiAuthError,
    ApiError,
    ArchiverError,
    MediaError,
    ObjectConflictError,
    StorageError,
    UnsafeIdError,
)
from archiver.getbill.records import Debt, Followup, MediaRef
from archiver.manifest.document import (
    build_manifest,
    fingerprint,
    manifest_bytes,
    media_index,
    record_index,
)
from archiver.manifest.reader import latest_manifest
from archiver.retention.holds import hold_active
from archiver.retention.policies import AnchorDates, RetentionPolicy, last_activity, retain_until
from archiver.store import keys
from archiver.store.objects import Lock, ObjectStore, StoredObject

Clock = Callable[[], datetime]

MIN_LOCK = timedelta(days=1)
"""The shortest lock any stored object gets, even when its policy minimum has already ended."""


# --------------------------------------------------------------------------- collaborators


class FollowupSource(Protocol):
    """The part of :class:`archiver.getbill.client.GetbillClient` the pipeline needs."""

    def list_followups(self, debt_id: str) -> Any: ...
    def get_followup(self, followup_id: str) -> Followup: ...
    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[Any]]: ...


class Downloader(Protocol):
    def download(self, ref: MediaRef, refresh: Callable[[MediaRef], MediaRef]) -> Any: ...


# (manifest, manifest key, manifest sha256, records, debt record, store) -> (pdf, renderer version)
DossierRenderer = Callable[
    [dict[str, Any], str, str, dict[str, dict[str, Any]], dict[str, Any] | None, ObjectStore],
    tuple[bytes, str],
]


@dataclass(frozen=True)
class ArchiveSettings:
    """Tuning of one archive run (documented defaults; the CLI fills them from flags/env)."""

    concurrency: int = 4
    dry_run: bool = False
    render_dossier: bool = True
    api_base_url: str | None = None


# --------------------------------------------------------------------------- helpers


def _problem(exc: BaseException, **ctx: Any) -> dict[str, Any]:
    if isinstance(exc, ArchiverError):
        out = {"type": type(exc).__name__, "message": exc.message}
        for name in (
            "followup_id",
            "kind",
            "url",
            "field",
            "status",
            "severity",
            "api_message",
            "path",
        ):
            if name in exc.context and name not in ctx:
                ctx[name if name != "url" else "source"] = exc.context[name]
    else:
        out = {"type": type(exc).__name__, "message": redact_urls(str(exc)) or type(exc).__name__}
    out.update({k: v for k, v in ctx.items() if v is not None})
    return out


def _blocking(problems: list[dict[str, Any]]) -> bool:
    """Whether any problem means something is missing (warnings about kept records are not)."""
    return any(p.get("severity") != "warning" for p in problems)


@dataclass
class _DebtRun:
    """The working state of one debt during one run."""

    debt_id: str
    now: datetime
    prev: tuple[str, bytes, dict[str, Any]] | None  # latest manifest: key, bytes, parsed
    followups: list[Followup]
    debt: Debt | None
    debt_unavailable: dict[str, Any] | None
    activity: datetime | None
    hold: bool
    problems: list[dict[str, Any]]
    # (key, version id) -> {event_key, at}: versions a purge deleted (never stored again)
    purged: dict[tuple[str, str | None], dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # followup id -> entry
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # as stored, parsed back
    record_puts: list[tuple[str, bytes, Lock, str]] = field(default_factory=list)
    to_fetch: list[tuple[MediaRef, Lock]] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    debt_entry: dict[str, Any] | None = None
    reused: int = 0
    stored: int = 0
    stored_bytes: int = 0

    @property
    def prev_manifest(self) -> dict[str, Any] | None:
        return self.prev[2] if self.prev else None


# --------------------------------------------------------------------------- the pipeline


class Archiver:
    """Archives debts. One instance per run; thread-safe use of its collaborators only."""

    def __init__(
        self,
        *,
        api: FollowupSource,
        downloader: Downloader,
        store: ObjectStore,
        policy: RetentionPolicy,
        catalog: Catalog | None = None,
        settings: ArchiveSettings = ArchiveSettings(),
        clock: Clock = utcnow,
        on_event: Callable[[ArchiveEvent], None] | None = None,
        render_dossier: DossierRenderer | None = None,
    ) -> None:
        self.api = api
        self.downloader = downloader
        self.store = store
        self.policy = policy
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
        self._emit = on_event or (lambda e: None)
        self._render = render_dossier
        self._api_lock = threading.Lock()
        self.run_id = f"{clock().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"

    # ---- public

    def run(self, debt_ids: Iterable[str]) -> RunResult:
        """Archive each debt; one failing debt never stops the others."""
        ids = list(debt_ids)
        if not self.settings.dry_run:
            self.store.check_bucket()
        if self.catalog is not None and not self.settings.dry_run:
            self.catalog.start_run(
                run_id=self.run_id,
                started_at=iso(self.clock()),
                command="archive",
                debt_ids=ids,
                options={"policy": self.policy.name, "concurrency": self.settings.concurrency},
            )
        results = [self.archive_debt(debt_id) for debt_id in ids]
        run = RunResult(self.run_id, results)
        if self.catalog is not None and not self.settings.dry_run:
            self.catalog.finish_run(
                self.run_id,
                finished_at=iso(self.clock()),
                status=run.exit_status,
                summary=run.summary(),
            )
        return run

    def archive_debt(self, debt_id: str) -> DebtResult:
        """Archive one debt; errors become a ``failed`` result naming what went wrong."""
        self._emit(ArchiveEvent("debt_started", debt_id=debt_id))
        try:
            check_id(debt_id, what="debt id")
            result = self._archive_debt(debt_id)
        except Exception as exc:  # noqa: BLE001 - one debt's failure never stops the others
            problem = _problem(exc, debt_id=debt_id)
            result = DebtResult(debt_id=debt_id, status="failed", error=problem, problems=[problem])
            self._emit(
                ArchiveEvent("log", debt_id=debt_id, message=f"failed: {problem['message']}")
            )
        self._emit(ArchiveEvent("debt_done", debt_id=debt_id, message=result.status))
        return result

    # ---- one debt

    def _archive_debt(self, debt_id: str) -> DebtResult:
        run = self._plan(debt_id)
        if self.settings.dry_run:
            return DebtResult(
                debt_id=debt_id,
                status="planned",
                followups=len(run.followups),
                media_stored=len(run.to_fetch),
                media_reused=run.reused,
                problems=run.problems,
            )
        self._store(run)
        return self._finish(run)

    def _plan(self, debt_id: str) -> _DebtRun:
        """Read the previous manifest and the API, hash the records, decide what to reuse."""
        prev = latest_manifest(self.store, debt_id)
        listing = self.api.list_followups(debt_id)
        followups: list[Followup] = list(listing.items)
        debt, debt_unavailable, debt_problems = self._read_debt(debt_id)
        run = _DebtRun(
            debt_id=debt_id,
            now=self.clock(),
            prev=prev,
            followups=followups,
            debt=debt,
            debt_unavailable=debt_unavailable,
            activity=last_activity(
                [f.call_date for f in followups] + [f.processed_at for f in followups]
            ),
            hold=hold_active(self.store, debt_id),
            problems=[_problem(p, debt_id=debt_id) for p in getattr(listing, "problems", [])]
            + debt_problems,
            purged=self._purged(debt_id) if prev else {},
        )
        prev_records = record_index(run.prev_manifest)
        prev_media = media_index(run.prev_manifest)
        orphans = StoredMedia(self.store, debt_id)
        for f in followups:
            data, sha = canonical_sha256(f.sanitized_record())
            run.records[f.id] = json.loads(data)
            lock = self._lock_for(run, "record", f.call_date)
            key = keys.record_key(debt_id, f.id, sha)
            entry: dict[str, Any] = {
                "id": f.id,
                "type": f.type,
                "status": f.status,
                "call_date": iso(f.call_date),
                "record_key": key,
                "record_sha256": sha,
                "record_size": len(data),
                "record_version_id": None,
                "record_retain_until": iso(lock.retain_until),
                "media": [],
            }
            old = prev_records.get(f.id)
            if old and old["record_sha256"] == sha:
                self._carry_record(run, entry, old, f.call_date)
            else:
                run.record_puts.append((f.id, data, lock, key))
            run.entries[f.id] = entry

            # Media: reuse what the previous manifest names, or what an interrupted run left.
            for ref in f.media():
                old_m = prev_media.get((f.id, ref.kind, ref.source))
                if old_m is not None:
                    entry["media"].append(self._carry_media(run, old_m, f.call_date))
                    run.reused += 1
                    continue
                lock = self._lock_for(run, ref.kind, f.call_date)
                found = orphans.find(ref, lock, run.now)
                if found is not None:
                    entry["media"].append(found)
                    run.reused += 1
                else:
                    run.to_fetch.append((ref, lock))

        # Followups archived earlier but absent from this listing stay in the snapshot (their
        # evidence is still stored, still retained, still in the dossier), marked as such.
        for fid, old in prev_records.items():
            if fid in run.entries:
                continue
            call_date = parse_iso(old.get("call_date"))
            entry = {**old, "upstream_missing_since": old.get("upstream_missing_since")}
            entry["upstream_missing_since"] = entry["upstream_missing_since"] or iso(run.now)
            self._carry_record(run, entry, old, call_date)
            entry["media"] = [self._carry_media(run, m, call_date) for m in old.get("media", [])]
            run.reused += len(entry["media"])
            if not entry.get("record_purged"):
                stored = self.store.read_bytes(old["record_key"], old.get("record_version_id"))
                run.records[fid] = json.loads(stored)
            run.entries[fid] = entry
        if run.reused:
            self._emit(ArchiveEvent("media_reused", debt_id=debt_id, count=run.reused))
        return run

    def _purged(self, debt_id: str) -> dict[tuple[str, str | None], dict[str, Any]]:
        """Versions that deletion records name and that are really gone (a refused deletion
        leaves the version in place: it is still evidence)."""
        return {
            (key, vid): {"event_key": info["event_key"], "at": info["at"]}
            for (key, vid), info in purged_versions(self.store, debt_id).items()
            if self.store.head(key, vid) is None
        }

    def _carry_record(
        self, run: _DebtRun, entry: dict[str, Any], old: dict[str, Any], call: datetime | None
    ) -> None:
        """Reuse the stored record an earlier manifest names (extended, or marked purged)."""
        vid = old.get("record_version_id")
        entry["record_version_id"] = vid
        gone = old.get("record_purged") or run.purged.get((old["record_key"], vid))
        if gone:
            entry["record_purged"] = gone
            entry["record_retain_until"] = old.get("record_retain_until")
            run.records.pop(entry["id"], None)  # the dossier shows what is archived, only
            return
        entry["record_retain_until"] = self._keep_or_extend(
            run, "record", old["record_key"], vid, old.get("record_retain_until"), call
        )

    def _carry_media(
        self, run: _DebtRun, old: dict[str, Any], call: datetime | None
    ) -> dict[str, Any]:
        """Reuse a stored medium an earlier manifest names (extended, or marked purged)."""
        m = dict(old)
        gone = m.get("purged") or run.purged.get((m["key"], m.get("version_id")))
        if gone:
            m["purged"] = gone
            return m
        m["retain_until"] = self._keep_or_extend(
            run, m["kind"], m["key"], m.get("version_id"), m.get("retain_until"), call
        )
        m["legal_hold"] = run.hold
        return m

    def _policy_until(self, run: _DebtRun, kind: str, call_date: datetime | None) -> datetime:
        """The end of the policy's minimum for this kind of object, as the law counts it."""
        return retain_until(
            self.policy,
            kind,  # type: ignore[arg-type]
            AnchorDates(call_date=call_date, last_activity=run.activity, archived_at=run.now),
        )

    def _lock_for(self, run: _DebtRun, kind: str, call_date: datetime | None) -> Lock:
        """The lock of an object stored now. A minimum that already ended (a recording older
        than its retention when first archived) still gets a short lock: S3 refuses
        retain-until dates in the past, and the purge step deletes it once past its maximum."""
        until = self._policy_until(run, kind, call_date)
        return Lock(self.policy.mode, max(until, run.now + MIN_LOCK), run.hold)

    def _store(self, run: _DebtRun) -> None:
        """New media (earliest link expiry first) and new records go through one bounded pool
        of workers; the debt record is stored from this thread meanwhile."""
        self._emit(ArchiveEvent("media_planned", debt_id=run.debt_id, count=len(run.to_fetch)))
        far = datetime.max.replace(tzinfo=UTC)
        run.to_fetch.sort(key=lambda item: item[0].expires_at or far)
        jobs = len(run.to_fetch) + len(run.record_puts)
        workers = max(1, min(self.settings.concurrency, jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store") as pool:
            media = {
                pool.submit(self._fetch_and_store, ref, lock): ref for ref, lock in run.to_fetch
            }
            records = {
                pool.submit(self._put_record, fid, data, lock, key): fid
                for fid, data, lock, key in run.record_puts
            }
            self._store_debt_record(run)
            for done in as_completed(records):
                run.entries[records[done]]["record_version_id"] = done.result().version_id
            for fetched in as_completed(media):
                self._media_done(run, media[fetched], fetched)

    def _put_record(self, followup_id: str, data: bytes, lock: Lock, key: str) -> StoredObject:
        return self._put_bytes(
            key,
            data,
            lock=lock,
            content_type="application/json",
            metadata={"followup-id": followup_id, "kind": "record"},
        )

    def _store_debt_record(self, run: _DebtRun) -> None:
        if run.debt is not None:
            run.debt_entry = self._store_debt(run, run.debt)
        elif (run.debt_unavailable or {}).pop("transient", False) and run.prev_manifest:
            # The API failed to give the debt this time: keep the one already archived.
            run.debt_entry = run.prev_manifest.get("debt")
            if run.debt_entry is not None:
                run.problems.append(
                    {
                        "type": "DebtUnavailable",
                        "message": "the debt record could not be read this time "
                        f"({(run.debt_unavailable or {}).get('reason')}); the archived one stands",
                        "severity": "warning",
                    }
                )
                run.debt_unavailable = None

    def _media_done(self, run: _DebtRun, ref: MediaRef, fut: Future[dict[str, Any]]) -> None:
        """Record one finished download: in the manifest entry, or as a problem."""
        try:
            m = fut.result()
        except ObjectConflictError:
            raise  # same key, other bytes: never papered over
        except (MediaError, StorageError, ApiError, OSError) as exc:
            run.problems.append(
                _problem(exc, followup_id=ref.followup_id, kind=ref.kind, source=ref.source)
            )
            self._emit(
                ArchiveEvent(
                    "media_failed",
                    debt_id=run.debt_id,
                    message=f"{ref.followup_id} {ref.kind}: {exc}",
                )
            )
            return
        run.entries[ref.followup_id]["media"].append(m)
        run.stored += 1
        run.stored_bytes += int(m["size"])
        if self.catalog is not None:  # SQLite stays on this thread
            self.catalog.record_stored_object(
                debt_id=run.debt_id,
                key=m["key"],
                sha256=m["sha256"],
                size=m["size"],
                version_id=m["version_id"],
                kind=m["kind"],
                followup_id=ref.followup_id,
                source=m["source"],
                run_id=self.run_id,
            )

    def _finish(self, run: _DebtRun) -> DebtResult:
        """Write manifest N+1 (last, after everything it names) unless nothing changed."""
        prev_manifest = run.prev_manifest
        manifest = build_manifest(
            debt_id=run.debt_id,
            sequence=(prev_manifest["sequence"] + 1) if prev_manifest else 1,
            created_at=run.now,
            run_id=self.run_id,
            previous={"key": run.prev[0], "sha256": sha256_hex(run.prev[1])} if run.prev else None,
            policy=self.policy.manifest_ref(),
            debt=run.debt_entry,
            debt_unavailable=run.debt_unavailable,
            followups=list(run.entries.values()),
            problems=run.problems,
            retention_extensions=run.extensions,
            media_stored=run.stored,
            media_reused=run.reused,
            last_activity=run.activity,
            api_base_url=self.settings.api_base_url,
        )
        result = DebtResult(
            debt_id=run.debt_id,
            status="partial" if _blocking(run.problems) else "archived",
            followups=len(run.followups),
            media_stored=run.stored,
            media_reused=run.reused,
            media_bytes_stored=run.stored_bytes,
            problems=run.problems,
        )
        if run.prev is not None and fingerprint(manifest) == fingerprint(run.prev[2]):
            # Nothing new: write nothing (but finish a dossier an earlier crash left undone).
            key, data, prev_manifest = run.prev
            result.status = "partial" if _blocking(run.problems) else "unchanged"
            result.sequence = prev_manifest["sequence"]
            result.manifest_key, result.manifest_sha256 = key, sha256_hex(data)
            result.dossier_key = self._ensure_dossier(run, key, data, prev_manifest)
            return result

        if run.prev is not None:
            self._extend_history(run)  # earlier manifests and dossiers
        result.retention_extended = len(run.extensions)
        data, sha = manifest_bytes(manifest)
        mkey = keys.manifest_key(run.debt_id, manifest["sequence"])
        try:
            stored = self._put_bytes(
                mkey,
                data,
                lock=self._lock_for(run, "manifest", None),
                content_type="application/json",
                metadata={"kind": "manifest"},
            )
        except ObjectConflictError as exc:
            # Another run wrote this sequence between our read and our write: its manifest
            # stands (nothing is overwritten); a rerun chains onto it.
            raise StorageError(
                f"another archive run wrote manifest {manifest['sequence']} of this debt at "
                "the same time; nothing was overwritten, rerun to add what it missed",
                key=mkey,
                debt_id=run.debt_id,
            ) from exc
        if self.catalog is not None:
            self.catalog.record_manifest(
                manifest, key=mkey, sha256=sha, version_id=stored.version_id, run_id=self.run_id
            )
        result.sequence, result.manifest_key, result.manifest_sha256 = (
            manifest["sequence"],
            mkey,
            sha,
        )
        result.dossier_key = self._ensure_dossier(run, mkey, data, manifest)
        return result

    # ---- pieces

    def _put_bytes(self, key: str, data: bytes, *, lock: Lock, **kw: Any) -> StoredObject:
        return self._settle(self.store.put_bytes(key, data, lock=lock, **kw), lock)

    def _put_file(self, key: str, path: Path, *, lock: Lock, **kw: Any) -> StoredObject:
        return self._settle(self.store.put_file(key, path, lock=lock, **kw), lock)

    def _settle(self, stored: StoredObject, lock: Lock) -> StoredObject:
        """An object that was already there (a rerun after a crash) gets at least the lock
        this run promises in its manifest: retention extended (never shortened), hold set."""
        if not stored.created:
            self.store.extend_retention(
                stored.key, stored.version_id, mode=lock.mode, retain_until=lock.retain_until
            )
            if lock.legal_hold:
                self.store.set_legal_hold(stored.key, stored.version_id, True)
        return stored

    def _read_debt(
        self, debt_id: str
    ) -> tuple[Debt | None, dict[str, Any] | None, list[dict[str, Any]]]:
        """The debt record, or why it is missing; plus validation problems of the record."""
        try:
            debt, problems = self.api.get_debt_checked(debt_id)
        except ApiAuthError as exc:
            # Typically 403: the token lacks debts:read. Noted in the manifest, not fatal.
            return None, {"reason": exc.api_message or exc.message, "status": exc.status}, []
        except ApiError as exc:
            # 404, or the API failing after retries: the followups are still worth archiving;
            # the previous debt record (if any) is carried forward (see _store_records).
            reason = exc.api_message or exc.message
            return (
                None,
                {"reason": reason, "status": exc.status, "transient": exc.status != 404},
                [],
            )
        return debt, None, [_problem(p, debt_id=debt_id) for p in problems]

    def _store_debt(self, run: _DebtRun, debt: Debt) -> dict[str, Any]:
        data, sha = canonical_sha256(debt.sanitized_record())
        key = keys.debt_record_key(run.debt_id, sha)
        lock = self._lock_for(run, "debt", None)
        old = (run.prev_manifest or {}).get("debt") or {}
        if old.get("sha256") == sha:
            entry = dict(old)
            gone = old.get("purged") or run.purged.get((key, old.get("version_id")))
            if gone:
                entry["purged"] = gone
            else:
                entry["retain_until"] = self._keep_or_extend(
                    run, "debt", key, old.get("version_id"), old.get("retain_until"), None
                )
            return entry
        stored = self._put_bytes(
            key, data, lock=lock, content_type="application/json", metadata={"kind": "debt"}
        )
        return {
            "key": key,
            "sha256": sha,
            "size": len(data),
            "version_id": stored.version_id,
            "retain_until": iso(lock.retain_until),
            "retention_mode": lock.mode,
            "legal_hold": lock.legal_hold,
        }

    def _keep_or_extend(
        self,
        run: _DebtRun,
        kind: str,
        key: str,
        version_id: str | None,
        current: str | None,
        call_date: datetime | None,
    ) -> str | None:
        """Retain-until for a reused object: never shorter than before; extended on S3 when the
        policy anchors this kind on the last activity and that moved forward. The one-day
        floor of :meth:`_lock_for` is not applied here, so reruns do not creep forward."""
        cur = parse_iso(current)
        rule = self.policy.rules.get(kind)  # type: ignore[call-overload]
        if rule is None or rule.anchor != "last_activity" or cur is None:
            return current
        wanted = self._policy_until(run, kind, call_date)
        if wanted <= cur:
            return current
        if not self.settings.dry_run:
            self.store.extend_retention(key, version_id, mode=self.policy.mode, retain_until=wanted)
        run.extensions.append(
            {"key": key, "version_id": version_id, "from": current, "to": iso(wanted)}
        )
        return iso(wanted)

    def _extend_history(self, run: _DebtRun) -> None:
        """Earlier manifests and dossiers follow the last activity too, when the policy says so."""
        for kind, sub in (("manifest", "manifests/"), ("dossier", "dossiers/")):
            rule = self.policy.rules.get(kind)  # type: ignore[call-overload]
            if rule is None or rule.anchor != "last_activity":
                continue
            wanted = self._policy_until(run, kind, None)
            for key in self.store.list_keys(f"{keys.debt_prefix(run.debt_id)}{sub}"):
                info = self.store.head(key)
                if info is None or (info.retain_until is not None and info.retain_until >= wanted):
                    continue
                if self.store.extend_retention(
                    key, info.version_id, mode=self.policy.mode, retain_until=wanted
                ):
                    run.extensions.append(
                        {
                            "key": key,
                            "version_id": info.version_id,
                            "from": iso(info.retain_until) if info.retain_until else None,
                            "to": iso(wanted),
                        }
                    )

    def _refresh(self, ref: MediaRef) -> MediaRef:
        """Fetch the followup again for fresh signed URLs (``GET /followups/{id}``)."""
        with self._api_lock:
            fresh = self.api.get_followup(ref.followup_id)
        for new in fresh.media():
            if new.kind == ref.kind:
                return new
        raise MediaError(
            "the refreshed followup no longer has this media",
            debt_id=ref.debt_id,
            followup_id=ref.followup_id,
            kind=ref.kind,
            url=ref.source,
        )

    def _fetch_and_store(self, ref: MediaRef, lock: Lock) -> dict[str, Any]:
        """Worker: download one medium to a temp file (hashed), store it, return its entry."""
        got = self.downloader.download(ref, self._refresh)
        path = Path(got.path)
        try:
            key = keys.media_key(ref.debt_id, ref.followup_id, ref.kind, got.sha256, got.extension)
            stored = self._put_file(
                key,
                path,
                sha256=got.sha256,
                size=got.size,
                lock=lock,
                content_type=got.sniffed_type,
                metadata=media_metadata(
                    ref=ref,
                    source=got.source,
                    sniffed_type=got.sniffed_type,
                    declared_type=got.content_type,
                    downloaded_at=got.downloaded_at,
                    url_expires_at=got.url_expires_at,
                ),
            )
        finally:
            path.unlink(missing_ok=True)
        self._emit(
            ArchiveEvent(
                "media_done", debt_id=ref.debt_id, size=got.size, count=1, message="stored"
            )
        )
        return {
            "kind": ref.kind,
            "key": key,
            "version_id": stored.version_id,
            "sha256": got.sha256,
            "size": got.size,
            "content_type": got.content_type,
            "sniffed_type": got.sniffed_type,
            "source": got.source,
            "downloaded_at": iso(got.downloaded_at),
            "url_expires_at": iso(got.url_expires_at) if got.url_expires_at else None,
            "retain_until": iso(lock.retain_until),
            "retention_mode": lock.mode,
            "legal_hold": lock.legal_hold,
        }

    def _ensure_dossier(
        self, run: _DebtRun, manifest_key: str, manifest_data: bytes, manifest: dict[str, Any]
    ) -> str | None:
        """Render and store the dossier of a manifest unless it is already stored."""
        if self._render is None or not self.settings.render_dossier:
            return None
        key = keys.dossier_key(run.debt_id, manifest["sequence"])
        if self.store.head(key) is not None:
            return key
        debt = json.loads(canonical_json(run.debt.sanitized_record())) if run.debt else None
        pdf, version = self._render(
            manifest, manifest_key, sha256_hex(manifest_data), run.records, debt, self.store
        )
        stored = self._put_bytes(
            key,
            pdf,
            lock=self._lock_for(run, "dossier", None),
            content_type="application/pdf",
            metadata={"kind": "dossier", "renderer-version": version},
        )
        if self.catalog is not None:
            self.catalog.record_dossier(
                debt_id=run.debt_id,
                sequence=manifest["sequence"],
                key=key,
                sha256=sha256_hex(pdf),
                version_id=stored.version_id,
                renderer_version=version,
            )
        return key


__all__ = [
    "ArchiveEvent",
    "ArchiveSettings",
    "Archiver",
    "DebtResult",
    "RunResult",
    "UnsafeIdError",
    "latest_manifest",
]
