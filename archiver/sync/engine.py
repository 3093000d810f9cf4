"""``archiver sync``: the whole company's activity within the API budget.

**Window mode** (default): list ``GET /followups?from=..&to=..`` (pages of 100, any debts).
Each page's media are downloaded and stored while later pages are still listed, so their
links are fresh whatever the listing's length (:meth:`Archiver.prefetch_media`: what no
manifest names yet, locked as the debt's run will record it); an expired one is refreshed
through ``GET /followups/{id}`` (counted). Once the listing has ended, each touched debt goes
through the archive pipeline once: records, the debt record when it may have changed, the
media found in place, and one new manifest per changed debt, whatever order the listing
returned the followups in (a debt's followups may be pages apart).

**Full mode** (``--full``): list ``GET /debts`` (all pages; the records it brings are the
debt records of the run) and archive each debt of the shard from its own listing, as
``archive`` does. A pass usually needs more requests than one run may spend: it resumes in
the next runs where the last one stopped (the debts done are in the pass's run records).

Every request counts against the run's :class:`~archiver.sync.budget.RequestBudget`. When
it is spent, the run stops asking, finishes what needs no request (media already listed,
manifests of the debts it has), records what is left in its run record
(:mod:`archiver.sync.runs`) and ends incomplete: the next run starts there.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from archiver import __version__
from archiver.archive.pipeline import Archiver
from archiver.archive.plan import DebtRecordRule, FollowupSource
from archiver.archive.results import DebtResult, RunResult
from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import compact_stamp, iso_precise, utcnow
from archiver.errors import ApiError, BudgetExhaustedError
from archiver.getbill.client import GetbillClient
from archiver.getbill.pagination import PageNumberPaginator
from archiver.getbill.records import accept_listed, build_debt, build_followup, stable_fingerprint
from archiver.retention.policies import RetentionPolicy
from archiver.store.objects import ObjectStore
from archiver.sync.budget import RequestBudget, Spent, default_reserve
from archiver.sync.debts import DebtRecords
from archiver.sync.runs import (
    RUN_FORMAT,
    StoredRun,
    lane_history,
    lane_of,
    latest_of_lane,
    new_run_id,
    read_runs,
    write_run,
)
from archiver.sync.shards import Shard, owns_debt
from archiver.sync.source import WindowSource
from archiver.sync.window import DEFAULT_LOOKBACK, WindowPlan, plan_window

__all__ = ["SyncEvent", "SyncResult", "SyncSettings", "Syncer"]

DONE = ("archived", "unchanged")
LISTING_PAGE_CAP = 100_000  # a window of 10 million followups; the budget ends it sooner


@dataclass(frozen=True)
class SyncSettings:
    """One sync run (documented defaults; the CLI fills them from flags and environment)."""

    full: bool = False
    since: date | None = None
    lookback: str = DEFAULT_LOOKBACK
    max_requests: int | None = None  # None: what X-RateLimit-Remaining allows, less a reserve
    shard: Shard = field(default_factory=Shard)
    concurrency: int = 4  # debts archived at once
    dry_run: bool = False

    @property
    def mode(self) -> str:
        return "full" if self.full else "window"


@dataclass(frozen=True)
class SyncEvent:
    """Progress of a sync: pages listed (of ``pages``, once known), debts handed to the
    pipeline and finished, requests left (None: not known yet)."""

    pages_listed: int
    pages: int | None
    debts_touched: int
    debts_done: int
    requests_left: int | None
    message: str | None = None


@dataclass
class SyncResult:
    """What a sync did: its run record (stored, unless a dry run) and each debt's result."""

    record: dict[str, Any]
    key: str | None
    debts: list[DebtResult]

    @property
    def complete(self) -> bool:
        return bool(self.record["complete"])

    @property
    def budget_exhausted(self) -> bool:
        return bool(self.record["requests"]["exhausted"])

    @property
    def exit_status(self) -> str:
        """``ok`` | ``partial`` | ``failed``: failed debts make the run failed, anything left
        for the next run (budget, pending debts) partial."""
        status = RunResult("", self.debts).exit_status
        blocking = any(p.get("severity", "error") == "error" for p in self.record["problems"])
        if status == "ok" and (not self.complete or blocking):
            return "partial"  # left for the next run, or records of the listing unusable
        return status

    def summary(self) -> dict[str, Any]:
        r = self.record
        return {
            "run_record": self.key,
            "mode": r["mode"],
            "lane": r["lane"],
            "window": r["window"],
            "full_pass": r["full_pass"],
            "requests": r["requests"],
            "per_debt_cost": r["per_debt_cost"],
            "debts": len(r["debts"]),
            "by_status": _by_status(self.debts),
            "followups_seen": r["followups_seen"],
            "media_stored": r["media_stored"],
            "media_bytes_stored": r["media_bytes_stored"],
            "problems": len(r["problems"]) + sum(len(d.problems) for d in self.debts),
            "pending": r["pending"],
            "complete": r["complete"],
            "status": self.exit_status,
        }


def _by_status(debts: list[DebtResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in debts:
        counts[d.status] = counts.get(d.status, 0) + 1
    return counts


class ArchiverFactory(Protocol):
    """Builds the run's :class:`Archiver` over the sync's source and debt-record rule."""

    def __call__(
        self, source: FollowupSource, debt_rule: DebtRecordRule | None, run_id: str | None
    ) -> Archiver: ...


class Syncer:
    """One sync run (see the module docstring). ``client``: the getbill client (its request
    gate is set to the run's budget); ``make_archiver``: the pipeline over a source;
    ``policy``: the configured policy (locks of the run record)."""

    def __init__(
        self,
        *,
        client: GetbillClient,
        store: ObjectStore,
        make_archiver: ArchiverFactory,
        policy: RetentionPolicy,
        settings: SyncSettings = SyncSettings(),
        clock: Callable[[], datetime] = utcnow,
        on_event: Callable[[SyncEvent], None] | None = None,
        on_result: Callable[[DebtResult], None] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self._on_event = on_event or (lambda e: None)
        self._on_result = on_result
        self._make_archiver = make_archiver
        self.started = clock()
        self.run_id = new_run_id()
        self.lane = lane_of(settings.mode, settings.shard.index, settings.shard.count)
        self.budget = RequestBudget(settings.max_requests)
        self.debt_records = DebtRecords(client)
        self.source = WindowSource(client, self.debt_records)
        # Run state (the results arrive on worker threads; read and written under the lock)
        self._lock = threading.Lock()
        self._results: dict[str, DebtResult] = {}
        self._futures: dict[str, Future[None]] = {}
        self._problems: list[dict[str, Any]] = []
        self._pending: set[str] = set()  # debts to archive again, whole
        self._pending_records: set[str] = set()  # debts archived without their debt record
        self._followups_seen = 0
        self._pages_listed = 0
        self._pages: int | None = None
        self._window_counts: dict[str, int] = {}
        self._prefetched: dict[str, tuple[int, int]] = {}  # debt -> media stored, bytes
        self._debts_total_hint: dict[str, int] = {}

    # -- the run

    def run(self) -> SyncResult:
        """Run the sync; the result holds its run record (written unless a dry run)."""
        self.client.http.gate = self._gate
        archiver = self._make_archiver(
            self.source,
            None if self.settings.full else self.debt_records,
            f"{self.started.strftime('%Y%m%dT%H%M%SZ')}-sync-{self.run_id[:8]}",
        )
        archiver.begin([], sync_lane=self.lane, sync_run_id=self.run_id)
        pool = ThreadPoolExecutor(
            max_workers=max(1, self.settings.concurrency), thread_name_prefix="sync"
        )
        extra: dict[str, Any] = {}
        next_page: int | None = None
        try:
            if self.settings.full:
                extra = self._full(archiver, pool)
            else:
                window, next_page = self._window(archiver, pool)
                extra = {"window": window}
            self._wait_all(archiver)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                results = list(self._results.values())
            archiver.deliver_pending()
            archiver.end(RunResult(archiver.run_id, results), "interrupted")
            raise
        pool.shutdown(wait=True)
        archiver.deliver_pending()
        results = [self._results[d] for d in sorted(self._results)]
        run = RunResult(archiver.run_id, results)
        record = self._record(results, extra, next_page)
        stored: StoredRun | None = None
        if not self.settings.dry_run:
            record["previous"] = self._previous()
            stored = write_run(self.store, record, self.policy, self.clock())
        archiver.end(run, run.exit_status)
        return SyncResult(record, stored.key if stored else None, results)

    def _gate(self, path: str) -> None:
        rate = self.client.rate_limit
        self.budget.settle(rate.remaining, rate.limit)
        # Others spend the same client's hour (shards, a manual archive, the listener): the
        # server's count, not only this run's, decides. Without --max-requests the run
        # leaves the reserve; with it, it stops before the server would refuse.
        self.budget.follow(rate.remaining, rate.limit)
        floor = default_reserve(rate.limit) if self.settings.max_requests is None else 0
        self.budget.take(path, server_remaining=rate.remaining, floor=floor)

    # -- window mode

    def _window(
        self, archiver: Archiver, pool: ThreadPoolExecutor
    ) -> tuple[WindowPlan, int | None]:
        s = self.settings
        plan = plan_window(
            ((run.key, run.record) for run in read_runs(self.store, newest_first=True)),
            lane=self.lane,
            shard=s.shard,
            today=self.clock().date(),
            lookback=s.lookback,
            since=s.since,
        )
        # What the run resumed leaves: after the listing, which matters most (links expire).
        later = list(plan.pending_debts) + list(plan.pending_debt_records)
        self.debt_records.read_again(plan.pending_debt_records)
        for debt_id in plan.pending_debts:
            self.source.archive_whole(debt_id)  # its media or listing were refused
        if plan.slice is None or plan.first_page is None:
            for debt_id in later:
                self._submit(archiver, pool, debt_id)
            return plan, None
        params = {"from": plan.slice[0].isoformat(), "to": plan.slice[1].isoformat()}
        first_page = plan.first_page
        if plan.resumes and s.max_requests is not None and s.max_requests < 4 and first_page > 1:
            # Too small a budget to pay for the page of overlap (and the token) and still
            # list a new page: no overlap, or the lane would never move.
            first_page += 1
        paginator = PageNumberPaginator(
            limit=self.client.settings.page_limit,
            max_pages=LISTING_PAGE_CAP,
            fingerprint=stable_fingerprint,
            first_page=first_page,
        )
        touched: list[str] = []  # in the order first seen
        number = first_page
        exhausted: int | None = None
        try:
            for page in self.client.iter_pages("/followups", params, paginator=paginator):
                number = page.number
                with_media = self._take_page(page.records, page.number, touched)
                self._estimate(page.total)
                with self._lock:
                    self._pages_listed += 1
                    self._pages = page.pages
                for debt_id in with_media:
                    self._submit(archiver, pool, debt_id, prefetch=True)
                archiver.deliver_pending()
                self._progress()
                number = page.number + 1
        except BudgetExhaustedError as exc:
            self._note(exc, f"listing stopped at page {number}; the next run resumes there")
            exhausted = number
        except ApiError as exc:
            # The API failing after its retries, or a page of the wrong shape: what was
            # listed is archived, and the next run resumes at this page.
            self._note(exc, f"listing stopped at page {number}; the next run resumes there")
            exhausted = number
        if paginator.total_changed:
            self._problems.append(
                Problem(
                    ProblemKind.LISTING_UNSTABLE,
                    f"the window listing changed while it was read (total {paginator.first_total}"
                    f" -> {paginator.last_total}); a followup it shifted past a page already "
                    "read is archived by the next window's look-back or by `sync --full`",
                    severity="warning",
                    details={"listing": "/followups"},
                ).to_dict()
            )
        todo = list(dict.fromkeys(touched + later))
        self.debt_records.expect(len(todo))  # at most these need their record: exact now
        for debt_id in todo:
            # A debt left with only its record to read gets an empty partial listing: its
            # manifest carries everything, the run reads the record.
            self._submit(archiver, pool, debt_id)
        return plan, exhausted

    def _take_page(self, records: list[Any], page: int, touched: list[str]) -> set[str]:
        """Take in one page: its followups go to the source (a later copy wins); returns the
        debts with a medium on the page. ``touched`` gets the debts seen the first time."""
        with_media: set[str] = set()
        for index, raw in enumerate(records):
            followup, problems = accept_listed("followup", raw, index, build_followup, None)
            for p in problems:
                self._problems.append(
                    Problem.from_exception(p, page=page, listing="/followups").to_dict()
                )
            if followup is None:
                continue
            self.source.add(followup)
            if followup.media():
                with_media.add(followup.debt_id)
            with self._lock:
                self._followups_seen += 1
                if followup.debt_id not in self._window_counts:
                    touched.append(followup.debt_id)
                self._window_counts[followup.debt_id] = self.source.window_count(followup.debt_id)
        return with_media

    def _estimate(self, total: int | None) -> None:
        """Tell the debt records how many debts the window likely touches: its followups,
        times the share of distinct debts among the followups seen so far."""
        with self._lock:
            seen, debts = self._followups_seen, len(self._window_counts)
        if total and seen:
            self.debt_records.expect(math.ceil(total * debts / seen))

    # -- full mode

    def _full(self, archiver: Archiver, pool: ThreadPoolExecutor) -> dict[str, Any]:
        latest = latest_of_lane(self.store, self.lane)
        done: set[str] = set()
        pass_id = compact_stamp(self.started)
        first_page = 1
        retry: list[str] = []
        if (
            latest is not None
            and not latest.record.get("complete")
            and latest.record.get("full_pass")
        ):
            pass_id = latest.record["full_pass"]["pass_id"]
            for run in lane_history(self.store, latest):
                if (run.record.get("full_pass") or {}).get("pass_id") != pass_id:
                    break
                done.update(d["debt_id"] for d in run.record["debts"] if d["status"] in DONE)
            pending = latest.record.get("pending") or {}
            retry = [d for d in pending.get("debts") or [] if d not in done]
            # The debt listing goes on from one page before where the last run stopped (the
            # debts before it are done or pending); one page of overlap absorbs a shift.
            next_page = latest.record["full_pass"].get("next_page")
            first_page = max(1, int(next_page) - 1) if next_page else 1
        for debt_id in retry:
            self.source.archive_whole(debt_id)
            self._submit(archiver, pool, debt_id)
        listed = 0
        listing_done = False
        paginator = PageNumberPaginator(
            limit=self.client.settings.page_limit,
            max_pages=LISTING_PAGE_CAP,
            fingerprint=stable_fingerprint,
            first_page=first_page,
        )
        number = first_page
        try:
            for page in self.client.iter_pages("/debts", paginator=paginator):
                number = page.number
                with self._lock:
                    self._pages_listed += 1
                    self._pages = page.pages
                for index, raw in enumerate(page.records):
                    debt, problems = accept_listed("debt", raw, index, build_debt, None)
                    for p in problems:
                        self._problems.append(
                            Problem.from_exception(p, page=page.number, listing="/debts").to_dict()
                        )
                    if debt is None or not owns_debt(self.settings.shard, debt.id):
                        continue
                    listed += 1
                    self.debt_records.remember(debt, problems)
                    self._debts_total_hint[debt.id] = _followups_count(debt.raw)
                    if debt.id in done:
                        continue
                    self.source.archive_whole(debt.id)
                    self._submit(archiver, pool, debt.id)
                archiver.deliver_pending()
                self._progress()
                number = page.number + 1
            listing_done = True
            if first_page == 1:
                self.debt_records.mark_listed()
        except ApiError as exc:  # the budget spent, or the API failing after its retries
            self._note(exc, f"the debt listing stopped at page {number}; the next run goes on")
        return {
            "full_pass": {
                "pass_id": pass_id,
                "debts_listed": listed if listing_done and first_page == 1 else None,
                "debts_done_before": len(done),
                "next_page": None if listing_done else number,
            },
            "listing_done": listing_done,
        }

    # -- debts through the pipeline

    def _submit(
        self, archiver: Archiver, pool: ThreadPoolExecutor, debt_id: str, *, prefetch: bool = False
    ) -> None:
        """Hand a debt to the pipeline (``prefetch``: its media only), after its earlier turn
        in this run, if any: one debt is never worked on by two threads at once."""
        work = self._prefetch if prefetch else self._archive
        with self._lock:
            before = self._futures.get(debt_id)
            self._futures[debt_id] = pool.submit(work, archiver, debt_id, before)

    def _prefetch(self, archiver: Archiver, debt_id: str, before: Future[None] | None) -> None:
        if before is not None:
            wait([before])
        try:
            stored, size = archiver.prefetch_media(debt_id)
        except Exception:  # noqa: BLE001 - the debt's full run retries and reports it
            return
        with self._lock:
            count, total = self._prefetched.get(debt_id, (0, 0))
            self._prefetched[debt_id] = (count + stored, total + size)
        self._progress()

    def _archive(self, archiver: Archiver, debt_id: str, before: Future[None] | None) -> None:
        if before is not None:
            wait([before])
        whole = self.settings.full or self.source.archives_whole(debt_id)
        if self.budget.exhausted and whole:
            with self._lock:
                self._pending.add(debt_id)  # it needs its listing: the next run does it
            return
        result = archiver.archive_debt(debt_id)
        if (result.error or {}).get("type") == ProblemKind.BUDGET_EXHAUSTED.value:
            with self._lock:
                self._pending.add(debt_id)  # its listing was refused: nothing was stored
            return
        budget_hit = any(
            p.get("type") == ProblemKind.BUDGET_EXHAUSTED.value for p in result.problems
        )
        with self._lock:
            # Media this run stored ahead of the debt's manifest count as stored, not reused.
            count, size = self._prefetched.pop(debt_id, (0, 0))
            result.media_stored += count
            result.media_bytes_stored += size
            result.media_reused = max(0, result.media_reused - count)
            self._results[debt_id] = _merged(self._results.get(debt_id), result)
            self._pending.discard(debt_id)
            self._pending_records.discard(debt_id)
            if budget_hit or result.status not in DONE:
                # A refresh refused, a medium or the debt failed: the next run retries it
                # whole (a debt that keeps failing is retried every run; it never holds
                # the window back).
                self._pending.add(debt_id)
            if debt_id in self.debt_records.refused:
                self._pending_records.add(debt_id)  # stored, but without its debt record
        if self._on_result is not None:
            self._on_result(result)
        self._progress()

    def _wait_all(self, archiver: Archiver) -> None:
        while True:
            with self._lock:
                running = [f for f in self._futures.values() if not f.done()]
            if not running:
                break
            wait(running, timeout=0.2)
            archiver.deliver_pending()
        for future in list(self._futures.values()):
            future.result()  # a worker's unexpected error (archive_debt catches debts' own)

    # -- the record

    def _note(self, exc: ApiError, what: str) -> None:
        problem = Problem.from_exception(exc).to_dict()
        problem["message"] = f"{exc.message}: {what}"
        with self._lock:
            self._problems.append(problem)

    def _progress(self, message: str | None = None) -> None:
        with self._lock:
            event = SyncEvent(
                pages_listed=self._pages_listed,
                pages=self._pages,
                debts_touched=len(self._window_counts) or len(self._futures),
                debts_done=len(self._results),
                requests_left=self.budget.left(),
                message=message,
            )
        self._on_event(event)

    def _per_debt_cost(self, results: list[DebtResult], debts_readable: bool) -> int:
        """Requests per-debt ``archive`` of the same debts would spend: a token, each debt's
        followup pages (by the count its record gives, else what the run saw), its record."""
        if not results:
            return 0
        pages = 0
        for r in results:
            count = max(
                self._window_counts.get(r.debt_id, 0),
                self._debts_total_hint.get(r.debt_id, 0),
                r.followups,
            )
            pages += max(1, math.ceil(count / 100))
        return 1 + pages + (len(results) if debts_readable else 0)

    def _record(
        self, results: list[DebtResult], extra: dict[str, Any], next_page: int | None
    ) -> dict[str, Any]:
        spent: Spent = self.budget.spent
        s = self.settings
        window: WindowPlan | None = extra.get("window")
        pending = sorted(self._pending)
        pending_records = sorted(self._pending_records - self._pending)
        complete = (
            not spent.exhausted
            and next_page is None
            and not pending
            and not pending_records
            and extra.get("listing_done", True)
            and all(r.status in DONE for r in results)
        )
        debts_left = None
        full_pass = extra.get("full_pass")
        if full_pass is not None and full_pass["debts_listed"] is not None:
            done_now = sum(1 for r in results if r.status in DONE)
            debts_left = max(
                0, full_pass["debts_listed"] - full_pass["debts_done_before"] - done_now
            )
        return {
            "format": RUN_FORMAT,
            "version": 1,
            "run_id": self.run_id,
            "lane": self.lane,
            "mode": s.mode,
            "started_at": iso_precise(self.started),
            "finished_at": iso_precise(self.clock()),
            "tool_version": __version__,
            "api_base_url": self.client.settings.base_url,
            "shard": s.shard.to_json(),
            "window": window.to_json() if window else None,
            "full_pass": full_pass,
            "requests": spent.to_json(),
            "per_debt_cost": self._per_debt_cost(results, self.debt_records.forbidden is None),
            "followups_seen": self._followups_seen,
            "media_stored": sum(r.media_stored for r in results),
            "media_bytes_stored": sum(r.media_bytes_stored for r in results),
            "debts": [
                {
                    "debt_id": r.debt_id,
                    "status": r.status if r.status != "planned" else "unchanged",
                    "sequence": r.sequence,
                    "manifest_key": r.manifest_key,
                    "manifest_sha256": r.manifest_sha256,
                    "followups": r.followups,
                }
                for r in results
            ],
            "problems": self._problems,
            "pending": {
                "next_page": next_page,
                "debts": pending,
                "debt_records": pending_records,
                "debts_left": debts_left,
            },
            "complete": complete,
            "previous": None,
        }

    def _previous(self) -> dict[str, str] | None:
        latest = latest_of_lane(self.store, self.lane)  # the one that finished last
        return latest.ref() if latest else None


def _merged(earlier: DebtResult | None, later: DebtResult) -> DebtResult:
    """One result per debt for the run: the last turn's, with the media of every turn."""
    if earlier is None:
        return later
    later.media_stored += earlier.media_stored
    later.media_bytes_stored += earlier.media_bytes_stored
    later.problems = earlier.problems + later.problems
    if earlier.status == "failed" and later.status in DONE:
        later.status = "partial"
    return later


def _followups_count(raw: dict[str, Any]) -> int:
    value = raw.get("followups_count")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
