"""The progress display of archive runs on stderr, shared by ``archive`` and ``demo``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from archiver.archive.results import ArchiveEvent, ArchiveEventKind

from ._common import printable

__all__ = ["progress_display"]


@contextmanager
def progress_display(enabled: bool) -> Iterator[Callable[[ArchiveEvent], None]]:
    """A rich progress display on stderr (debts, files, bytes), or a no-op callback."""
    if not enabled:
        yield lambda event: None
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        debts = progress.add_task("debts", total=None, extra="")
        files = progress.add_task("files", total=0, extra="")
        state = {"bytes": 0, "reused": 0}

        def on_event(event: ArchiveEvent) -> None:
            match event.kind:
                case ArchiveEventKind.DEBT_STARTED:
                    progress.update(debts, extra=escape(printable(event.debt_id)))
                case ArchiveEventKind.DEBT_DONE:
                    progress.advance(debts)
                case ArchiveEventKind.MEDIA_PLANNED:
                    task = progress.tasks[files]
                    progress.update(files, total=(task.total or 0) + event.count)
                case ArchiveEventKind.MEDIA_REUSED:
                    state["reused"] += event.count
                case ArchiveEventKind.MEDIA_STORED:
                    state["bytes"] += event.size
                    progress.advance(files)
                    progress.update(
                        files,
                        extra=f"{state['bytes'] / 1e6:,.1f} MB stored, {state['reused']} reused",
                    )
                case ArchiveEventKind.MEDIA_FAILED:
                    progress.advance(files)
                    console.print(
                        f"[yellow]media failed[/] {escape(printable(event.debt_id))}: "
                        f"{escape(printable(event.message, 300))}"
                    )
                case ArchiveEventKind.LOG:
                    console.print(
                        f"{escape(printable(event.debt_id))}: "
                        f"{escape(printable(event.message, 300))}"
                    )

        yield on_event
