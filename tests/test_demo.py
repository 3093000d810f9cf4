"""`make demo` runs `archiver demo`: the whole job must work with nothing configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader

from archiver.devkit.demo import describe, run_demo

pytestmark = pytest.mark.integration


def test_demo_archives_chains_verifies_and_writes_dossiers(tmp_path: Path) -> None:
    steps: list[str] = []
    report = run_demo(tmp_path, on_step=steps.append)
    assert report.ok, "\n".join(describe(report))
    assert report.first_run is not None and report.second_run is not None
    assert {d.status for d in report.first_run.debts} == {"archived"}
    second = {d.status for d in report.second_run.debts}
    assert second == {"archived", "unchanged"}  # one debt had new activity
    chained = [d for d in report.second_run.debts if d.status == "archived"]
    assert [d.sequence for d in chained] == [2]
    assert all(v.ok and v.objects > 0 for v in report.verifications)
    assert report.objects_by_kind["media"][0] > 50
    assert len(report.dossiers) == len(report.second_run.debts)
    for pdf in report.dossiers:
        assert len(PdfReader(pdf).pages) >= 1
    assert any("stopping" in s for s in steps)
