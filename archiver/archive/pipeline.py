"""The archive pipeline: one debt at a time, every followup and its media into WORM storage.

Per debt (see README "What one run does"):
1. read the latest manifest from S3 (S3 is the source of truth, not the catalog) and choose
   the debt's policy: the one that manifest names (:mod:`archiver.retention.policy_choice`);
2. list every followup (all pages) and read the debt record (a 403 is noted, not fatal);
3. plan (:mod:`~archiver.archive.plan`): records are hashed in memory; media already named by
   the previous manifest, or left in S3 by an interrupted run (same followup, kind and
   source), are reused without downloading (each checked for a delete marker hiding it);
   locks and extensions follow the policy (:mod:`archiver.retention.locks`); a dry run ends
   here (:mod:`~archiver.archive.dry_run`);
4. store (:mod:`~archiver.archive.storing`): extend the retention of earlier objects when the
   policy anchors on the last activity; download the other media earliest-expiry first, a
   bounded pool of workers, each file streamed to a temp file while hashed, then stored with
   a conditional, checksummed, locked PUT;
5. check the legal hold again (:mod:`~archiver.archive.holding`): a matter opened while the
   run stored puts its hold on what the run stored, a hold found missing is set again and
   reported, and the snapshot's hold flags say what S3 has; checked once more after step 6;
6. finish (:mod:`~archiver.archive.finish`): if the snapshot differs from the previous
   manifest, write manifest N+1 last, then the dossier. The write is conditional: when
   another run (a sync shard, a manual run) wrote manifest N+1 first, the debt is planned
   again on top of it (what that run stored is reused, what this one stored is found in
   place) and written as N+2, up to :data:`MANIFEST_ATTEMPTS` times: each debt's chain stays
   one line and neither run's work is lost.

A crash anywhere leaves either no manifest (rerun finds the stored objects and reuses them) or
a complete one (rerun finds nothing new). Nothing is ever overwritten: every PUT is
``If-None-Match: *`` and a same-key/different-bytes answer is a loud error.

The run reports progress to ``on_event`` and tells its ``subscribers`` (the catalog, see
:class:`archiver.catalog.recorder.CatalogRecorder`) what it stored, always on the thread that
built the :class:`Archiver`: debts archived on other threads (``archiver sync``) queue what
they tell until that thread calls :meth:`Archiver.deliver_pending`.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from archiver.archive.dry_run import MediaCheck, preview, with_policy
from archiver.archive.finish import DossierRenderer, Finisher
from archiver.archive.holding import HoldCheck, HoldKeeper
from archiver.archive.plan import DebtPlan, DebtRecordRule, FollowupSource, Planner
from archiver.archive.results import (
    ArchiveEvent,
    ArchiveEventKind,
    DebtResult,
    RunFinished,
    RunRecord,
    RunResult,
    RunStarted,
    RunSubscriber,
)
from archiver.archive.stamping import TokenKeeper
from archiver.archive.storing import Downloader, Storer
from archiver.common.ids import check_id
from archiver.common.problems import Problem
from archiver.common.time import utcnow
from archiver.errors import ConfigError, ManifestRaceError, StorageError
from archiver.retention.policy_choice import PolicySelector
from archiver.store.objects import ObjectStore

if TYPE_CHECKING:
    from archiver.timestamps.client import Timestamper

__all__ = ["MANIFEST_ATTEMPTS", "ArchiveSettings", "Archiver"]

Clock = Callable[[], datetime]

MANIFEST_ATTEMPTS = 5
"""Times one debt is planned and finished when other runs keep writing its next manifest."""


@dataclass(frozen=True)
class ArchiveSettings:
    """Tuning of one archive run (documented defaults; the CLI fills them from flags/env)."""

    concurrency: int = 4
    dry_run: bool = False
    render_dossier: bool = True
    api_base_url: str | None = None


class Archiver:
    """Archives debts. One instance per run; thread-safe use of its collaborators only."""

    def __init__(
        self,
        *,
        api: FollowupSource,
        downloader: Downloader,
        store: ObjectStore,
        policy: PolicySelector,
        settings: ArchiveSettings = ArchiveSettings(),
        clock: Clock = utcnow,
        on_event: Callable[[ArchiveEvent], None] | None = None,
        subscribers: Sequence[RunSubscriber] = (),
        render_dossier: DossierRenderer | None = None,
        check_media: MediaCheck | None = None,
        debt_rule: DebtRecordRule | None = None,
        run_id: str | None = None,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.settings = settings
        self._check_media = check_media
        self.clock = clock
        self._emit = on_event or (lambda e: None)
        self._subscribers = list(subscribers)
        self._owner = threading.get_ident()
        self._pending: queue.SimpleQueue[RunRecord] = queue.SimpleQueue()
        self.run_id = run_id or f"{clock().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
        self._planner = Planner(
            api=api, store=store, policy=policy, clock=clock, emit=self._emit, debt_rule=debt_rule
        )
        self._storer = Storer(
            api=api,
            downloader=downloader,
            store=store,
            concurrency=settings.concurrency,
            emit=self._emit,
        )
        self._holds = HoldKeeper(store, self._emit)
        self._finisher = Finisher(
            store=store,
            run_id=self.run_id,
            api_base_url=settings.api_base_url,
            render=render_dossier if settings.render_dossier else None,
            publish=self._publish,
            emit=self._emit,
            tokens=TokenKeeper(store, timestamper) if timestamper is not None else None,
        )

    def run(
        self, debt_ids: Iterable[str], on_result: Callable[[DebtResult], None] | None = None
    ) -> RunResult:
        """Archive each debt; one failing debt never stops the others.

        ``on_result`` gets each debt's result as soon as it is done. A configuration error
        (refused credentials, a missing bucket) stops the run: every other debt would fail the
        same way. So does an interrupt (Ctrl-C); either is journalled as the run's end
        (status ``interrupted`` / ``failed``) and raised."""
        ids = list(debt_ids)
        self._emit(ArchiveEvent(ArchiveEventKind.RUN_STARTED, count=len(ids)))
        self.begin(ids)
        results: list[DebtResult] = []
        waiting: _Later | None = None
        waiting_id: str | None = None

        def settle() -> None:
            nonlocal waiting
            later, waiting = waiting, None  # taken once, whatever happens next
            if later is None:
                return
            results.append(later.result())
            self.deliver_pending()
            if on_result is not None:
                on_result(results[-1])

        try:
            # A debt's dossier renders on a thread of its own while the next debt is listed
            # and downloaded; one dossier at a time, results in the order of the debts.
            for debt_id in ids:
                if debt_id == waiting_id:
                    settle()  # the same debt again: its manifest builds on that dossier
                done, rest = self._start_debt(debt_id)
                settle()
                waiting, waiting_id = _Later(rest, done), debt_id
            settle()
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            # A debt whose dossier was rendering when the run stopped is done once it ends:
            # listed, and told to the caller like the others.
            if waiting is not None and waiting.succeeded():
                results.append(waiting.result())
                if on_result is not None:
                    with suppress(Exception):
                        on_result(results[-1])
            # The error that stopped the run is the one to raise, not a journal failure.
            with suppress(Exception):
                self.deliver_pending()
                self.end(RunResult(self.run_id, results), status)
            raise
        run = RunResult(self.run_id, results)
        self.end(run, run.exit_status)
        return run

    def begin(self, debt_ids: Sequence[str], **options: object) -> None:
        """Check the bucket and journal the run's start (not for a dry run). :meth:`run` calls
        it; a caller archiving debts one by one (``archiver sync``) calls it first."""
        self.store.check_bucket()  # a dry run too: it says what the real run would refuse
        if not self.settings.dry_run:
            opts = {
                "policy": self.policy.configured.name,
                "concurrency": self.settings.concurrency,
                **options,
            }
            self._publish(RunStarted(self.run_id, self.clock(), tuple(debt_ids), opts))

    def end(self, run: RunResult, status: str) -> None:
        """Journal the run's end with ``status`` (not for a dry run), after everything queued."""
        if not self.settings.dry_run:
            self._publish(RunFinished(self.run_id, self.clock(), status, run.summary()))

    def deliver_pending(self) -> None:
        """Tell the subscribers what debts archived on other threads stored (call it from the
        thread that built this archiver)."""
        while True:
            try:
                record = self._pending.get_nowait()
            except queue.Empty:
                return
            for subscriber in self._subscribers:
                subscriber(record)

    def archive_debt(self, debt_id: str) -> DebtResult:
        """Archive one debt; errors become a ``failed`` result naming what went wrong, except a
        :class:`ConfigError`, which no other debt would escape either (raised)."""
        done, rest = self._start_debt(debt_id)
        return rest() if rest is not None else done

    def _start_debt(self, debt_id: str) -> tuple[DebtResult, Callable[[], DebtResult] | None]:
        """:meth:`archive_debt` up to its manifest: ``(result, None)`` when the debt is done,
        else ``(result so far, the rest)``: the rest renders and stores the dossier, then
        returns the debt's result (failures caught as :meth:`archive_debt` catches them)."""
        self._emit(ArchiveEvent(ArchiveEventKind.DEBT_STARTED, debt_id=debt_id))
        try:
            check_id(debt_id, what="debt id")
            result, step = self._archive_debt(debt_id)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - one debt's failure never stops the others
            return self._debt_done(self._failed(debt_id, exc)), None
        if step is None:
            return self._debt_done(result), None

        def rest() -> DebtResult:
            try:
                return self._debt_done(step())
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - as in archive_debt
                return self._debt_done(self._failed(debt_id, exc))

        return result, rest

    def _failed(self, debt_id: str, exc: Exception) -> DebtResult:
        problem = Problem.from_exception(exc, debt_id=debt_id).to_dict()
        self._emit(
            ArchiveEvent(
                ArchiveEventKind.LOG, debt_id=debt_id, message=f"failed: {problem['message']}"
            )
        )
        return DebtResult(debt_id=debt_id, status="failed", error=problem, problems=[problem])

    def _debt_done(self, result: DebtResult) -> DebtResult:
        self._emit(
            ArchiveEvent(ArchiveEventKind.DEBT_DONE, debt_id=result.debt_id, message=result.status)
        )
        return result

    def prefetch_media(self, debt_id: str) -> tuple[int, int]:
        """Download and store the media of a debt that no manifest names yet, and nothing
        else: a sync fetches them while their links are fresh, and writes the debt's one
        manifest once its listing has ended (:meth:`archive_debt` then finds them in place).
        Returns how many were stored and their bytes; failures are left for that run to
        retry and report."""
        if self.settings.dry_run:
            return 0, 0
        check_id(debt_id, what="debt id")
        plan = self._planner.plan(debt_id, media_only=True)
        if not plan.to_fetch:
            return 0, 0
        self._finisher.prepare()  # a sync's downloads start here, before the debt's manifest
        outcome = self._storer.store_plan(plan, media_only=True)
        return outcome.stored, outcome.stored_bytes

    def _archive_debt(self, debt_id: str) -> tuple[DebtResult, Callable[[], DebtResult] | None]:
        for attempt in range(1, MANIFEST_ATTEMPTS + 1):
            plan = self._planner.plan(debt_id)
            if self.settings.dry_run:
                return with_policy(preview(plan, self._check_media), plan), None
            self._finisher.prepare()  # the dossier stack loads while the media downloads
            outcome = self._storer.store_plan(plan)
            check = self._holds.settle(plan, outcome)
            try:
                result, dossier = self._finisher.finish_parts(plan, outcome)
            except ManifestRaceError as exc:
                if attempt == MANIFEST_ATTEMPTS:
                    raise StorageError(
                        f"other runs wrote this debt's next manifest {attempt} times in a row; "
                        "nothing was overwritten, what this run stored is found by the next one",
                        debt_id=debt_id,
                        key=exc.context.get("key"),
                    ) from exc
                self._emit(
                    ArchiveEvent(
                        ArchiveEventKind.LOG,
                        debt_id=debt_id,
                        message=f"{exc.message}: merging onto it (attempt {attempt + 1} of "
                        f"at most {MANIFEST_ATTEMPTS})",
                    )
                )
                continue
            if attempt > 1:
                result.manifest_attempts = attempt

            def complete(
                result: DebtResult = result,
                dossier: Callable[[], None] | None = dossier,
                plan: DebtPlan = plan,
                check: HoldCheck = check,
            ) -> DebtResult:
                if dossier is not None:
                    dossier()
                written = {k for k in (result.manifest_key, result.dossier_key) if k}
                written.update(result.timestamp_keys)
                self._holds.after_finish(plan.debt_id, check, written)
                return with_policy(result, plan)

            if dossier is None:
                return complete(), None
            return result, complete
        raise AssertionError("unreachable")  # the loop returns or raises

    def _publish(self, record: RunRecord) -> None:
        # Subscribers may hold SQLite connections: they hear of it on the owner thread only.
        if threading.get_ident() != self._owner:
            self._pending.put(record)
            return
        self.deliver_pending()
        for subscriber in self._subscribers:
            subscriber(record)


class _Later:
    """The rest of a debt (:meth:`Archiver._start_debt`) on a thread of its own, or its result
    when there is no rest. The outcome comes back through a ``SimpleQueue`` (C code, no
    Python-level lock): a Ctrl-C on the main thread cannot leave a lock held that the step
    then waits for, as it can with an executor's semaphore."""

    def __init__(self, rest: Callable[[], DebtResult] | None, done: DebtResult) -> None:
        self._box: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self._outcome: tuple[bool, Any] | None = None if rest is not None else (True, done)
        self._thread: threading.Thread | None = None
        if rest is not None:
            self._thread = threading.Thread(target=self._run, args=(rest,), name="dossier")
            self._thread.start()

    def _run(self, rest: Callable[[], DebtResult]) -> None:
        try:
            self._box.put((True, rest()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._box.put((False, exc))

    def _wait(self) -> tuple[bool, Any]:
        if self._outcome is None:
            self._outcome = self._box.get()
        return self._outcome

    def result(self) -> DebtResult:
        """The debt's result, once its step has ended; what the step raised is raised."""
        ok, value = self._wait()
        if not ok:
            raise value
        return cast(DebtResult, value)

    def succeeded(self) -> bool:
        """Wait for the step to end: True if it gave a result."""
        return self._wait()[0]
