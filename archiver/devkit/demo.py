"""The embedded demo: the whole job on this machine with nothing to configure.

Starts the getbill simulator and a SeaweedFS server on loopback, creates an Object-Lock bucket,
archives the sample debts, records new activity, runs the scheduled pass (``archiver sync`` of
the last days: only the debt with new activity gets manifest 2, chained to 1) and says what
it spent beside what per-debt archiving spent, verifies everything from S3 alone (the sync
run records too), writes the dossiers to a folder, makes the evidence pack of the debt with
the most media (``archiver pack``) and checks it offline, and stops the servers. With the
openssl command installed, a local time-stamping authority (:mod:`archiver.devkit.tsa`) stamps
every manifest, and verify checks the tokens against its test root.

Core code: it reports through ``on_step`` / ``on_event`` callbacks and never prints.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.archive.results import ArchiveEvent, RunResult
from archiver.audit.runs import RunsVerification, verify_runs
from archiver.audit.verify import DebtVerification, verify_debt
from archiver.config import ArchiverConfig
from archiver.devkit.s3server import LocalS3Server
from archiver.devkit.simulator import Simulator, SimulatorConfig, SimulatorServer
from archiver.devkit.tsa import LocalTsaServer, make_test_tsa
from archiver.getbill.settings import ApiSettings
from archiver.manifest.reader import latest_manifest
from archiver.pack import PackResult, PackSettings, PackVerification, build_pack, verify_pack
from archiver.store.objects import ObjectStore
from archiver.sync.engine import SyncResult, SyncSettings
from archiver.wiring import open_archiver, open_sync, rerender_stored, timestamp_trust

DEMO_BUCKET = "getbill-evidence"
DEMO_ORGANIZATION = "Recouvra Conseil SAS (getbill-archiver demo)"


@dataclass
class DemoEnvironment:
    """Running local servers and the settings that reach them."""

    s3: LocalS3Server
    sim: SimulatorServer
    workdir: Path
    config: ArchiverConfig
    api_settings: ApiSettings

    @property
    def simulator(self) -> Simulator:
        return self.sim.simulator

    def store(self) -> ObjectStore:
        return ObjectStore(self.s3.client(), self.config.bucket or DEMO_BUCKET)

    def variables(self) -> dict[str, str]:
        """Everything ``archiver`` in another shell needs to use these servers: the S3
        endpoint and its credentials, the bucket and catalog, the simulator and its client,
        the local TSA and its root."""
        tsa = {"ARCHIVER_TSA_URL": ",".join(self.config.tsa_urls)} if self.config.tsa_urls else {}
        if self.config.tsa_ca is not None:
            tsa["ARCHIVER_TSA_CA"] = str(self.config.tsa_ca.resolve())
        return {
            **self.s3.env(),
            "ARCHIVER_BUCKET": self.config.bucket or DEMO_BUCKET,
            "ARCHIVER_CATALOG": str(self.config.catalog_path().resolve()),
            **self.sim.archiver_env(),
            **tsa,
        }


@contextmanager
def demo_environment(
    workdir: Path, *, seed: int = 1, policy: str = "default", concurrency: int = 4
) -> Iterator[DemoEnvironment]:
    """Start SeaweedFS and the simulator (loopback, free ports); stop both on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        s3_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="archiver-s3-")))
        s3 = LocalS3Server(data_dir=s3_dir)
        s3.start()
        stack.callback(s3.stop)
        sim = stack.enter_context(SimulatorServer(SimulatorConfig(seed=seed)))
        tsa: dict[str, Any] = {}
        if shutil.which("openssl"):  # the local TSA signs with `openssl ts -reply`
            # Absolute: openssl runs in its own working folder.
            authority = make_test_tsa((workdir / "tsa").resolve(), name="getbill-archiver demo TSA")
            server = stack.enter_context(LocalTsaServer(authority))
            tsa = {"tsa_urls": (server.url,), "tsa_ca": authority.ca_pem}
        config = ArchiverConfig(
            bucket=DEMO_BUCKET,
            catalog=workdir / "archiver-catalog.db",
            media_hosts=("127.0.0.1",),
            policy=policy,
            concurrency=concurrency,
            **tsa,
        )
        api_settings = ApiSettings(
            base_url=sim.base_url, client_id="demo-client", client_secret="demo-secret"
        )
        yield DemoEnvironment(s3, sim, workdir, config, api_settings)


@dataclass
class DemoReport:
    endpoint_url: str
    api_url: str
    bucket: str
    first_run: RunResult | None = None
    first_run_requests: int = 0  # API requests of the per-debt first pass (token included)
    sync: SyncResult | None = None  # the scheduled second pass
    verifications: list[DebtVerification] = field(default_factory=list)
    runs_verification: RunsVerification | None = None
    dossiers: list[Path] = field(default_factory=list)
    objects_by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    pack: PackResult | None = None  # the evidence pack of the debt with the most media
    pack_check: PackVerification | None = None  # `archiver pack verify` of it

    @property
    def ok(self) -> bool:
        runs_ok = (
            self.first_run is not None
            and self.first_run.exit_status == "ok"
            and self.sync is not None
            and self.sync.exit_status == "ok"
        )
        records_ok = self.runs_verification is not None and self.runs_verification.ok
        pack_ok = self.pack_check is not None and self.pack_check.ok
        return runs_ok and records_ok and pack_ok and all(v.ok for v in self.verifications)


def run_demo(
    workdir: Path,
    *,
    seed: int = 1,
    on_step: Callable[[str], None] = lambda s: None,
    on_event: Callable[[ArchiveEvent], None] | None = None,
    on_ready: Callable[[DemoEnvironment], None] | None = None,
) -> DemoReport:
    """Run the whole demo in ``workdir`` (dossiers and catalog are left there).

    ``on_ready``, when given, is called with the running servers once everything is archived
    and verified; they stop when it returns (``archiver demo --keep-running`` waits there).
    """
    with demo_environment(workdir, seed=seed) as env:
        report = DemoReport(env.s3.endpoint_url, env.sim.base_url, DEMO_BUCKET)
        on_step(f"SeaweedFS S3 on {env.s3.endpoint_url}; getbill simulator on {env.sim.base_url}")
        store = env.store()
        store.create_bucket()
        on_step(f"bucket {DEMO_BUCKET!r} created with Object Lock (versioning on)")
        debt_ids = env.simulator.debt_ids(company="A")

        on_step(f"archiving {len(debt_ids)} debts with policy {env.config.policy!r}")
        asked = _api_requests(env.simulator)
        with open_archiver(
            env.config, env.api_settings, s3_client=env.s3.client(), on_event=on_event
        ) as session:
            report.first_run = session.archiver.run(debt_ids)
        report.first_run_requests = _api_requests(env.simulator) - asked

        busy = next(d for d in debt_ids if env.simulator.followup_ids(d))
        env.simulator.add_followup(busy, type="call", status="deal_found")
        today = datetime.fromtimestamp(env.simulator.clock(), UTC).date()
        on_step(
            f"new activity on {busy} (a new call); the scheduled pass: `archiver sync "
            f"--since {today - timedelta(days=3)}` (what happened in the last 3 days)"
        )
        with open_sync(
            env.config,
            env.api_settings,
            SyncSettings(since=today - timedelta(days=3)),
            s3_client=env.s3.client(),
            render_dossiers=True,
            on_event=on_event,
        ) as sync_session:
            report.sync = sync_session.syncer.run()
        spent = report.sync.record["requests"]
        on_step(
            f"sync spent {spent['total']} API requests ({_kinds(spent['by_kind'])}); the "
            f"per-debt pass over all {len(debt_ids)} debts spent {report.first_run_requests}, "
            "and would spend as many again to find what changed"
        )

        on_step("verifying every debt from S3 alone (chain, objects re-hashed, locks, dossiers)")
        trust = timestamp_trust(env.config)
        report.verifications = [
            verify_debt(store, d, rerender=rerender_stored, timestamps=trust) for d in debt_ids
        ]
        report.runs_verification = verify_runs(store)
        for key in store.list_keys("debts/"):
            kind = key.split("/")[2] if key.count("/") >= 3 else "other"
            info = store.head(key)
            count, size = report.objects_by_kind.get(kind, (0, 0))
            report.objects_by_kind[kind] = (count + 1, size + (info.size if info else 0))
        for debt_id in debt_ids:
            latest = None
            for key in store.list_keys(f"debts/{debt_id}/dossiers/"):
                if key.endswith(".pdf"):  # not the receipts beside them
                    latest = key
            if latest:
                out = workdir / f"dossier-{debt_id}.pdf"
                out.write_bytes(store.read_bytes(latest))
                report.dossiers.append(out)
        report.pack, report.pack_check = _pack_largest(
            store, debt_ids, workdir, on_step, env.config.tsa_ca_pem()
        )
        if on_ready is not None:
            on_ready(env)
        on_step("stopping the servers")
        return report


def _pack_largest(
    store: ObjectStore,
    debt_ids: list[str],
    workdir: Path,
    on_step: Callable[[str], None],
    tsa_ca_pem: bytes | None = None,
) -> tuple[PackResult, PackVerification]:
    """``archiver pack`` of the debt whose latest manifest names the most media bytes, into
    ``workdir/pack-ID`` (the pack of an earlier demo run there is replaced), checked offline."""

    def media_bytes(debt_id: str) -> int:
        stored = latest_manifest(store, debt_id)
        return int(stored[2]["summary"]["media_bytes"]) if stored else 0

    debt_id = max(debt_ids, key=media_bytes)
    target = workdir / f"pack-{debt_id}"
    if target.is_dir():
        shutil.rmtree(target)  # the demo's own output of an earlier run
    on_step(f"evidence pack of {debt_id}, the debt with the most media: `archiver pack`")
    settings = PackSettings(
        organization=DEMO_ORGANIZATION, actor="demo", reason="demo", tsa_ca_pem=tsa_ca_pem
    )
    result = build_pack(store, debt_id, target, settings)
    on_step("checking the pack offline, from the pack alone: `archiver pack verify`")
    return result, verify_pack(target)


def _api_requests(sim: Simulator) -> int:
    """API and token requests the simulator has served."""
    return len(sim.requests_to("/external-api/")) + len(sim.requests_to("/token"))


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in by_kind.items())


def describe(report: DemoReport) -> list[str]:
    """Plain-text lines summarising a demo run (the CLI prints them)."""
    lines = [f"S3 endpoint {report.endpoint_url}, bucket {report.bucket}"]
    for kind, (count, size) in sorted(report.objects_by_kind.items()):
        lines.append(f"  debts/*/{kind}/: {count} object(s), {size:,} bytes")
    if report.sync:
        r = report.sync.record
        lines.append(
            f"sync run record {report.sync.key}: {len(r['debts'])} debt(s) touched, "
            f"{r['requests']['total']} request(s) (per-debt `archive` of all debts: "
            f"{report.first_run_requests})"
        )
    if report.first_run:
        latest = {d.debt_id: d for d in report.first_run.debts}
        latest.update({d.debt_id: d for d in (report.sync.debts if report.sync else [])})
        for d in latest.values():
            lines.append(
                f"  {d.debt_id}: {d.status}, manifest {d.sequence} -> "
                f"{d.manifest_key} (sha256 {str(d.manifest_sha256)[:16]}...)"
            )
    runs = report.runs_verification
    if runs is not None:
        lines.append(
            f"verify: sync run records {'clean' if runs.ok else 'PROBLEMS'} "
            f"({runs.records} in {len(runs.lanes)} lane(s))"
        )
        for p in runs.problems:
            lines.append(f"  {p.kind}: {p.message} [{p.key}]")
    bad = [v for v in report.verifications if not v.ok]
    lines.append(
        f"verify: {len(report.verifications) - len(bad)} of {len(report.verifications)} debts clean"
    )
    for v in bad:
        for p in v.problems:
            lines.append(f"  {v.debt_id}: {p.kind}: {p.message} [{p.key}]")
    for path in report.dossiers:
        lines.append(f"dossier: {path}")
    if report.pack is not None:
        made, check = report.pack, report.pack_check
        lines.append(
            f"evidence pack: {made.path}/ ({made.files} files, {made.bytes:,} bytes, debt "
            f"{made.debt_id}, manifest {made.sequence}); pack verify: "
            + ("clean" if check is not None and check.ok else "PROBLEMS")
        )
        for problem in check.problems if check is not None else []:
            lines.append(f"  {problem.kind}: {problem.message} [{problem.key}]")
        index = (made.path / "data" / "index.html").resolve()
        lines.append(f"  open it in a browser: {index.as_uri()}")
        lines.append(f"  check it again: archiver pack verify {made.path}")
    return lines


__all__ = [
    "DEMO_BUCKET",
    "DemoEnvironment",
    "DemoReport",
    "demo_environment",
    "describe",
    "run_demo",
]
