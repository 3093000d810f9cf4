"""``archiver sync`` at company scale: requests, objects, time and memory, measured.

A simulated company of ``--debts`` debts with ``--followups`` followups each (all in the
window), about ``--media-share`` of them with a small recording or letter, served by the
getbill simulator in its own process (1,000 requests/hour per client, enforced), into
SeaweedFS (``weed mini``). Every archiver run is a whole ``archiver`` process, timed and its
peak RSS read with ``os.wait4``.

1. First sync: wall time, peak RSS, requests by kind against the target
   ``ceil(followups / 100) + 5`` (+ refreshes), objects stored; beside it, what per-debt
   ``archive`` of the same debts costs: measured on ``--sample`` debts (the simulator counts
   the requests) and scaled, and as the run record computes it.
2. Rerun of the same window with nothing new: requests, and new objects (only its run
   record); then the scheduled next run (from the last window's end minus the look-back).
3. Four shards at once (four processes, a fresh bucket): everything archived once (one
   record object per followup), every chain linear, ``verify --all`` clean, no key with two
   versions. A debt whose followups fall in several shards' days gets a manifest from each
   (merged, chained): counted.
4. A budget of 30 requests (a fresh bucket): exit 3, a run record with what is pending, then
   the next runs finish the rest.
5. What dossiers cost at this scale: per-debt ``archive`` of ``--sample`` debts with and
   without the dossier, the difference scaled.

    .venv/bin/python benchmarks/sync_scale.py                  # 2,000 x 5 (about 12 minutes)
    .venv/bin/python benchmarks/sync_scale.py --debts 200      # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from measure import compile_package

from archiver.devkit.s3server import LocalS3Server
from archiver.store.objects import ObjectStore

SINCE = "2025-01-01"  # before every followup of the simulated world


def serve_simulator(conn: Any, debts: int, followups: int, media_share: float, order: str) -> None:
    """Child process: the simulator; answers "requests" with the API requests served."""
    from archiver.devkit.simulator import Simulator, SimulatorConfig, SimulatorServer

    # Debt 1 of a seeded world has no followup: one more debt keeps ``debts`` with followups.
    config = SimulatorConfig(
        seed=7,
        debts=debts + 1,
        other_company_debts=0,
        followups_per_debt=followups,
        big_debt_followups=followups,
        audio_size_range=(10_000, 50_000),
        large_audio_share=0.0,
        media_share=media_share,
        followups_order=order,
    )
    sim = Simulator(config)
    with SimulatorServer(sim) as server:
        company = [d for d in sim.debt_ids("A") if sim.followup_ids(d)]
        media = sum(len(sim.media_kinds(f)) for d in company for f in sim.followup_ids(d))
        conn.send((server.base_url, company, media))
        while True:
            ask = conn.recv()
            if ask == "requests":
                conn.send(len(sim.requests_to("/external-api/")) + len(sim.requests_to("/token")))
            else:
                return


def run(argv: list[str], env: dict[str, str]) -> tuple[int, float, int, str]:
    """Run ``archiver ...`` as its own process: (exit code, seconds, peak RSS MiB, stdout)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", "--no-progress", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        out.seek(0)
        text = out.read().decode()
    return os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss // 1024, text


def summary_of(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])["summary"]


def versions(client: Any, bucket: str) -> list[tuple[str, str]]:
    store = ObjectStore(client, bucket)
    return [(v.key, v.version_id or "") for v in store.list_versions("") if not v.is_delete_marker]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debts", type=int, default=2000)
    parser.add_argument("--followups", type=int, default=5, help="per debt (default 5)")
    parser.add_argument("--media-share", type=float, default=0.1)
    parser.add_argument(
        "--order",
        choices=("date", "debt"),
        default="date",
        help="order of GET /followups (date: a debt's followups pages apart)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample", type=int, default=20, help="debts for per-debt figures")
    args = parser.parse_args()
    compile_package()

    parent, child = mp.Pipe()
    proc = mp.Process(
        target=serve_simulator,
        args=(child, args.debts, args.followups, args.media_share, args.order),
        daemon=True,
    )
    proc.start()
    base_url, company, media = parent.recv()
    followups = len(company) * args.followups
    target = math.ceil(followups / 100) + 5
    print(
        f"world: {len(company)} debts x {args.followups} followups = {followups} followups, "
        f"{media} media; {os.cpu_count()} cores; target <= {target} requests (+ refreshes)"
    )
    with tempfile.TemporaryDirectory() as tmp, LocalS3Server() as s3:
        client = s3.client()

        def env_for(bucket: str, catalog: str | None = None) -> dict[str, str]:
            ObjectStore(client, bucket).create_bucket() if not _exists(client, bucket) else None
            return {
                **os.environ,
                **s3.env(),
                "ARCHIVER_BUCKET": bucket,
                "ARCHIVER_CATALOG": str(Path(tmp) / f"{catalog or bucket}.db"),
                "ARCHIVER_MEDIA_HOSTS": "127.0.0.1",
                "GETBILL_API_URL": base_url,
                "GETBILL_CLIENT_ID": "demo-client",
                "GETBILL_CLIENT_SECRET": "demo-secret",
            }

        sync = ["sync", "--json", "--concurrency", str(args.concurrency)]

        # 1. the first sync
        env = env_for("company")
        code, secs, rss, out = run([*sync, "--since", SINCE], env)
        s = summary_of(out)
        req = s["requests"]
        listing = req["by_kind"].get("followups_listing", 0) + req["by_kind"].get("token", 0)
        debt_reads = req["by_kind"].get("debt", 0) + req["by_kind"].get("debts_listing", 0)
        refreshes = req["by_kind"].get("refresh", 0)
        stored = len(versions(client, "company"))
        print(
            f"1. first sync: exit {code}, {secs:.1f} s, peak RSS {rss} MiB; "
            f"{s['debts']} debts {s['by_status']}, {s['media_stored']} media "
            f"({s['media_bytes_stored'] / 1e6:.1f} MB), {stored} objects stored"
        )
        print(
            f"   requests {req['total']} = {req['by_kind']}: token + window listing {listing} "
            f"(target <= {target}: {'met' if listing <= target else 'MISSED'}), "
            f"refreshes {refreshes}, debt records {debt_reads} (GET /debts pages, "
            f"{math.ceil(len(company) / 100)} for {len(company)} debts)"
        )
        # per-debt archive of a sample, counted by the simulator, scaled to the company
        sample = company[: args.sample]
        parent.send("requests")
        before = parent.recv()
        code_a, secs_a, _, _ = run(
            ["archive", *sample, "--json", "--no-dossier"], env_for("per-debt")
        )
        parent.send("requests")
        per_debt = (parent.recv() - before - 1) / len(sample)  # less its one token
        print(
            f"   per-debt `archive` of the same debts: {per_debt:.2f} requests a debt measured on "
            f"{len(sample)} (exit {code_a}, {secs_a:.1f} s) -> about "
            f"{1 + per_debt * len(company):.0f} for the company; the run record says "
            f"{s['per_debt_cost']}; sync spent {req['total']} "
            f"({req['total'] / max(1, s['per_debt_cost']):.1%})"
        )

        # 1b. the same first sync with a token without debts:read (no debt record to read)
        fenv = {
            **env_for("followups-only"),
            "GETBILL_CLIENT_ID": "followups-only-client",
            "GETBILL_CLIENT_SECRET": "followups-only-secret",
            "GETBILL_SCOPE": "followups:read",
        }
        code_f, secs_f, rss_f, out_f = run([*sync, "--since", SINCE], fenv)
        f = summary_of(out_f)["requests"]
        print(
            f"1b. first sync, token without debts:read: exit {code_f}, {secs_f:.1f} s, peak RSS "
            f"{rss_f} MiB; requests {f['total']} = {f['by_kind']} (target <= {target}: "
            f"{'met' if f['total'] - f['by_kind'].get('refresh', 0) <= target else 'MISSED'})"
        )

        # 2. rerun, nothing new
        have = set(versions(client, "company"))
        code, secs, rss, out = run([*sync, "--since", SINCE], env)
        s2 = summary_of(out)
        new = set(versions(client, "company")) - have
        print(
            f"2. rerun of the same window: exit {code}, {secs:.1f} s, peak RSS {rss} MiB; "
            f"requests {s2['requests']['total']} = {s2['requests']['by_kind']} (target <= "
            f"{target}); new objects {len(new)}: {sorted(k for k, _ in new)}"
        )
        code, secs, rss, out = run(sync, env)
        s3_ = summary_of(out)
        print(
            f"   next scheduled run (window {s3_['window']['from']}..{s3_['window']['to']}): "
            f"exit {code}, {secs:.1f} s, requests {s3_['requests']['total']}"
        )

        # 3. four shards at once
        shard_env = [env_for("shards", f"shard-{i}") for i in range(4)]
        t = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "archiver",
                    "--no-progress",
                    *sync,
                    "--since",
                    SINCE,
                    "--shard",
                    f"{i}/4",
                ],
                env=shard_env[i],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            for i in range(4)
        ]
        outs = [p.communicate()[0].decode() for p in procs]
        secs = time.perf_counter() - t
        codes = [p.returncode for p in procs]
        shard_req = sum(summary_of(o)["requests"]["total"] for o in outs)
        keys = Counter(k for k, _ in versions(client, "shards"))
        doubled = [k for k, n in keys.items() if n > 1]
        manifests = Counter(k.split("/")[1] for k in keys if "/manifests/" in k)
        records = sum(1 for k in keys if "/records/" in k)
        several = sum(1 for n in manifests.values() if n > 1)
        code_v, secs_v, _, out_v = run(["verify", "--all", "--no-dossier", "--json"], shard_env[0])
        v = summary_of(out_v)
        print(
            f"3. four shards at once: exits {codes}, {secs:.1f} s, {shard_req} requests in all; "
            f"{len(manifests)} debts with a manifest ({several} with more than one: their "
            f"followups fell in several shards' days), {records} record objects for "
            f"{followups} followups, keys with two versions {len(doubled)}; verify --all exit "
            f"{code_v} "
            f"({v['debts']} debts, {v['problems']} problems, {secs_v:.1f} s)"
        )

        # 4. a budget of 30 requests, then the next runs
        benv = env_for("budget")
        code, secs, _, out = run([*sync, "--since", SINCE, "--max-requests", "30"], benv)
        b = summary_of(out)
        print(
            f"4. budget 30: exit {code}, {secs:.1f} s, {b['requests']['total']} requests, "
            f"exhausted {b['requests']['exhausted']}, pending: listing page "
            f"{b['pending']['next_page']}, {len(b['pending']['debts'])} debts; "
            f"run record {b['run_record']}"
        )
        rounds = 0
        while True:
            rounds += 1
            code, secs, _, out = run(sync, benv)
            nxt = summary_of(out)
            print(
                f"   next run {rounds}: exit {code}, {secs:.1f} s, "
                f"{nxt['requests']['total']} requests, complete {nxt['complete']}"
            )
            if nxt["complete"] or rounds >= 5:
                break
        have_all = len(
            {k.split("/")[1] for k, _ in versions(client, "budget") if "/manifests/" in k}
        )
        print(f"   debts with a manifest after the budget runs: {have_all} of {len(company)}")

        # 5. dossiers at this scale
        code_d, secs_d, _, _ = run(["archive", *sample, "--json"], env_for("per-debt-dossier"))
        per = max(0.0, secs_d - secs_a) / len(sample)
        print(
            f"5. dossiers: per-debt `archive` of {len(sample)} debts took {secs_d:.1f} s with "
            f"the dossier, {secs_a:.1f} s without: {per:.2f} s a dossier -> about "
            f"{per * len(company) / 60:.1f} min for {len(company)} debts; sync leaves them out "
            "by default (--dossiers renders them; `archiver dossier DEBT` on demand)"
        )
    parent.send("stop")
    proc.join(timeout=10)


def _exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any answer but success: make it
        return False
    return True


if __name__ == "__main__":
    main()
