"""The progress display of archive runs, fed a sequence of run events on a recorded terminal."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from archiver.archive.results import ArchiveEvent, ArchiveEventKind
from archiver.cli import main
from archiver.cli.lazy_progress import run_progress
from archiver.cli.progress import RunProgress

K = ArchiveEventKind


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, record=True, force_terminal=True, width=140, color_system=None)
    return console, out


def _frame(display: RunProgress) -> str:
    """The bars as drawn now (plain text)."""
    console = Console(record=True, force_terminal=True, width=140, file=io.StringIO())
    console.print(display.progress.get_renderable())
    return console.export_text()


def test_totals_bytes_dossier_step_results_and_no_stale_line() -> None:
    console, out = _terminal()
    debts = [f"D-{i}" for i in range(1, 7)]
    now = [100.0]
    with RunProgress(console, auto_refresh=False, get_time=lambda: now[0]) as display:
        display.on_event(ArchiveEvent(K.RUN_STARTED, count=len(debts)))
        start = _frame(display)
        # Six debts given: the total is known from the start.
        assert "0/6" in start and "0/?" not in start.split("media")[0]

        display.on_event(ArchiveEvent(K.DEBT_STARTED, debt_id="D-1"))
        display.on_event(ArchiveEvent(K.MEDIA_REUSED, debt_id="D-1", count=1))
        display.on_event(ArchiveEvent(K.MEDIA_PLANNED, debt_id="D-1", count=4))
        assert "D-1: media" in _frame(display)
        for _ in range(2):
            now[0] += 1.0
            display.on_event(ArchiveEvent(K.MEDIA_STORED, debt_id="D-1", size=1_000_000, count=1))
        frame = _frame(display)
        assert "2/4" in frame  # media files
        # Bytes: 2 MB stored, 2 more files at the mean size to come -> 4 MB expected; 1 MB a
        # second, so 2 s left.
        assert "2.0/4.0 MB 1.0 MB/s 0:00:02" in frame
        display.on_event(ArchiveEvent(K.MEDIA_FAILED, debt_id="D-1", message="F-3 audio: 500"))
        display.on_event(ArchiveEvent(K.MEDIA_STORED, debt_id="D-1", size=2_000_000, count=1))
        assert "4.0/4.0 MB" in _frame(display)

        display.on_event(ArchiveEvent(K.DOSSIER_STARTED, debt_id="D-1", count=2))
        assert "D-1: dossier #2" in _frame(display)  # the dossier step is visible
        display.on_event(ArchiveEvent(K.DEBT_DONE, debt_id="D-1", message="partial"))
        # The debt's result is printed as soon as it is done, before the others start.
        printed = console.export_text(clear=False)
        assert "partial D-1: 3 media stored (4.0 MB), 1 reused, 1 failed" in printed
        assert "media failed D-1: F-3 audio: 500" in printed
        assert "1/6" in _frame(display) and "D-1:" not in _frame(display).split("media")[0]

        for debt in debts[1:]:
            display.on_event(ArchiveEvent(K.DEBT_STARTED, debt_id=debt))
            display.on_event(ArchiveEvent(K.MEDIA_PLANNED, debt_id=debt, count=0))
            display.on_event(ArchiveEvent(K.DEBT_DONE, debt_id=debt, message="unchanged"))
        assert "6/6" in _frame(display)
        display.refresh()
    finished = re.findall(r"(?:partial|unchanged) (D-\d): \d+ media stored", console.export_text())
    assert finished == debts
    # The bars are removed when the run ends: the terminal keeps the result lines only.
    assert out.getvalue().endswith("\x1b[1A\x1b[2K" * 3)


def test_a_dossier_rendering_while_the_next_debt_downloads_shows_both_debts() -> None:
    """A debt's dossier renders on its own thread while the next debt is listed and
    downloaded: its events come in between the next debt's, and neither hides the other."""
    console, _ = _terminal()
    with RunProgress(console, auto_refresh=False) as display:
        display.on_event(ArchiveEvent(K.RUN_STARTED, count=2))
        display.on_event(ArchiveEvent(K.DEBT_STARTED, debt_id="D-1"))
        display.on_event(ArchiveEvent(K.MEDIA_PLANNED, debt_id="D-1", count=0))
        display.on_event(ArchiveEvent(K.DEBT_STARTED, debt_id="D-2"))
        display.on_event(ArchiveEvent(K.DOSSIER_STARTED, debt_id="D-1", count=1))
        display.on_event(ArchiveEvent(K.MEDIA_PLANNED, debt_id="D-2", count=3))
        assert "D-1: dossier #1 · D-2: media" in _frame(display)
        display.on_event(ArchiveEvent(K.DEBT_DONE, debt_id="D-1", message="archived"))
        frame = _frame(display)
        # D-1 is done; D-2 still downloads, and says so.
        assert "D-2: media" in frame and "D-1: dossier" not in frame and "1/2" in frame
        display.on_event(ArchiveEvent(K.DEBT_DONE, debt_id="D-2", message="archived"))
        assert "D-2:" not in _frame(display).split("media")[0]


def test_a_run_without_media_has_no_unknown_byte_total() -> None:
    console, _ = _terminal()
    with RunProgress(console, auto_refresh=False) as display:
        display.on_event(ArchiveEvent(K.RUN_STARTED, count=1))
        display.on_event(ArchiveEvent(K.DEBT_STARTED, debt_id="D-1"))
        display.on_event(ArchiveEvent(K.MEDIA_PLANNED, debt_id="D-1", count=0))
        assert display._task(display.bytes).total == 0


@pytest.mark.parametrize(
    "args,drawn", [([], True), (["--no-progress"], False), (["-q"], False), (["-v"], True)]
)
def test_no_progress_and_quiet_turn_the_display_off(args: list[str], drawn: bool) -> None:
    ctx = main.make_context("archiver", [*args, "version"])
    with ctx.scope(), run_progress(True, console=_terminal()[0]) as on_event:
        assert isinstance(getattr(on_event, "__self__", None), RunProgress) is drawn


def test_sync_progress_shows_pages_debts_and_requests_left_and_only_debts_with_problems() -> None:
    from archiver.sync.engine import SyncEvent

    console, out = _terminal()
    with RunProgress(console, auto_refresh=False, every_debt=False) as display:
        display.on_sync(SyncEvent(3, 100, 40, 0, 870))
        frame = _frame(display)
        assert "pages" in frame and "3/100" in frame and "870 requests left" in frame
        assert "0/40" in frame  # debts touched so far
        display.on_event(ArchiveEvent(K.DEBT_DONE, debt_id="D-1", message="archived"))
        display.on_event(ArchiveEvent(K.DEBT_DONE, debt_id="D-2", message="partial"))
        display.on_sync(SyncEvent(100, 100, 2000, 2, None))
        assert "100/100" in _frame(display) and "requests left" not in _frame(display)
    text = out.getvalue()
    assert "D-2" in text and "D-1" not in text  # a clean debt gets no line of its own
