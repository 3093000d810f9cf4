"""Archive throughput against a bare copy, and peak memory of archiving one large recording.

Runs everything on this machine: SeaweedFS (``weed mini``) and the getbill simulator, each in its
own process, so the measured process is only the archiver (or the bare-copy loop).

1. Baseline: the ceiling of a bare copy here. The debt's followups are listed, then the same
   N media of S bytes are fetched with one ``httpx.Client`` and written with boto3
   ``put_object`` in a pool of ``--concurrency`` threads; no hashing, no temp file, no lock, no
   conditional write, no manifest. Clients are built before the clock starts on both sides.
2. The archive: ``archiver archive`` of the debt holding those N media, same concurrency: streamed
   SHA-256, temp files, conditional checksummed locked PUTs, records, manifest, catalog, dossier.
3. Peak RSS of ``python -m archiver archive`` for a debt with one recording of ``--big-mb`` MB.

Prints MB/s of the bare copy, of the archive, and of the archive without rendering the PDF
dossier (which is rendered in the same run by default), their ratios to the bare copy
(goal >= 0.9 at concurrency 8), and the peak RSS (goal < 150 MB).

    .venv/bin/python benchmarks/archive_throughput.py --count 32 --size-mb 8 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from archiver.config import ArchiverConfig
from archiver.devkit.s3server import LocalS3Server
from archiver.getbill.client import GetbillClient
from archiver.getbill.settings import ApiSettings
from archiver.store.objects import ObjectStore
from archiver.wiring import open_archiver

# Runs argv[1:], exits with its code, and prints its own peak RSS (KiB) last on stderr.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(usage.ru_maxrss, file=sys.stderr)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def serve_simulator(conn: Any, count: int, size: int, big: int) -> None:
    """Child process: a simulator with one debt of ``count`` media and one with a big one."""
    from archiver.devkit.simulator import Simulator, SimulatorConfig, SimulatorServer

    sim = Simulator(
        SimulatorConfig(
            seed=11, debts=4, other_company_debts=0, followups_per_debt=0, big_debt_followups=0
        )
    )
    many, single = sim.debt_ids(company="A")[:2]
    for _ in range(count):
        sim.add_followup(many, type="call", audio_size=size, audio_format="wav")
    if big:
        sim.add_followup(single, type="call", audio_size=big, audio_format="wav")
    with SimulatorServer(sim) as server:
        conn.send((server.base_url, many, single))
        conn.recv()  # wait until the parent is done


def bare_copy(api: ApiSettings, debt_id: str, s3: Any, bucket: str, concurrency: int) -> float:
    """The plain loop: list the debt's media, GET each into memory, PUT it. Returns MB/s.

    Clients are built before the clock starts, as for the archive; listing the followups
    (which signs the URLs) is timed on both sides."""
    with GetbillClient(api) as getbill, httpx.Client(timeout=120) as http:

        def one(i_url: tuple[int, str]) -> int:
            i, url = i_url
            body = http.get(url).content
            s3.put_object(Bucket=bucket, Key=f"copy/{i}", Body=body)
            return len(body)

        t = time.perf_counter()
        urls = [ref.url for f in getbill.list_followups(debt_id).items for ref in f.media()]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            copied = sum(pool.map(one, enumerate(urls)))
        return copied / (time.perf_counter() - t) / 1e6


SIDES = ("bare", "archive", "no-dossier")


def archive_once(
    api: ApiSettings,
    debt_id: str,
    client: Any,
    bucket: str,
    tmp: Path,
    concurrency: int,
    *,
    dossier: bool,
) -> float:
    """``archiver archive`` of one debt into a fresh Object-Lock bucket. Returns MB/s, timed
    from the debt id to its manifest (and dossier, if asked) stored."""
    store = ObjectStore(client, bucket)
    store.create_bucket()
    cfg = ArchiverConfig(
        bucket=bucket,
        catalog=tmp / f"{bucket}.db",
        media_hosts=("127.0.0.1",),
        concurrency=concurrency,
    )
    with open_archiver(cfg, api, s3_client=client, render_dossiers=dossier) as session:
        t = time.perf_counter()
        run = session.archiver.run([debt_id])
        elapsed = time.perf_counter() - t
    (res,) = run.debts
    assert res.status == "archived", res.to_json()
    return res.media_bytes_stored / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=32, help="media files (default 32)")
    parser.add_argument("--size-mb", type=float, default=8, help="size of each (default 8 MB)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--big-mb", type=int, default=500, help="recording for the RSS check")
    parser.add_argument("--rounds", type=int, default=5, help="paired baseline/archive runs")
    args = parser.parse_args()
    size = int(args.size_mb * 1_000_000)

    parent, child = mp.Pipe()
    sim_proc = mp.Process(
        target=serve_simulator, args=(child, args.count, size, args.big_mb * 1_000_000), daemon=True
    )
    sim_proc.start()
    base_url, many, single = parent.recv()
    api = ApiSettings(base_url=base_url, client_id="demo-client", client_secret="demo-secret")
    with tempfile.TemporaryDirectory() as tmp, LocalS3Server() as s3:
        client = s3.client()
        client.create_bucket(Bucket="bare")
        total = args.count * size
        print(
            f"{args.count} media x {args.size_mb} MB = {total / 1e6:.0f} MB, "
            f"concurrency {args.concurrency}, {os.cpu_count()} cores"
        )
        # Warm-up, untimed: the simulator's media cache, SeaweedFS volume growth, and the
        # archiver's one-time imports (the dossier renderer, its fonts) are paid once here.
        bare_copy(api, many, client, "bare", args.concurrency)
        archive_once(api, many, client, "warm-up", Path(tmp), args.concurrency, dossier=True)
        results: dict[str, list[float]] = {side: [] for side in SIDES}
        for r in range(args.rounds):
            # Each side writes into a bucket of its own made for the round (a new bucket gets
            # new volumes, whose first writes are slower: all sides pay it alike), in an order
            # that rotates so that no side always runs on a warmer machine.
            for side in SIDES[r % 3 :] + SIDES[: r % 3]:
                bucket = f"{side}-{r}"
                if side == "bare":
                    client.create_bucket(Bucket=bucket)
                    results[side].append(bare_copy(api, many, client, bucket, args.concurrency))
                else:
                    dossier = side == "archive"
                    results[side].append(
                        archive_once(
                            api, many, client, bucket, Path(tmp), args.concurrency, dossier=dossier
                        )
                    )
            base = results["bare"][-1]
            print(
                f"round {r + 1}: bare copy {base:.1f} MB/s, archive {results['archive'][-1]:.1f} "
                f"MB/s ({results['archive'][-1] / base:.2f}), without the dossier "
                f"{results['no-dossier'][-1]:.1f} MB/s ({results['no-dossier'][-1] / base:.2f})"
            )
        for side, label in (
            ("bare", "bare copy"),
            ("archive", "archive"),
            ("no-dossier", "archive, no dossier"),
        ):
            values = results[side]
            print(
                f"{label:<20}: {statistics.median(values):.1f} MB/s median, {max(values):.1f} best"
            )
        for side, label in (("archive", "archive"), ("no-dossier", "archive, no dossier")):
            ratios = sorted(a / b for a, b in zip(results[side], results["bare"], strict=True))
            print(
                f"ratio {label:<20}: {statistics.median(ratios):.2f} median of {args.rounds} "
                f"paired rounds (min {ratios[0]:.2f}, max {ratios[-1]:.2f}); goal >= 0.90"
            )

        if args.big_mb:
            store = ObjectStore(client, "rss")
            store.create_bucket()
            env = {
                **os.environ,
                **s3.env(),
                "ARCHIVER_BUCKET": "rss",
                "ARCHIVER_CATALOG": str(Path(tmp) / "rss.db"),
                "ARCHIVER_MEDIA_HOSTS": "127.0.0.1",
                "GETBILL_API_URL": base_url,
                "GETBILL_CLIENT_ID": "demo-client",
                "GETBILL_CLIENT_SECRET": "demo-secret",
            }
            t = time.perf_counter()
            # A small launcher process starts the archiver and reports its peak RSS: a child
            # forked straight from this (large) process would count our pages as its own.
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    LAUNCHER,
                    sys.executable,
                    "-m",
                    "archiver",
                    "archive",
                    single,
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.perf_counter() - t
            stdout = out.stdout
            peak_kb = int(out.stderr.strip().splitlines()[-1])
            line = json.loads(stdout.splitlines()[0]) if stdout else {}
            assert out.returncode == 0, out.stderr[-2000:]
            print(
                f"one {args.big_mb} MB recording: archived in {elapsed:.1f} s, "
                f"status {line.get('status')}, peak RSS {peak_kb / 1024:.0f} MB "
                "(goal < 150 MB)"
            )
    parent.send("stop")
    sim_proc.join(timeout=10)


if __name__ == "__main__":
    main()
