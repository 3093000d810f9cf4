"""``archiver listen`` killed with SIGKILL between its 200 and the archive, then started
again: the delivery stored before the crash is archived (a real process, a real kill)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fixtures_archive import Env
from fixtures_listen import SECRET, wait_for

from archiver.listen.app import WEBHOOK_PATH
from archiver.manifest.reader import latest_manifest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(env: Env, port: int, queue: Path, log: Path) -> subprocess.Popen[bytes]:
    variables = {
        **os.environ,
        **env.cli_env(),
        "GETBILL_WEBHOOK_SECRET": SECRET,
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver",
            "-v",
            "listen",
            "--port",
            str(port),
            "--queue",
            str(queue),
        ],
        env=variables,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=60)
    return process


def state_of(queue: Path, sha: str) -> str:
    with sqlite3.connect(queue) as db:
        (state,) = db.execute("SELECT state FROM deliveries WHERE sha256 = ?", (sha,)).fetchone()
    return str(state)


def test_a_delivery_acknowledged_before_a_kill_9_is_archived_after_the_restart(
    env: Env, tmp_path: Path
) -> None:
    port = free_port()
    queue = tmp_path / "queue.db"
    log = tmp_path / "listen.log"
    debt = env.debts()[1]
    assert latest_manifest(env.store, debt) is None
    process = start(env, port, queue, log)
    try:
        env.sim.config.delay_s = 5.0  # the refetch of the followup takes long: time to kill
        env.sim.config.webhook_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        env.sim.config.webhook_secret = SECRET
        record = env.sim.add_followup(debt)
        assert env.sim.webhooks.flush()
        (sent,) = env.sim.webhooks.sent
        assert sent.status == 200  # stored before this answer
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert state_of(queue, sent.body_sha256) in ("stored", "resolved")
    assert latest_manifest(env.store, debt) is None  # not archived before the kill

    env.sim.config.delay_s = 0.0
    process = start(env, port, queue, log)
    try:
        wait_for(lambda: state_of(queue, sent.body_sha256) == "archived", timeout=60)
        stored = latest_manifest(env.store, debt)
        assert stored is not None
        assert record["id"] in {f["id"] for f in stored[2]["followups"]}
        process.send_signal(signal.SIGTERM)  # a graceful stop
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert SECRET not in log.read_text()
