"""The archive worker: turns queued deliveries into archived debts.

One coordinator thread owns the archive session (the catalog's SQLite connection lives on
the thread that opened it, and the pipeline tells the catalog on that thread: see
:meth:`Archiver.deliver_pending`). It loops:

1. **claim** ``stored`` deliveries, oldest first, up to ``capacity`` held in memory at once
   (the bounded queue: the others wait in the queue file, already acknowledged), and
   **resolve** each on a thread: a followup event's followup is fetched again
   (``GET /followups/{id}``: fresh, and the API, not the payload, says which debt it is
   of); a debt event names its debt. The row becomes ``resolved``;
2. **archive** each debt that has ``resolved`` rows and is not being archived already, on
   another pool: :meth:`Archiver.archive_debt`, as ``archive`` does. Every delivery of that
   debt resolved before the archive starts is answered by it (coalesced); one resolved while
   it runs waits for the next turn, which lists the debt after it.

The acknowledgements go first: the worker shares one process (one GIL) with the HTTP side,
and an archive costs tens of times a delivery's CPU. While deliveries are arriving
(:attr:`Intake.busy`), a delivery is resolved and its debt archived only once it has waited
``archive_defer_s``, one archive at a time; an archive also waits while deliveries are being
resolved (they may be of its debt). A burst of deliveries is thus archived once per debt
after it, and under a steady flood each debt about every ``archive_defer_s``.

A delivery the API says does not exist (404, 403) or whose record is invalid is ``failed``
at once; other errors are retried with backoff, ``max_attempts`` times. Requests go through
a :class:`~archiver.listen.budget.ReserveGate`. A configuration error (refused credentials,
a bucket without Object Lock) stops the worker: ``/healthz`` then says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

from archiver.archive.pipeline import Archiver
from archiver.archive.results import DebtResult, RunResult
from archiver.common.ids import check_id
from archiver.common.problems import ProblemKind
from archiver.errors import (
    ApiAuthError,
    ApiNotFoundError,
    BudgetExhaustedError,
    ConfigError,
    ValidationError,
)
from archiver.getbill.client import GetbillClient
from archiver.listen.budget import ReserveGate
from archiver.listen.metrics import ListenMetrics
from archiver.listen.queue import DeliveryQueue, QueuedDelivery
from archiver.listen.settings import ListenSettings

__all__ = ["ArchiveTools", "ArchiveWorker", "SessionFactory"]

log = logging.getLogger(__name__)

POLL_S = 0.5  # the longest the coordinator sleeps when nothing wakes it
BUSY_POLL_S = 0.025  # how often it looks while deliveries arrive
DONE = ("archived", "unchanged")


@dataclass
class ArchiveTools:
    """What the worker archives with: the pipeline and the client it reads through."""

    archiver: Archiver
    client: GetbillClient


SessionFactory = Callable[[], AbstractContextManager[ArchiveTools]]
"""Opens the archive session on the calling thread (:func:`archiver.wiring.open_listener`)."""


class ArchiveWorker:
    """See the module docstring. ``open_session`` is entered on the worker's own thread."""

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        open_session: SessionFactory,
        settings: ListenSettings,
        metrics: ListenMetrics,
        busy: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self._busy_intake = busy
        self.settings = settings
        self.metrics = metrics
        self._open_session = open_session
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._claimed: set[str] = set()  # deliveries being resolved
        self._busy: set[str] = set()  # debts waiting for or in an archive
        self._results: dict[str, DebtResult] = {}
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None

    # -- lifecycle

    def start(self) -> None:
        """Start the coordinator thread (returns at once; :attr:`ready` once it works)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="listen-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop claiming, let archives in progress end, journal the end of the run."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """A delivery waits: look now rather than at the next poll."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    # -- the coordinator

    def _run(self) -> None:
        try:
            with self._open_session() as tools:
                gate = ReserveGate(tools.client.rate_limit, stop=self._stop, on_wait=self._waits)
                tools.client.http.gate = gate
                tools.archiver.begin([], listener=True, workers=self.settings.workers)
                self._work(tools)
        except Exception as exc:  # noqa: BLE001 - reported by /healthz and the log
            self.error = exc
            log.error("the archive worker stopped: %s", exc)
        finally:
            self.metrics.worker_up.set(0)
            self.ready.set()

    def _work(self, tools: ArchiveTools) -> None:
        n = self.settings.workers
        resolving = ThreadPoolExecutor(max_workers=n, thread_name_prefix="listen-resolve")
        archiving = ThreadPoolExecutor(max_workers=n, thread_name_prefix="listen-archive")
        status = "interrupted"
        self.metrics.worker_up.set(1)
        self.ready.set()
        try:
            while not self._stop.is_set():
                tools.archiver.deliver_pending()
                now = self._clock()
                # Deliveries are arriving: their acknowledgements go first (one process, one
                # GIL), and what waits is taken up once it is archive_defer_s old, together
                # with the deliveries of its debt that arrived meanwhile. Likewise an archive
                # waits for the deliveries being resolved (some may be of its debt).
                # While deliveries arrive, one archive at a time.
                waited = now - self.settings.archive_defer_s
                busy = self._busy_intake()
                self._claim(tools, resolving, now, waited if busy else None)
                with self._lock:
                    wait = busy or bool(self._claimed)
                limit = 1 if busy else self.settings.capacity
                self._schedule(tools, archiving, now, waited if wait else None, limit)
                if tools.client.rate_limit.remaining is not None:
                    self.metrics.remaining.set(tools.client.rate_limit.remaining)
                if busy:
                    # Each delivery stored would wake the loop: look a few times a second.
                    self._stop.wait(BUSY_POLL_S)
                else:
                    self._wake.wait(POLL_S)
                self._wake.clear()
        except BaseException:
            status = "failed"
            raise
        finally:
            self._stop.set()
            resolving.shutdown(wait=True, cancel_futures=True)
            archiving.shutdown(wait=True, cancel_futures=True)
            tools.archiver.deliver_pending()
            with self._lock:
                results = [self._results[d] for d in sorted(self._results)]
            if self.error is not None:
                status = "failed"
            tools.archiver.end(RunResult(tools.archiver.run_id, results), status)
        if self.error is not None:
            raise self.error

    def _claim(
        self, tools: ArchiveTools, pool: ThreadPoolExecutor, now: float, waited: float | None
    ) -> None:
        with self._lock:
            room = self.settings.capacity - len(self._claimed)
            held = set(self._claimed)
        if room > 0:
            for row in self.queue.due(now, room + len(held), received_before=waited):
                if row.sha256 in held:
                    continue
                with self._lock:
                    self._claimed.add(row.sha256)
                pool.submit(self._resolve, tools, row)
                room -= 1
                if room == 0:
                    break
        self._gauge()

    def _schedule(
        self,
        tools: ArchiveTools,
        pool: ThreadPoolExecutor,
        now: float,
        waited: float | None,
        limit: int,
    ) -> None:
        for debt_id in self.queue.debts_due(now, received_before=waited):
            with self._lock:
                if debt_id in self._busy:
                    continue
                if len(self._busy) >= limit:
                    break
                self._busy.add(debt_id)
            pool.submit(self._archive, tools, debt_id)
        self._gauge()

    def _gauge(self) -> None:
        with self._lock:
            self.metrics.in_memory.set(len(self._claimed) + len(self._busy))

    # -- on the pools' threads

    def _resolve(self, tools: ArchiveTools, row: QueuedDelivery) -> None:
        try:
            if row.hint_kind == "followup" and row.hint_ref:
                debt_id = tools.client.get_followup(row.hint_ref).debt_id
            elif row.hint_kind == "debt" and row.hint_ref:
                debt_id = check_id(row.hint_ref, what="debt id")
            else:
                self.queue.fail([row.sha256], "nothing to archive", self._clock())
                return
            self.queue.resolve(row.sha256, debt_id)
        except BudgetExhaustedError:
            return  # stopping: the delivery stays stored, the next start resolves it
        except ConfigError as exc:
            self._fatal(exc)
            return
        except (ApiNotFoundError, ApiAuthError, ValidationError) as exc:
            self.metrics.resolve_failures.inc()
            self.queue.fail([row.sha256], f"{row.hint_kind} {row.hint_ref}: {exc}", self._clock())
            log.warning("webhook %s: %s %s: %s", row.sha256[:12], row.hint_kind, row.hint_ref, exc)
            return
        except Exception as exc:  # noqa: BLE001 - retried; the error is kept on the row
            self._retry([row], f"{type(exc).__name__}: {exc}")
            return
        finally:
            with self._lock:
                self._claimed.discard(row.sha256)
            self._wake.set()

    def _archive(self, tools: ArchiveTools, debt_id: str) -> None:
        try:
            rows = self.queue.resolved_of(debt_id)
            if not rows:
                return
            if self._busy_intake() and min(r.received_ts for r in rows) > (
                self._clock() - self.settings.archive_defer_s
            ):
                return  # deliveries arrive again since this was scheduled: a later turn
            try:
                result = tools.archiver.archive_debt(debt_id)
            except ConfigError as exc:
                self._fatal(exc)
                return
            with self._lock:
                self._results[debt_id] = result
            self._settle(result, rows)
        finally:
            with self._lock:
                self._busy.discard(debt_id)
            self._wake.set()

    def _settle(self, result: DebtResult, rows: list[QueuedDelivery]) -> None:
        status = result.status if result.status in DONE + ("partial",) else "failed"
        stopped = (result.error or {}).get("type") == ProblemKind.BUDGET_EXHAUSTED.value
        if stopped and self._stop.is_set():
            return  # the listener is stopping: the rows stay resolved for the next start
        self.metrics.archives.labels(status).inc()
        done = self._clock()
        if status in DONE:
            self.queue.archived([r.sha256 for r in rows], result.manifest_key, done)
            for row in rows:
                self.metrics.latency.observe(max(0.0, done - row.received_ts))
            log.info(
                "debt %s %s (%s) for %d delivery(ies)",
                result.debt_id,
                result.status,
                result.manifest_key or "no new manifest",
                len(rows),
            )
            return
        problem = result.error or (result.problems[0] if result.problems else {})
        self._retry(rows, f"debt {result.debt_id} {status}: {problem.get('message', '')}")

    def _retry(self, rows: list[QueuedDelivery], error: str) -> None:
        attempts = max(r.attempts for r in rows) + 1
        shas = [r.sha256 for r in rows]
        if attempts >= self.settings.max_attempts:
            self.queue.fail(shas, f"gave up after {attempts} attempts: {error}", self._clock())
            log.error("webhook(s) %s given up after %d attempts: %s", shas[0][:12], attempts, error)
            return
        s = self.settings
        delay = min(s.retry_max_s, s.retry_base_s * 2 ** (attempts - 1))
        self.queue.retry(shas, error, self._clock() + delay)
        log.warning("webhook(s) %s: %s; again in %.0f s", shas[0][:12], error, delay)

    def _fatal(self, exc: ConfigError) -> None:
        self.error = exc
        self._stop.set()
        self._wake.set()

    def _waits(self, seconds: float, left: int) -> None:
        self.metrics.budget_waits.inc()
        self.metrics.remaining.set(left)
        log.warning(
            "getbill budget: %d request(s) left this window, the listener's reserve; waiting "
            "%.0f s for the window to reset (deliveries are still stored)",
            left,
            seconds,
        )
