"""``archiver listen``: from webhook to manifest, and how many deliveries a second it takes.

A simulated company (``--debts`` debts, small recordings) served by the getbill simulator in
this process, the listener as its own ``archiver listen`` process (``--workers``), SeaweedFS
(``weed mini``) underneath. The simulator's rate limit is raised out of the way: this
measures the listener, not getbill's hour.

1. Latency: ``--deliveries`` new calls with a recording, one every ``1/--pace`` seconds on
   debts in turn, each reported by the simulator's signed webhook. For each, the time from
   its receipt to its debt's manifest stored (the queue file's ``received_ts`` and
   ``done_ts``, both stamped by the listener): p50, p95, max; and that every one is named by
   its debt's latest manifest.
2. Rate: ``--burst`` distinct signed ``debt.updated`` deliveries posted by ``--clients``
   keep-alive clients at once. Each 200 comes after its delivery is stored (the listener
   answers only then): the rate acknowledged within 10 s, the answer times, and a count of
   the objects under ``webhooks/`` against the deliveries acknowledged.

    .venv/bin/python benchmarks/listen_latency.py                    # 200 + 2,000 deliveries
    .venv/bin/python benchmarks/listen_latency.py --deliveries 50 --burst 500
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from measure import compile_package

from archiver.devkit.s3server import LocalS3Server
from archiver.devkit.simulator import Simulator, SimulatorConfig, SimulatorServer
from archiver.listen.signature import SIGNATURE_HEADER, sign
from archiver.manifest.reader import latest_manifest
from archiver.store.objects import ObjectStore

SECRET = "benchmark-webhook-secret-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def rows(queue: Path) -> list[tuple[str, str, float, float | None]]:
    with sqlite3.connect(queue) as db:
        found = db.execute("SELECT sha256, state, received_ts, done_ts FROM deliveries")
        return [(str(a), str(b), float(c), d) for a, b, c, d in found.fetchall()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_named(name: str) -> int | None:
    """The pid of this process's child whose command line names ``name`` (the S3 server)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    return int(pid)
    return None


def wait_until(what, timeout: float, every: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(every)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debts", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--pace", type=float, default=5.0, help="new calls a second (phase 1)")
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--burst-type",
        default="debt.updated",
        help="event type of phase 2 (company.updated: stored, nothing to archive)",
    )
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    compile_package()

    sim = Simulator(
        SimulatorConfig(
            seed=11,
            debts=args.debts + 1,
            other_company_debts=0,
            followups_per_debt=2,
            big_debt_followups=2,
            audio_size_range=(10_000, 40_000),
            large_audio_share=0.0,
            rate_limit=1_000_000,
        )
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalS3Server() as s3,
        SimulatorServer(sim) as api,
    ):
        store = ObjectStore(s3.client(), "listen-bench")
        store.create_bucket()
        port = free_port()
        queue = Path(tmp) / "queue.db"
        env = {
            **os.environ,
            **s3.env(),
            "PYTHONPATH": str(ROOT),
            "ARCHIVER_BUCKET": store.bucket,
            "ARCHIVER_CATALOG": str(Path(tmp) / "catalog.db"),
            "ARCHIVER_MEDIA_HOSTS": "127.0.0.1",
            "GETBILL_API_URL": api.base_url,
            "GETBILL_CLIENT_ID": "demo-client",
            "GETBILL_CLIENT_SECRET": "demo-secret",
            "GETBILL_WEBHOOK_SECRET": SECRET,
        }
        log = Path(tmp) / "listen.log"
        listener = subprocess.Popen(
            [sys.executable, "-m", "archiver", "listen", "--port", str(port)]
            + ["--workers", str(args.workers), "--queue", str(queue)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(healthy, 60):
            sys.exit("the listener did not start:\n" + log.read_text())
        try:
            print(
                f"{os.cpu_count()} cores; listener with {args.workers} workers; "
                f"{args.debts} debts in the simulator"
            )
            if not args.skip_latency:
                latency(sim, store, queue, base, args)
            rate(sim, store, queue, base, args, listener.pid)
        finally:
            listener.send_signal(signal.SIGTERM)
            listener.wait(timeout=120)


def latency(sim: Simulator, store: ObjectStore, queue: Path, base: str, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    sim.config.webhook_url = base + "/webhooks/getbill"
    sim.config.webhook_secret = SECRET
    debts = [d for d in sim.debt_ids("A")]
    made: list[tuple[str, str]] = []
    began = time.perf_counter()
    for n in range(args.deliveries):
        debt = debts[n % len(debts)]
        made.append((debt, sim.add_followup(debt)["id"]))
        time.sleep(max(0.0, began + (n + 1) / args.pace - time.perf_counter()))
    assert sim.webhooks.flush(120)
    sim.config.webhook_url = None
    acknowledged = [s for s in sim.webhooks.sent if s.status == 200]
    shas = {s.body_sha256 for s in acknowledged}

    def all_archived() -> bool:
        return sum(1 for r in rows(queue) if r[0] in shas and r[1] == "archived") == len(shas)

    finished = wait_until(all_archived, 600)
    done = [r for r in rows(queue) if r[0] in shas and r[1] == "archived" and r[3] is not None]
    seconds = [float(r[3]) - r[2] for r in done]  # type: ignore[arg-type]
    named = 0
    for debt in set(d for d, _ in made):
        stored = latest_manifest(store, debt)
        ids = {f["id"] for f in stored[2]["followups"]} if stored else set()
        named += sum(1 for d, f in made if d == debt and f in ids)
    print(
        f"1. latency: {len(acknowledged)} of {args.deliveries} webhooks acknowledged at "
        f"{args.pace:g}/s, {len(done)} archived{'' if finished else ' (timed out)'}; webhook "
        f"-> manifest stored: p50 {statistics.median(seconds):.2f} s, p95 "
        f"{percentile(seconds, 0.95):.2f} s, max {max(seconds):.2f} s; {named} of "
        f"{len(made)} new calls named by their debt's latest manifest"
    )


def rate(
    sim: Simulator, store: ObjectStore, queue: Path, base: str, args: argparse.Namespace, pid: int
) -> None:
    debts = sim.debt_ids("A")
    bodies = [
        json.dumps(
            {"type": args.burst_type, "data": {"id": debts[n % len(debts)], "n": n}, "changes": {}}
        ).encode()
        for n in range(args.burst)
    ]
    before = sum(1 for _ in store.list_keys("webhooks/"))
    local = threading.local()
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()

    def post(body: bytes) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=30)
        t = time.perf_counter()
        status = client.post(
            base + "/webhooks/getbill",
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, SECRET)},
        ).status_code
        with lock:
            answers.append((status, time.perf_counter() - t))

    weed = child_named("weed")
    began = time.perf_counter()
    cpu = cpu_at_start = cpu_seconds(pid)
    weed_cpu = cpu_seconds(weed) if weed else 0.0
    own_cpu = time.process_time()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(post, bodies))
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu
    weed_cpu = (cpu_seconds(weed) - weed_cpu) if weed else float("nan")
    own_cpu = time.process_time() - own_cpu
    ok = [t for status, t in answers if status == 200]
    in_time = [t for t in ok if t <= 10.0]
    stored = sum(1 for _ in store.list_keys("webhooks/")) - before
    # The archives the burst asked for, to the last one: when, in how many archive runs, and
    # the listener's CPU for the whole of it (acknowledgements and archives).
    shas = {hashlib.sha256(body).hexdigest() for body in bodies}

    def settled() -> list[tuple[str, str, float, float | None]]:
        return [r for r in rows(queue) if r[0] in shas]

    waiting = ("receiving", "stored", "resolved")
    drained = wait_until(lambda: not any(r[1] in waiting for r in settled()), 600)
    after = time.perf_counter() - began - elapsed
    total_cpu = cpu_seconds(pid) - cpu_at_start
    done = settled()
    runs = len({r[3] for r in done if r[1] == "archived"})
    archived = sum(1 for r in done if r[1] == "archived")
    print(
        f"2. rate: {len(in_time)} of {args.burst} deliveries acknowledged within 10 s in "
        f"{elapsed:.1f} s = {len(in_time) / elapsed:.0f}/s with {args.clients} clients "
        f"(goal >= 200/s); answer p50 {statistics.median(ok) * 1000:.0f} ms, p95 "
        f"{percentile(ok, 0.95) * 1000:.0f} ms; {stored} objects stored for {len(ok)} "
        f"acknowledged (each stored before its 200); the listener spent {cpu * 1000 / len(ok):.1f} "
        f"ms CPU per delivery (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    per = 1000 / len(bodies)
    print(
        f"   CPU during the burst, per delivery: listener {cpu * per:.1f} ms, SeaweedFS "
        f"{weed_cpu * per:.1f} ms, this process (the {args.clients} clients and the simulator) "
        f"{own_cpu * per:.1f} ms; {elapsed * 2 * per:.1f} ms of the 2 cores' time"
    )
    kind = "archived" if args.burst_type != "company.updated" else "settled (nothing to archive)"
    print(
        f"   then: {archived} of {len(shas)} {kind} in {runs} archive runs, the last "
        f"{after:.1f} s after the burst{'' if drained else ' (timed out)'}; the listener spent "
        f"{total_cpu * 1000 / len(shas):.1f} ms CPU per delivery from the burst's start to there"
    )


if __name__ == "__main__":
    main()
