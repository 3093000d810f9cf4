"""Bad command-line input gets a clear message and the usage exit code, never a traceback."""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.archive.results import ArchiveEvent, ArchiveEventKind
from archiver.cli import main
from archiver.cli._common import printable, read_debt_ids
from archiver.cli.progress import progress_display


def test_debts_file_skips_comments_blank_lines_and_duplicates(tmp_path: Path) -> None:
    f = tmp_path / "debts.txt"
    f.write_text("# active debts\n\n  d1  \nd2\nd1\n", encoding="utf-8")
    assert read_debt_ids(("d0", "d2"), str(f)) == ["d0", "d2", "d1"]


@pytest.mark.parametrize(
    "content,expected",
    [(None, "cannot read"), (b"d1\n\xff\xfe\n", "not UTF-8")],
)
def test_unreadable_debts_file_is_a_usage_error(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    f = tmp_path / "debts.txt"
    if content is not None:
        f.write_bytes(content)
    result = CliRunner().invoke(main, ["archive", "--debts-file", str(f)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_no_debt_at_all_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["archive"])
    assert result.exit_code == 2
    assert "give at least one DEBT_ID" in result.output


def test_missing_bucket_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHIVER_BUCKET", raising=False)
    result = CliRunner().invoke(main, ["verify", "--all"])
    assert result.exit_code == 2
    assert "ARCHIVER_BUCKET" in result.output


def test_progress_display_survives_markup_in_ids_and_messages() -> None:
    err = io.StringIO()
    with redirect_stderr(err), progress_display() as on_event:
        on_event(ArchiveEvent(ArchiveEventKind.DEBT_STARTED, debt_id="a[/]"))
        on_event(
            ArchiveEvent(ArchiveEventKind.MEDIA_FAILED, debt_id="a[/]", message="[/x] boom [bold]")
        )
        on_event(ArchiveEvent(ArchiveEventKind.LOG, debt_id="a[/]", message="failed: [/]"))
        on_event(ArchiveEvent(ArchiveEventKind.DEBT_DONE, debt_id="a[/]"))
    assert "[/x] boom" in err.getvalue()


def test_printable_escapes_control_characters_and_cuts_long_values() -> None:
    assert printable("ab\x07c") == "ab\\x07c"
    assert len(printable("x" * 300)) == 80
