"""``archiver verify`` re-hashing a debt, against streaming the same objects with boto3.

SeaweedFS (``weed mini``) and the getbill simulator run on this machine. Each workload's
debt is archived once (``archiver archive``); then, in rounds whose order alternates:

- ``boto3 loop``: a Python process that lists the debt's objects and, in one loop, GETs each
  with boto3 and hashes it (SHA-256, 1 MiB reads): the plain way to re-read an archive;
- ``verify``: ``archiver verify DEBT`` (manifest chain, HEAD of every object for its size and
  lock, every object re-hashed, dossier and receipt checked).

Both are whole processes timed from start to exit. Prints MB/s of each (the bytes under the
debt's prefix over the wall time) and the median of the paired ratios (goal >= 0.9).

    .venv/bin/python benchmarks/verify_rehash.py --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import compile_package

from archiver.devkit.s3server import LocalS3Server

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from archive_throughput import serve_simulator  # noqa: E402


def child_loop(bucket: str, prefix: str) -> None:
    """The baseline, as its own process: list, then GET and hash each object in one loop."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            digest = hashlib.sha256()
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            for chunk in body.iter_chunks(1024 * 1024):
                digest.update(chunk)
            total += item["Size"]
    print(total)


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {out.returncode}:\n{out.stdout[-2000:]}{out.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="20mb,small", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    compile_package()

    parent, child = mp.Pipe()
    sim_proc = mp.Process(target=serve_simulator, args=(child, 0, 0), daemon=True)
    sim_proc.start()
    base_url, debts = parent.recv()
    with tempfile.TemporaryDirectory() as tmp, LocalS3Server() as s3:
        client = s3.client()
        bucket = "verify-bench"
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        env = {
            **os.environ,
            **s3.env(),
            "ARCHIVER_BUCKET": bucket,
            "ARCHIVER_CATALOG": str(Path(tmp) / "catalog.db"),
            "ARCHIVER_MEDIA_HOSTS": "127.0.0.1",
            "GETBILL_API_URL": base_url,
            "GETBILL_CLIENT_ID": "demo-client",
            "GETBILL_CLIENT_SECRET": "demo-secret",
        }
        for workload in args.workloads.split(","):
            debt = debts[workload]
            timed([sys.executable, "-m", "archiver", "archive", debt, "--concurrency", "8"], env)
            prefix = f"debts/{debt}/"
            size = count = 0
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    size += item["Size"]
                    count += 1
            sides: dict[str, list[str]] = {
                "boto3 loop": [sys.executable, str(HERE), "_loop", bucket, prefix],
                "verify": [sys.executable, "-m", "archiver", "verify", debt, "--json"],
            }
            for argv in sides.values():  # warm-up, untimed
                timed(argv, env)
            rates: dict[str, list[float]] = {name: [] for name in sides}
            for r in range(args.rounds):
                names = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in names:
                    rates[name].append(size / timed(sides[name], env) / 1e6)
            ratios = sorted(
                v / b for v, b in zip(rates["verify"], rates["boto3 loop"], strict=True)
            )
            print(f"{workload}: {count} objects, {size / 1e6:.0f} MB")
            for name, values in rates.items():
                print(f"   {name:<11} {statistics.median(values):7.1f} MB/s median")
            print(
                f"   verify / boto3 loop  {statistics.median(ratios):.2f} median of "
                f"{args.rounds} (min {ratios[0]:.2f}, max {ratios[-1]:.2f}); goal >= 0.9"
            )
    parent.send("stop")
    sim_proc.join(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_loop":
        child_loop(sys.argv[2], sys.argv[3])
    else:
        main()
