"""`make demo` runs `archiver demo`: the whole job must work with nothing configured, and
`archiver demo --keep-running` prints variables that, pasted into another shell, make archiver
work against the servers it keeps running.

Both tests look at one run of `archiver demo --keep-running` (the demo is the longest run of
the suite): what it reports and writes, and what it printed and the other shell saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from isolation import isolate_from_the_user, logging_restored
from pypdf import PdfReader
from test_try_locally import _exported

import archiver.devkit.demo
from archiver.cli import demo_cmd, main
from archiver.devkit.demo import DemoReport, describe

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo")]

SEED_1_DEBTS = ["aoqawrflg37x", "skviuvd0ydec"]  # the simulator's first debts (seed 1)


@dataclass
class DemoRun:
    workdir: Path
    result: Result  # of `archiver demo --workdir WORKDIR --keep-running`
    report: DemoReport  # what run_demo gave the command
    steps: list[str] = field(default_factory=list)  # run_demo's on_step texts
    # the variables the other shell got, and its status, archive and verify runs
    shell: list[tuple[Mapping[str, str], list[Result]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    workdir = tmp_path_factory.mktemp("demo")
    steps: list[str] = []
    reports: list[DemoReport] = []
    shell: list[tuple[Mapping[str, str], list[Result]]] = []
    real_run_demo = archiver.devkit.demo.run_demo

    def run_demo(path: Path, **kw: Any) -> DemoReport:
        told = kw["on_step"]

        def on_step(text: str) -> None:
            steps.append(text)
            told(text)

        reports.append(real_run_demo(path, **{**kw, "on_step": on_step}))
        return reports[-1]

    def another_shell(variables: Mapping[str, str]) -> None:
        # What a person does in a second shell while the demo waits for Ctrl-C.
        env = dict(variables)
        runner = CliRunner()
        results = [
            runner.invoke(main, ["status"], env=env),
            runner.invoke(main, ["archive", *SEED_1_DEBTS], env=env),
            runner.invoke(main, ["verify", *SEED_1_DEBTS], env=env),
        ]
        shell.append((variables, results))

    with pytest.MonkeyPatch.context() as patch, logging_restored():
        isolate_from_the_user(patch, tmp_path_factory)
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "ARCHIVER_BUCKET"):
            patch.delenv(name, raising=False)
        patch.setattr(archiver.devkit.demo, "run_demo", run_demo)
        patch.setattr(demo_cmd, "wait_until_interrupted", another_shell)
        result = CliRunner().invoke(main, ["demo", "--workdir", str(workdir), "--keep-running"])
    assert result.exit_code == 0, result.output
    [report] = reports
    yield DemoRun(workdir, result, report, steps, shell)


def test_demo_archives_chains_verifies_and_writes_dossiers(demo: DemoRun) -> None:
    report, steps, tmp_path = demo.report, demo.steps, demo.workdir
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


def test_demo_keep_running_prints_an_environment_that_works(demo: DemoRun) -> None:
    r = demo.result
    [(variables, results)] = demo.shell
    assert _exported(r.output) == dict(variables)  # what is printed is what was used
    for name in (
        "AWS_ENDPOINT_URL_S3",
        "ARCHIVER_BUCKET",
        "ARCHIVER_MEDIA_HOSTS",
        "GETBILL_API_URL",
    ):
        assert name in variables
    status, archive, verify = results
    assert status.exit_code == 0 and "aoqawrflg37x: manifest" in status.output, status.output
    assert archive.exit_code == 0 and "aoqawrflg37x: unchanged" in archive.output, archive.output
    assert verify.exit_code == 0, verify.output
