"""Start-up time of the command line: ``archiver --version`` and ``archiver --help`` as whole
processes, beside the bare interpreter (``python -c pass``) on the same machine.

Goal: under 0.15 s each here. Prints the median and best of ``--rounds`` runs of each, the
commands' cost above the interpreter, and their peak RSS (``os.wait4``).

    .venv/bin/python benchmarks/cli_startup.py --rounds 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from measure import compile_package


def timed(argv: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS MiB) of one whole process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed")
    return elapsed, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    compile_package()
    exe = shutil.which("archiver", path=str(Path(sys.executable).parent)) or "archiver"
    sides = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "archiver --version": [exe, "--version"],
        "archiver --help": [exe, "--help"],
        "archiver sync --help": [exe, "sync", "--help"],
    }
    results: dict[str, list[float]] = {name: [] for name in sides}
    rss: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, argv in sides.items():  # interleaved: a busy moment hits every side
            seconds, mib = timed(argv)
            results[name].append(seconds)
            rss[name] = max(rss.get(name, 0), mib)
    floor = statistics.median(results["python -c pass"])
    for name, values in results.items():
        med = statistics.median(values)
        extra = "" if name.startswith("python") else f", {med - floor:.3f} s above the interpreter"
        goal = (
            ""
            if name.startswith("python")
            else f" (goal < 0.150 s: {'met' if med < 0.15 else 'not met'})"
        )
        print(
            f"{name:<22} median {med:.3f} s, best {min(values):.3f} s, peak RSS {rss[name]} MiB"
            f"{extra}{goal}"
        )


if __name__ == "__main__":
    main()
