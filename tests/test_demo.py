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
    assert report.first_run is not None and report.sync is not None
    assert {d.status for d in report.first_run.debts} == {"archived"}
    # The scheduled pass is a sync of the last days: only the debt with new activity.
    (touched,) = report.sync.debts
    assert touched.status == "archived" and touched.sequence == 2
    spent = report.sync.record["requests"]
    assert spent["by_kind"]["followups_listing"] == 1
    assert spent["total"] < report.first_run_requests  # cheaper than per-debt archiving
    assert report.runs_verification is not None and report.runs_verification.records == 1
    assert all(v.ok and v.objects > 0 for v in report.verifications)
    # The local TSA stamped every manifest, and verify checked each token against its root.
    for v in report.verifications:
        assert v.timestamps == v.manifests
        assert not [n for n in v.notices if n.kind.value.startswith("Timestamp")]
    assert report.objects_by_kind["media"][0] > 50
    assert len(report.dossiers) == len(report.first_run.debts)
    for pdf in report.dossiers:
        assert len(PdfReader(pdf).pages) >= 1
    assert any("stopping" in s for s in steps)
    # It ends with the evidence pack of its largest debt, clean, and says how to open it.
    assert report.pack is not None and report.pack_check is not None and report.pack_check.ok
    assert report.pack.path == tmp_path / f"pack-{report.pack.debt_id}"
    assert (report.pack.path / "data" / "index.html").is_file()
    # The pack carries the tokens and the TSA root, so pack verify checked their signatures.
    assert report.pack_check.tokens == report.pack.manifests
    assert (report.pack.path / "data" / "tsa-ca.pem").is_file()
    assert any("index.html" in line for line in describe(report))
