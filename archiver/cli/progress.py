"""The progress display of archive runs on stderr, shared by ``archive`` and ``demo``.

On a terminal it draws three bars: debts (the total is known from the start: ``0/6``, with the
debt and step in progress, the dossier included), media files, and bytes with rate and ETA.
Media sizes are only known once downloaded, so the bytes total is an estimate: what is
stored plus the files still to come at the mean size so far. Each debt's result is printed
as it finishes; the bars are removed at the end, so no stale line stays behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from archiver.archive.results import ArchiveEvent, ArchiveEventKind

from ._common import printable

__all__ = ["RunProgress", "progress_display"]


@contextmanager
def progress_display(*, console: Console | None = None) -> Iterator[Callable[[ArchiveEvent], None]]:
    """A progress display on stderr (or ``console``). Whether a run draws at all (a terminal,
    neither --json, -q nor --no-progress) is decided by :mod:`.lazy_progress`, which imports
    this module, and rich, only for a run that draws."""
    display = RunProgress(console or Console(stderr=True))
    with display:
        yield display.on_event


@contextmanager
def sync_progress_display(
    *, console: Console | None = None
) -> Iterator[tuple[Callable[[ArchiveEvent], None], Callable[[Any], None]]]:
    """Like :func:`progress_display` for a sync: (run events, sync events) callbacks; only
    debts with problems get a line of their own (a sync touches thousands)."""
    display = RunProgress(console or Console(stderr=True), every_debt=False)
    with display:
        yield display.on_event, display.on_sync


@dataclass
class _DebtTally:
    stored: int = 0
    stored_bytes: int = 0
    reused: int = 0
    failed: int = 0


class RunProgress:
    """Turns the run events of an archive run into bars and per-debt result lines.

    Events may come from any thread of the run. ``auto_refresh=False`` draws only on
    :meth:`refresh`, and ``get_time`` replaces the monotonic clock of rates and ETAs (tests).
    """

    def __init__(
        self,
        console: Console,
        *,
        auto_refresh: bool = True,
        get_time: Callable[[], float] | None = None,
        every_debt: bool = True,
    ) -> None:
        self.console = console
        self.every_debt = every_debt  # False: only debts with something to say get a line
        self.progress: Progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            _AmountColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[step]}"),
            console=console,
            transient=True,
            auto_refresh=auto_refresh,
            get_time=get_time,
        )
        self.debts = self.progress.add_task("debts", total=None, step="", unit="count")
        self.files = self.progress.add_task("media", total=0, step="", unit="count")
        self.bytes = self.progress.add_task("bytes", total=None, step="", unit="bytes")
        self.pages: TaskID | None = None
        self._lock = threading.Lock()
        self._tallies: dict[str, _DebtTally] = {}
        # What each debt under way is doing, in the order they started: a debt's dossier
        # renders while the next debt lists and downloads, and both are shown.
        self._steps: dict[str, str] = {}
        self._files_done = 0
        self._bytes_done = 0

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def refresh(self) -> None:
        """Draw the bars now."""
        self.progress.refresh()

    def on_event(self, event: ArchiveEvent) -> None:
        """Update the display for one run event."""
        with self._lock:
            self._handle(event)

    def _handle(self, event: ArchiveEvent) -> None:
        debt = escape(printable(event.debt_id)) if event.debt_id else ""
        tally = self._tallies.setdefault(event.debt_id or "", _DebtTally())
        match event.kind:
            case ArchiveEventKind.RUN_STARTED:
                self.progress.update(self.debts, total=event.count)
            case ArchiveEventKind.DEBT_STARTED:
                self._step(debt, "listing followups")
            case ArchiveEventKind.MEDIA_PLANNED:
                total = (self._task(self.files).total or 0) + event.count
                self.progress.update(self.files, total=total)
                self._step(debt, "media")
                self._estimate_bytes()
            case ArchiveEventKind.MEDIA_REUSED:
                tally.reused += event.count
            case ArchiveEventKind.MEDIA_STORED:
                tally.stored += 1
                tally.stored_bytes += event.size
                self._files_done += 1
                self._bytes_done += event.size
                self.progress.advance(self.files)
                self.progress.update(self.bytes, completed=self._bytes_done)
                self._estimate_bytes()
            case ArchiveEventKind.MEDIA_FAILED:
                tally.failed += 1
                self._files_done += 1
                self.progress.advance(self.files)
                self._estimate_bytes()
                self.console.print(
                    f"[yellow]media failed[/] {debt}: {escape(printable(event.message, 300))}"
                )
            case ArchiveEventKind.DOSSIER_STARTED:
                self._step(debt, f"dossier #{event.count}")
            case ArchiveEventKind.DEBT_DONE:
                self.progress.advance(self.debts)
                self._step(debt, None)
                if self.every_debt or event.message not in _STATUS_STYLE or tally.failed:
                    self.console.print(_result_line(debt, event.message, tally))
            case ArchiveEventKind.LOG:
                self.console.print(f"{debt}: {escape(printable(event.message, 300))}")

    def _step(self, debt: str, step: str | None) -> None:
        """Set what ``debt`` is doing (None: it is done) and show every debt under way."""
        if step is None:
            self._steps.pop(debt, None)
        else:
            self._steps[debt] = step
        shown = " · ".join(f"{d}: {what}" for d, what in self._steps.items())
        self.progress.update(self.debts, step=shown)

    def on_sync(self, event: Any) -> None:
        """Update the display for a sync's progress (:class:`archiver.sync.engine.SyncEvent`):
        pages listed, debts handed to the pipeline, requests left."""
        with self._lock:
            if self.pages is None:
                self.pages = self.progress.add_task(
                    "pages", total=None, step="", unit="count", start=True
                )
            left = "" if event.requests_left is None else f"{event.requests_left} requests left"
            self.progress.update(
                self.pages, completed=event.pages_listed, total=event.pages, step=left
            )
            self.progress.update(self.debts, total=event.debts_touched)

    def _task(self, task_id: TaskID) -> Task:
        return next(t for t in self.progress.tasks if t.id == task_id)

    def _estimate_bytes(self) -> None:
        # Sizes are known only once downloaded: the files still to come count at the mean.
        files_total = int(self._task(self.files).total or 0)
        stored = sum(t.stored for t in self._tallies.values())
        if not stored:
            total = None if files_total > self._files_done else self._bytes_done
        else:
            remaining = max(0, files_total - self._files_done)
            total = self._bytes_done + remaining * self._bytes_done // stored
        # Set on the task itself: Progress.update(total=...) would forget the samples the
        # rate and ETA are computed from, and the estimate moves with every file.
        self._task(self.bytes).total = total


_STATUS_STYLE = {"archived": "green", "unchanged": "green", "planned": "cyan"}


def _result_line(debt: str, status: str, tally: _DebtTally) -> str:
    style = _STATUS_STYLE.get(status, "yellow" if status == "partial" else "red")
    parts = [f"{tally.stored} media stored ({_size(tally.stored_bytes)})"]
    if tally.reused:
        parts.append(f"{tally.reused} reused")
    if tally.failed:
        parts.append(f"{tally.failed} failed")
    return f"[{style}]{status or 'done'}[/] {debt}: " + ", ".join(parts)


def _size(count: int) -> str:
    return str(decimal(count))


class _AmountColumn(ProgressColumn):
    """``3/6`` for counted tasks, ``1.2/4.0 MB`` for the bytes task."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()
        self._count = MofNCompleteColumn()

    def render(self, task: Task) -> RenderableType:
        return (self._bytes if task.fields.get("unit") == "bytes" else self._count).render(task)


class _RateColumn(ProgressColumn):
    """The transfer rate of the bytes task (nothing for the others)."""

    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> RenderableType:
        return self._speed.render(task) if task.fields.get("unit") == "bytes" else Text("")
