"""Storing one planned debt: new media and records through one bounded pool of workers, the
debt record from the calling thread meanwhile, the planned retention extensions first.

Every PUT is conditional (``If-None-Match: *``), checksummed and locked (:class:`LockedWriter`);
a same-key/different-bytes answer is a loud error, never papered over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from archiver.archive.plan import DebtPlan, RecordPut, carry_retention
from archiver.archive.results import ArchiveEvent, ArchiveEventKind
from archiver.archive.resume import media_metadata
from archiver.common.canonical import canonical_sha256
from archiver.common.problems import Problem, ProblemKind
from archiver.errors import (
    ApiError,
    ArchiverError,
    MediaError,
    ObjectConflictError,
    StorageError,
)
from archiver.getbill.records import Debt, Followup, MediaRef
from archiver.manifest.entries import DebtEntry, Extension, MediaEntry
from archiver.retention.policies import RetentionPolicy
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import Lock, StoredObject

__all__ = ["Downloader", "LockedWriter", "StoreOutcome", "Storer", "Version"]

Version = tuple[str, str | None]  # (key, version id)


class Downloader(Protocol):
    """What :class:`archiver.media.download.MediaDownloader` does for a run."""

    def download(self, ref: MediaRef, refresh: Callable[[MediaRef], MediaRef]) -> Any: ...


class FollowupReader(Protocol):
    def get_followup(self, followup_id: str) -> Followup: ...


class LockedWriter:
    """Locked PUTs. An object that was already there (a rerun after a crash) gets at least the
    lock this run promises in its manifest: retention extended (never shortened), hold set."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def put_bytes(self, key: str, data: bytes, *, lock: Lock, **kw: Any) -> StoredObject:
        """Store ``data`` at ``key`` under ``lock`` (see :meth:`ObjectStore.put_bytes`)."""
        return self._settle(self.store.put_bytes(key, data, lock=lock, **kw), lock)

    def put_file(self, key: str, path: Path, *, lock: Lock, **kw: Any) -> StoredObject:
        """Store the file at ``key`` under ``lock`` (see :meth:`ObjectStore.put_file`)."""
        return self._settle(self.store.put_file(key, path, lock=lock, **kw), lock)

    def _settle(self, stored: StoredObject, lock: Lock) -> StoredObject:
        if not stored.created:
            self.store.extend_retention(
                stored.key, stored.version_id, mode=lock.mode, retain_until=lock.retain_until
            )
            if lock.legal_hold:
                self.store.set_legal_hold(stored.key, stored.version_id, True)
        return stored


@dataclass
class StoreOutcome:
    """What storing added to a plan besides the entries it filled in."""

    debt_entry: DebtEntry | None
    stored: int = 0  # media downloaded and stored
    stored_bytes: int = 0
    # Every version this run stored (records, media, debt record), new or found in place.
    written: set[Version] = field(default_factory=set)
    # The hold state when storing ended, as the manifest records it (archiver.archive.holding).
    legal_hold: dict[str, Any] | None = None


class Storer:
    """Stores what a :class:`~archiver.archive.plan.DebtPlan` says (see the module docstring).
    Progress events may come from the worker threads; entries and problems are filled in on
    the calling thread only."""

    def __init__(
        self,
        *,
        api: FollowupReader,
        downloader: Downloader,
        store: ObjectStore,
        concurrency: int,
        emit: Callable[[ArchiveEvent], None],
    ) -> None:
        self.api = api
        self.downloader = downloader
        self.store = store
        self.writer = LockedWriter(store)
        self.concurrency = concurrency
        self._emit = emit
        self._api_lock = threading.Lock()

    def store_plan(self, plan: DebtPlan, *, media_only: bool = False) -> StoreOutcome:
        """Extend what planning said, then store new media (earliest link expiry first), new
        records and the debt record. ``media_only``: the media alone, while their links are
        fresh (:meth:`archiver.archive.pipeline.Archiver.prefetch_media`); the rest waits for
        the debt's full run, which finds them in place."""
        if media_only:
            plan.record_puts = []
        for extension in [] if media_only else plan.extensions:
            self._extend(extension, plan.policy)
        self._emit(
            ArchiveEvent(
                ArchiveEventKind.MEDIA_PLANNED, debt_id=plan.debt_id, count=len(plan.to_fetch)
            )
        )
        far = datetime.max.replace(tzinfo=UTC)
        plan.to_fetch.sort(key=lambda item: item.ref.expires_at or far)
        jobs = len(plan.to_fetch) + len(plan.record_puts)
        workers = max(1, min(self.concurrency, jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store") as pool:
            try:
                media = {
                    pool.submit(self._fetch_and_store, fetch.ref, fetch.lock): fetch.ref
                    for fetch in plan.to_fetch
                }
                records = {
                    pool.submit(self._put_record, put): put.followup_id for put in plan.record_puts
                }
                outcome = StoreOutcome(None)
                if not media_only:
                    outcome.debt_entry = self._store_debt_record(plan, outcome.written)
                for done in as_completed(records):
                    stored = done.result()
                    plan.entries[records[done]].record_version_id = stored.version_id
                    outcome.written.add((stored.key, stored.version_id))
                for fetched in as_completed(media):
                    self._media_done(plan, outcome, media[fetched], fetched)
            except BaseException:
                # Ctrl-C or a fatal error: start nothing new, only let running transfers end
                # (a rerun reuses what they stored).
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return outcome

    def _extend(self, extension: Extension, policy: RetentionPolicy) -> None:
        self.store.extend_retention(
            extension.key, extension.version_id, mode=policy.mode, retain_until=extension.to
        )

    def _put_record(self, put: RecordPut) -> StoredObject:
        return self.writer.put_bytes(
            put.key,
            put.data,
            lock=put.lock,
            content_type="application/json",
            metadata={"followup-id": put.followup_id, "kind": "record"},
        )

    def _store_debt_record(self, plan: DebtPlan, written: set[Version]) -> DebtEntry | None:
        facts = plan.facts
        if facts.debt is not None:
            return self._store_debt(plan, facts.debt, written)
        if (plan.debt_unavailable or {}).pop("transient", False) and facts.previous:
            # The API failed to give the debt this time: keep the one already archived.
            archived = facts.previous.manifest.get("debt")
            if archived is not None:
                plan.problems.append(
                    Problem(
                        ProblemKind.DEBT_UNAVAILABLE,
                        "the debt record could not be read this time "
                        f"({(plan.debt_unavailable or {}).get('reason')}); the archived one stands",
                        severity="warning",
                    )
                )
                plan.debt_unavailable = None
                return DebtEntry.from_json(archived)
        return None

    def _store_debt(self, plan: DebtPlan, debt: Debt, written: set[Version]) -> DebtEntry:
        facts = plan.facts
        data, sha = canonical_sha256(debt.sanitized_record())
        key = keys.debt_record_key(plan.debt_id, sha)
        lock = facts.lock(plan.policy, "debt", None)
        archived = (facts.previous.manifest if facts.previous else {}).get("debt") or {}
        if archived.get("sha256") == sha:
            old = DebtEntry.from_json(archived)
            gone = old.purged or facts.purged.get((key, old.version_id))
            if gone:
                return old.updated(purged=gone)
            until, extension = carry_retention(
                plan.policy, facts, "debt", key, old.version_id, old.retain_until, None
            )
            if extension is not None:
                self._extend(extension, plan.policy)
                plan.extensions.append(extension)
            return old.updated(retain_until=until)
        stored = self.writer.put_bytes(
            key, data, lock=lock, content_type="application/json", metadata={"kind": "debt"}
        )
        written.add((key, stored.version_id))
        return DebtEntry.stored(
            key=key, sha256=sha, size=len(data), version_id=stored.version_id, lock=lock
        )

    def _media_done(
        self, plan: DebtPlan, outcome: StoreOutcome, ref: MediaRef, fut: Future[MediaEntry]
    ) -> None:
        """Record one finished download: in the manifest entry, or as a problem."""
        try:
            entry = fut.result()
        except ObjectConflictError:
            raise  # same key, other bytes: never papered over
        except (MediaError, StorageError, ApiError, OSError) as exc:
            # The URL the error names (after redirects, if any) is the problem's source.
            context = exc.context if isinstance(exc, ArchiverError) else {}
            plan.problems.append(
                Problem.from_exception(
                    exc,
                    followup_id=ref.followup_id,
                    kind=ref.kind,
                    source=context.get("url", ref.source),
                )
            )
            self._emit(
                ArchiveEvent(
                    ArchiveEventKind.MEDIA_FAILED,
                    debt_id=plan.debt_id,
                    message=f"{ref.followup_id} {ref.kind}: {exc}",
                )
            )
            return
        plan.entries[ref.followup_id].media.append(entry)
        outcome.written.add((entry.key, entry.version_id))
        outcome.stored += 1
        outcome.stored_bytes += int(entry.size)

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

    def _fetch_and_store(self, ref: MediaRef, lock: Lock) -> MediaEntry:
        """Worker: download one medium to a temp file (hashed), store it, return its entry."""
        got = self.downloader.download(ref, self._refresh)
        path = Path(got.path)
        try:
            key = keys.media_key(ref.debt_id, ref.followup_id, ref.kind, got.sha256, got.extension)
            stored = self.writer.put_file(
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
            ArchiveEvent(ArchiveEventKind.MEDIA_STORED, debt_id=ref.debt_id, size=got.size, count=1)
        )
        return MediaEntry.from_download(ref, got, key=key, version_id=stored.version_id, lock=lock)
