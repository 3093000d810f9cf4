"""The progress display of a run, loaded only when it draws: a run with no terminal (cron,
Kubernetes, a pipe), --json, -q or --no-progress gets do-nothing callbacks and never loads
rich (:mod:`.progress`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ._common import progress_wanted

__all__ = ["run_progress", "sync_progress"]


def run_progress(
    show: bool, *, console: Any = None
) -> AbstractContextManager[Callable[[Any], None]]:
    """:func:`.progress.progress_display` (on stderr, or ``console``) for a run that draws
    (``show``: a terminal, and neither --json, -q nor --no-progress); a do-nothing callback
    otherwise, without loading rich at all (cron, Kubernetes, a pipe)."""
    if not progress_wanted(show):
        return nullcontext(_no_display)
    from .progress import progress_display

    return progress_display(console=console)


def sync_progress(
    show: bool,
) -> AbstractContextManager[tuple[Callable[[Any], None], Callable[[Any], None]]]:
    """:func:`run_progress` for a sync: its (run events, sync events) callbacks."""
    if not progress_wanted(show):
        return nullcontext((_no_display, _no_display))
    from .progress import sync_progress_display

    return sync_progress_display()


def _no_display(event: Any) -> None:
    """The progress callback of a run that draws nothing."""
