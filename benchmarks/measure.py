"""Measuring whole processes for the benchmarks: wall time, CPU seconds and peak RSS of a
command, and the CPU time of another process or of the whole machine (Linux /proc).

A command runs under a small launcher process that reports the command's own usage
(``os.wait4``): a child forked straight from a benchmark (a large process) would count the
benchmark's pages in its peak RSS.
"""

from __future__ import annotations

import compileall
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Run", "compile_package", "machine_cpu", "process_cpu", "run_process"]

PACKAGE = Path(__file__).resolve().parent.parent / "archiver"


def compile_package(package: Path = PACKAGE) -> None:
    """Byte-compile the archiver package (this checkout's by default), as an installer or a
    first run does. Where ``PYTHONDONTWRITEBYTECODE`` is set (some CI and sandbox images set
    it) nothing else writes the cache, and every measured process would compile each module
    again; a checkout compared with another would pay that alone and look slower than it is."""
    compileall.compile_dir(str(package), quiet=1)


# Runs argv[1:], exits with its code, and prints the child's peak RSS (KiB) and CPU seconds
# as JSON last on stderr.
LAUNCHER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, ru = os.wait4(p.pid, 0)\n"
    "usage = {'rss_kb': ru.ru_maxrss, 'cpu': ru.ru_utime + ru.ru_stime}\n"
    "print(json.dumps(usage), file=sys.stderr)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


@dataclass
class Run:
    wall: float
    cpu: float
    rss_kb: int
    stdout: str


def run_process(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    """Run ``argv`` under the launcher: wall time, CPU seconds and peak RSS of the process.
    A non-zero exit stops the benchmark with the end of its stderr."""
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {out.returncode}:\n{out.stderr[-3000:]}")
    usage = json.loads(out.stderr.strip().splitlines()[-1])
    return Run(wall, usage["cpu"], usage["rss_kb"], out.stdout)


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc; NaN where it
    cannot be read, printed as such)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds used so far by the whole machine, every process (Linux /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return math.nan
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    busy = sum(int(v) for i, v in enumerate(first[1:9]) if i not in (3, 4))
    return busy / os.sysconf("SC_CLK_TCK")
