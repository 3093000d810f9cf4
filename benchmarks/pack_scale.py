"""Evidence pack of a debt with GBs of recordings: time, throughput and peak RSS of
``archiver pack``, against reading the same objects from S3 into /dev/null.

Runs everything on this machine: SeaweedFS (``weed mini``) and the getbill simulator (its own
process), one debt with ``--files`` recordings totalling ``--total-mb`` MB (generated as
streams), archived once. Then, for ``--rounds`` rounds:

1. Baseline: every object of the debt (records, media, manifest, dossier) read from S3 with
   ``ObjectStore.iter_chunks`` into /dev/null, ``--concurrency`` objects at once, in this
   process (clients built before the clock starts). Then the same read with SHA-256 and
   SHA-512 of every chunk taken on the way: the fastest any pack could be on this machine
   (the pack must take both digests; it also writes the files, checks them and builds the
   bag), so "with both digests / without" is the most a pack's ratio can be here.
2. ``archiver pack DEBT -o DIR`` as a separate process, same concurrency: streamed copy with
   SHA-256 and SHA-512, checks against the manifest, the bag, index.html, the export event.
   A small launcher reports its peak RSS (``os.wait4``), so this process's pages are not
   counted.
3. The same with ``--zip`` (the bag is built, then streamed into a ZIP64 file).

The pack takes two digests of every byte (SHA-256, checked against the manifest, and SHA-512,
the bag's second fixity); the speed of both on one core is printed too, since on a small
machine they, not S3, set the pace.

Prints MB/s of each, the ratio pack / baseline (goal >= 0.9), pack / the read with both
digests, and the peak RSS (goal < 150 MB).
The pack's time is the process's wall time, interpreter start and imports included (printed
apart: a process importing what ``archiver pack`` imports, measured the same way).

    .venv/bin/python benchmarks/pack_scale.py --total-mb 2000 --files 16
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from measure import compile_package, run_process

from archiver.config import ArchiverConfig
from archiver.devkit.s3server import LocalS3Server
from archiver.getbill.settings import ApiSettings
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.wiring import open_archiver


def serve_simulator(conn: Any, files: int, size: int) -> None:
    """Child process: a simulator with one debt of ``files`` recordings of ``size`` bytes."""
    from archiver.devkit.simulator import Simulator, SimulatorConfig, SimulatorServer

    sim = Simulator(
        SimulatorConfig(
            seed=5, debts=2, other_company_debts=0, followups_per_debt=0, big_debt_followups=0
        )
    )
    debt_id = sim.debt_ids(company="A")[0]
    for _ in range(files):
        sim.add_followup(debt_id, type="call", audio_size=size, audio_format="wav")
    with SimulatorServer(sim) as server:
        conn.send((server.base_url, debt_id))
        conn.recv()  # wait until the parent is done


def read_to_null(
    store: ObjectStore,
    names: Sequence[tuple[str, str | None]],
    workers: int,
    *,
    digests: bool = False,
) -> int:
    """Read every object into /dev/null, ``workers`` at once; the bytes read. With
    ``digests``, each chunk is also hashed with SHA-256 and SHA-512 on the way, as the pack
    must: the fastest any pack could be here (no file written, nothing checked, no bag)."""
    with open(os.devnull, "wb") as null:

        def one(item: tuple[str, str | None]) -> int:
            n = 0
            both = (hashlib.sha256(), hashlib.sha512()) if digests else ()
            for chunk in store.iter_chunks(*item):
                for digest in both:
                    digest.update(chunk)
                null.write(chunk)
                n += len(chunk)
            return n

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(one, names))


def hash_speed(seconds: float = 1.0) -> float:
    """MB/s of SHA-256 and SHA-512 together over 1 MiB chunks on one core, as the pack hashes."""
    chunk, n = os.urandom(1 << 20), 0
    a, b = hashlib.sha256(), hashlib.sha512()
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        a.update(chunk)
        b.update(chunk)
        n += len(chunk)
    return n / (time.perf_counter() - t) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=2000, help="recordings, in all")
    parser.add_argument("--files", type=int, default=16, help="number of recordings")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="where packs are written (default: temp)")
    args = parser.parse_args()
    compile_package()
    size = args.total_mb * 1_000_000 // args.files

    parent, child = mp.Pipe()
    sim_proc = mp.Process(target=serve_simulator, args=(child, args.files, size), daemon=True)
    sim_proc.start()
    base_url, debt_id = parent.recv()
    api = ApiSettings(base_url=base_url, client_id="demo-client", client_secret="demo-secret")
    with (
        tempfile.TemporaryDirectory(dir=args.workdir) as tmp,
        LocalS3Server() as s3,
    ):
        work = Path(tmp)
        client = s3.client()
        store = ObjectStore(client, "packs")
        store.create_bucket()
        cfg = ArchiverConfig(
            bucket="packs", catalog=work / "catalog.db", media_hosts=("127.0.0.1",)
        )
        print(
            f"one debt, {args.files} recordings x {size / 1e6:.0f} MB = {args.total_mb} MB, "
            f"concurrency {args.concurrency}, {os.cpu_count()} cores"
        )
        t = time.perf_counter()
        with open_archiver(cfg, api, s3_client=client) as session:
            (res,) = session.archiver.run([debt_id]).debts
        assert res.status == "archived", res.to_json()
        print(f"archived in {time.perf_counter() - t:.0f} s ({res.media_bytes_stored:,} bytes)")

        names = [
            (k, None) for k in store.list_keys(keys.debt_prefix(debt_id)) if "/events/" not in k
        ]
        env = {
            **os.environ,
            **s3.env(),
            "ARCHIVER_BUCKET": "packs",
            "ARCHIVER_CATALOG": str(work / "catalog.db"),
            "ARCHIVER_ORGANIZATION": "Benchmark Collections Ltd",
        }
        # What `archiver pack` loads before its first GET (not `archiver version`, which
        # loads the dossier renderer too, a pack does not).
        start_code = "import archiver.cli.pack_cmd, archiver.pack, archiver.wiring"
        start_s = run_process([sys.executable, "-c", start_code], env).wall
        print(f"interpreter start + the pack's imports: {start_s:.2f} s")
        print(f"SHA-256 + SHA-512 on one core here: {hash_speed():.0f} MB/s")
        read_to_null(store, names[:2], args.concurrency)  # warm-up: connections, imports

        results: dict[str, list[tuple[float, float, int]]] = {
            "read": [],
            "hashed": [],
            "dir": [],
            "zip": [],
        }
        for r in range(args.rounds):
            for side in ("read", "hashed") if r % 2 == 0 else ("hashed", "read"):
                t = time.perf_counter()
                total = read_to_null(store, names, args.concurrency, digests=side == "hashed")
                results[side].append((total / (time.perf_counter() - t) / 1e6, 0.0, 0))
            for side in ("dir", "zip"):
                out = work / (f"pack-{r}.zip" if side == "zip" else f"pack-{r}")
                argv = [sys.executable, "-m", "archiver", "pack", debt_id, "-o", str(out)]
                argv += ["--concurrency", str(args.concurrency), "--json"]
                argv += ["--zip"] if side == "zip" else []
                run = run_process(argv, env)
                elapsed, peak_kb, stdout = run.wall, run.rss_kb, run.stdout
                packed = json.loads(stdout.splitlines()[-1])
                results[side].append((packed["bytes"] / elapsed / 1e6, elapsed, peak_kb))
                if out.is_dir():
                    shutil.rmtree(out)
                else:
                    out.unlink()
            read, d, z = results["read"][-1][0], results["dir"][-1], results["zip"][-1]
            hashed = results["hashed"][-1][0]
            print(
                f"round {r + 1}: S3 -> /dev/null {read:.0f} MB/s; the same with SHA-256 + "
                f"SHA-512 {hashed:.0f} MB/s ({hashed / read:.2f}); pack {d[0]:.0f} MB/s "
                f"({d[0] / read:.2f}) in {d[1]:.1f} s, peak RSS {d[2] / 1024:.0f} MB; "
                f"pack --zip {z[0]:.0f} MB/s ({z[0] / read:.2f}) in {z[1]:.1f} s, "
                f"peak RSS {z[2] / 1024:.0f} MB"
            )
        bound = [h[0] / b[0] for h, b in zip(results["hashed"], results["read"], strict=True)]
        print(
            f"S3 -> /dev/null with both digests / without: {statistics.median(bound):.2f} "
            f"median: the most any pack's ratio can be on these {os.cpu_count()} cores"
        )
        for side, label in (("dir", "pack"), ("zip", "pack --zip")):
            ratios = [s[0] / b[0] for s, b in zip(results[side], results["read"], strict=True)]
            no_start = [
                (s[0] * s[1] / (s[1] - start_s)) / b[0]
                for s, b in zip(results[side], results["read"], strict=True)
            ]
            to_bound = [s[0] / h[0] for s, h in zip(results[side], results["hashed"], strict=True)]
            print(
                f"{label:<11}: ratio to S3 -> /dev/null with both digests "
                f"{statistics.median(to_bound):.2f} median"
            )
            print(
                f"{label:<11}: ratio to S3 -> /dev/null {statistics.median(ratios):.2f} median "
                f"(goal >= 0.90; {statistics.median(no_start):.2f} without the interpreter "
                f"start), peak RSS {max(s[2] for s in results[side]) / 1024:.0f} MB "
                "(goal < 150 MB)"
            )
    parent.send("stop")
    sim_proc.join(timeout=10)


if __name__ == "__main__":
    main()
