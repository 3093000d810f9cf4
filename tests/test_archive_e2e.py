"""End-to-end: the archive pipeline over real HTTP to the simulator and a real SeaweedFS.

Everything here goes through sockets: the getbill simulator on 127.0.0.1 and ``weed mini``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from fixtures_archive import Env, all_versions, manifest_of

from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.cli._common import LIBRARY_LOGGERS
from archiver.common.canonical import sha256_hex
from archiver.config import ArchiverConfig
from archiver.devkit.simulator import routes as sim_routes
from archiver.wiring import open_archiver, rerender_stored

pytestmark = pytest.mark.integration

# --------------------------------------------------------------------------- the happy path


def test_full_archive_stores_every_followup_and_media_byte_exact(env: Env) -> None:
    debts = env.debts()
    run = env.run(debts)
    assert run.exit_status == "ok", run.summary()
    assert {d.status for d in run.debts} == {"archived"}
    for debt_id in debts:
        data, manifest = manifest_of(env.store, debt_id, 1)
        assert manifest["previous"] is None
        assert manifest["debt_id"] == debt_id
        ids = {f["id"] for f in manifest["followups"]}
        assert ids == set(env.sim.followup_ids(debt_id))
        assert manifest["debt"] and manifest["debt"]["key"].startswith(f"debts/{debt_id}/debt/")
        for f in manifest["followups"]:
            kinds = {m["kind"] for m in f["media"]}
            assert kinds == set(env.sim.media_kinds(f["id"]))
            for m in f["media"]:
                # the stored bytes are the simulator's bytes, and the key names their hash
                assert m["sha256"] == env.sim.media_sha256(f["id"], m["kind"])
                assert m["sha256"] in m["key"]
                assert env.store.sha256_of(m["key"], m["version_id"])[0] == m["sha256"]
                lock = env.store.get_lock(m["key"], m["version_id"])
                assert lock is not None and lock.mode == "GOVERNANCE"
                assert "?" not in m["source"]
            record = json.loads(env.store.read_bytes(f["record_key"]))
            assert record["id"] == f["id"]
            assert sha256_hex(env.store.read_bytes(f["record_key"])) == f["record_sha256"]
        # the dossier of the manifest is stored next to it
        assert env.store.head(f"debts/{debt_id}/dossiers/00000001.pdf") is not None
        result = verify_debt(env.store, debt_id, rerender=rerender_stored)
        assert result.ok, result.problems


def test_rerun_writes_nothing_and_reports_unchanged(env: Env) -> None:
    debts = env.debts()
    env.run(debts)
    before = Counter(v.key for v in all_versions(env.store))
    media_gets = len(env.sim.requests_to("/media/"))
    run = env.run(debts)
    assert {d.status for d in run.debts} == {"unchanged"}
    assert Counter(v.key for v in all_versions(env.store)) == before
    assert len(env.sim.requests_to("/media/")) == media_gets, "media downloaded again"


def test_new_followup_gives_sequence_2_chained_to_1(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    first_bytes, first = manifest_of(env.store, debt_id, 1)
    new = env.sim.add_followup(debt_id, type="call", status="deal_found")
    run = env.run([debt_id])
    (res,) = run.debts
    assert res.status == "archived" and res.sequence == 2
    assert res.media_stored == len(env.sim.media_kinds(new["id"]))
    assert res.media_reused == sum(len(f["media"]) for f in first["followups"])
    _, second = manifest_of(env.store, debt_id, 2)
    assert second["previous"] == {
        "key": f"debts/{debt_id}/manifests/00000001.json",
        "sha256": sha256_hex(first_bytes),
    }
    assert {f["id"] for f in second["followups"]} == {f["id"] for f in first["followups"]} | {
        new["id"]
    }
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok


# --------------------------------------------------------------------------- faults


class StillClock:
    """Simulator time that moves only when the test says (``advance``), whatever the load."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_expired_urls_are_refreshed(env: Env) -> None:
    debt_id = env.debts()[0]
    clock = StillClock(time.time())
    env.sim.clock = clock
    # The listing signs URLs valid 600 s (beyond the downloader's 30 s margin: it sees no
    # reason to refresh them early). The first download moves the simulator's time 1000 s
    # ahead, once: every listed URL has expired when fetched, so each medium needs
    # GET /followups/{id}; the refreshed URLs stay valid, since that time moves no more.
    env.sim.config.url_ttl_s = 600
    from archiver.media import download as download_mod

    original_download = download_mod.MediaDownloader.download
    moved = threading.Lock()

    def late_download(self: Any, ref: Any, refresh: Any) -> Any:
        if moved.acquire(blocking=False):  # the first download only, whichever worker
            clock.advance(1000)
        return original_download(self, ref, refresh)

    download_mod.MediaDownloader.download = late_download  # type: ignore[method-assign]
    try:
        run = env.run([debt_id])
    finally:
        download_mod.MediaDownloader.download = original_download  # type: ignore[method-assign]
    (res,) = run.debts
    assert res.status == "archived", res.problems
    media = sum(len(env.sim.media_kinds(f)) for f in env.sim.followup_ids(debt_id))
    assert res.media_stored == media
    refreshes = [
        r for r in env.sim.requests_to("/external-api/v1/followups/") if "/debt/" not in r.path
    ]
    assert len(refreshes) >= media
    assert len(refreshes) == media  # one each: a refreshed URL never expires again
    expired = [r for r in env.sim.requests_to("/media/") if r.status == 403]
    assert len(expired) == media  # each listed URL was refused once, as expired


def test_truncated_body_is_retried(env: Env) -> None:
    debt_id = env.debts()[0]
    env.sim.config.truncate_media_first = 1
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived", res.problems
    media_requests = env.sim.requests_to("/media/")
    media = sum(len(env.sim.media_kinds(f)) for f in env.sim.followup_ids(debt_id))
    assert len(media_requests) == 2 * media  # one truncated, one complete each
    assert verify_debt(env.store, debt_id).ok


def test_persistently_bad_media_gives_partial_with_problems(env: Env) -> None:
    debt_id = env.debts()[0]
    env.sim.config.html_media_first = 100  # every media answers an HTML page
    runner = CliRunner()
    result = runner.invoke(main, ["archive", debt_id, "--json"], env=env.cli_env())
    assert result.exit_code == 3, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    debt_line, summary = lines[0], lines[-1]
    assert debt_line["status"] == "partial"
    assert debt_line["problems"] and all(
        p["type"] == "MediaContentError" for p in debt_line["problems"]
    )
    assert summary["summary"]["status"] == "partial"
    # the manifest was still written and lists the problems
    _, manifest = manifest_of(env.store, debt_id, 1)
    assert len(manifest["problems"]) == len(debt_line["problems"])
    # once the media server behaves, a rerun stores them and writes manifest 2
    env.sim.config.html_media_first = 0
    result = runner.invoke(main, ["archive", debt_id, "--json"], env=env.cli_env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["sequence"] == 2


def test_disallowed_media_host_is_refused_clearly(env: Env) -> None:
    debt_id = env.debts()[0]
    env.config = ArchiverConfig(**{**env.config.__dict__, "media_hosts": ("*.getbill.io",)})
    (res,) = env.run([debt_id]).debts
    assert res.status == "partial"
    assert res.problems
    for p in res.problems:
        assert p["type"] == "MediaHostNotAllowedError"
        assert "127.0.0.1" in p["message"]
        assert "X-Amz-Signature" not in json.dumps(p)
    assert not list(env.store.list_keys(f"debts/{debt_id}/media/"))


@pytest.mark.parametrize("bad_id", ["../etc", "a/b", "x" * 129, "ab\x00c", ".."])
def test_unsafe_debt_id_is_refused_clearly(env: Env, bad_id: str) -> None:
    result = CliRunner().invoke(
        main, ["archive", bad_id, env.debts()[0], "--json"], env=env.cli_env()
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1, result.output  # a debt not archived at all is a failure
    bad = lines[0]
    assert bad["status"] == "failed"
    assert bad["error"]["type"] == "UnsafeIdError"
    assert lines[1]["status"] == "archived"
    keys = list(env.store.list_keys(""))
    assert all(k.startswith(f"debts/{lines[1]['debt_id']}/") for k in keys)


# --------------------------------------------------------------------------- crash and resume


def test_killed_mid_run_then_rerun_ends_complete_without_duplicates(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debt_id = env.debts()[0]
    for _ in range(10):
        held = env.sim.add_followup(debt_id, type="call", audio_size=150_000)
    # The simulator holds back one recording until the test releases it: the run stores every
    # other medium, then waits for that one and cannot write its manifest. The test kills it
    # there, at a known point, whatever the load of the machine.
    held_path = urlsplit(env.sim.signed_url(held["id"], "audio")).path
    release = threading.Event()
    serve_media = sim_routes._media

    def held_back(sim: Any, environ: Any, method: str, path: str) -> Any:
        if path == held_path and not release.is_set():
            release.wait(120)
        return serve_media(sim, environ, method, path)

    monkeypatch.setattr(sim_routes, "_media", held_back)
    media_count = sum(len(env.sim.media_kinds(f)) for f in env.sim.followup_ids(debt_id))
    cmd = [sys.executable, "-m", "archiver", "archive", debt_id, "--concurrency", "2", "--json"]
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env.cli_env()}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(env.store.list_keys(f"debts/{debt_id}/media/"))) == media_count - 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        release.set()
    stored_before = set(env.store.list_keys(f"debts/{debt_id}/media/"))
    assert stored_before, "the run was killed before it stored anything"
    assert len(stored_before) == media_count - 1, "the run was killed before the known point"
    assert not list(env.store.list_keys(f"debts/{debt_id}/manifests/")), "killed too late"

    media_before = Counter(r.path for r in env.sim.requests_to("/media/"))
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 1
    assert res.media_reused >= len(stored_before)
    # nothing already stored was downloaded again
    media_after = Counter(r.path for r in env.sim.requests_to("/media/"))
    _, manifest = manifest_of(env.store, debt_id, 1)
    for m in (m for f in manifest["followups"] for m in f["media"]):
        path = urlsplit(m["source"]).path
        if m["key"] in stored_before:
            assert media_after[path] == media_before[path], f"{path} downloaded again"
        else:
            assert media_after[path] > media_before[path]
    # no duplicates: one version per key, and the archive equals an uninterrupted one
    versions = Counter(v.key for v in all_versions(env.store, f"debts/{debt_id}/"))
    assert max(versions.values()) == 1
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
    media_keys = {m["key"] for f in manifest["followups"] for m in f["media"]}
    expected = {
        f"{env.sim.media_sha256(f, k)}"
        for f in env.sim.followup_ids(debt_id)
        for k in env.sim.media_kinds(f)
    }
    assert {k.rsplit("-", 1)[-1].split(".")[0] for k in media_keys} == expected


# --------------------------------------------------------------------------- verify catches


def test_verify_catches_a_tampered_object_and_a_broken_chain(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    env.sim.add_followup(debt_id, type="email", status="sent")
    env.run([debt_id])
    _, manifest = manifest_of(env.store, debt_id, 2)
    media = next(m for f in manifest["followups"] for m in f["media"])
    client = env.s3.client()
    bucket = env.store.bucket

    # rewrite a recording: remove its version with governance bypass, put other bytes
    client.delete_object(
        Bucket=bucket,
        Key=media["key"],
        VersionId=media["version_id"],
        BypassGovernanceRetention=True,
    )
    client.put_object(Bucket=bucket, Key=media["key"], Body=b"ID3" + b"\0" * 5000)
    # rewrite manifest 1 the same way: the chain from manifest 2 no longer matches
    m1_key = f"debts/{debt_id}/manifests/00000001.json"
    m1_version = env.store.head(m1_key).version_id  # type: ignore[union-attr]
    client.delete_object(
        Bucket=bucket, Key=m1_key, VersionId=m1_version, BypassGovernanceRetention=True
    )
    client.put_object(Bucket=bucket, Key=m1_key, Body=b'{"schema": "forged"}')

    result = CliRunner().invoke(
        main, ["verify", debt_id, "--json", "--no-dossier"], env=env.cli_env()
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout.splitlines()[0])
    types = {(p["type"], p.get("key")) for p in report["problems"]}
    assert any(t == "ChainBroken" for t, _ in types), types
    assert any(
        k == media["key"] and t in ("ChecksumMismatch", "ObjectMissing") for t, k in types
    ), types


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The CLI configures logging for the whole process: put it back as it was."""
    loggers = [logging.getLogger(name) for name in ("", "archiver", *LIBRARY_LOGGERS)]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


def test_no_secret_reaches_storage_catalog_or_logs(env: Env, logging_restored: None) -> None:
    debts = env.debts()
    result = CliRunner().invoke(
        main, ["--log-level", "DEBUG", "archive", *debts], env=env.cli_env()
    )
    assert result.exit_code == 0, result.output
    result2 = CliRunner().invoke(
        main,
        ["--log-level", "DEBUG", "archive", *debts, "--json"],
        env={**env.cli_env(), "GETBILL_CLIENT_ID": "", "GETBILL_TOKEN": "sim-static-token"},
    )
    assert result2.exit_code == 0, result2.output
    for run in (result, result2):  # the logs were on, the HTTP and S3 libraries' included
        for logger in ("botocore.endpoint", "httpcore.http11", "httpx"):
            assert f" {logger}" in run.stderr, f"no log line of {logger}"
    secrets = ["demo-secret", "sim-static-token", "X-Amz-Signature", "X-Amz-Credential"]
    secrets += list(env.sim._tokens)  # every access token the simulator issued
    assert len(secrets) > 4
    blobs = [result.output.encode(), result2.output.encode()]
    blobs += [result.stderr.encode(), result2.stderr.encode()]
    for v in all_versions(env.store):
        blobs.append(env.store.read_bytes(v.key, v.version_id))
    blobs.append(Path(env.config.catalog).read_bytes())
    con = sqlite3.connect(env.config.catalog)
    for (table,) in con.execute("select name from sqlite_master where type='table'"):
        blobs.append(json.dumps(con.execute(f"select * from [{table}]").fetchall()).encode())
    for blob in blobs:
        for secret in secrets:
            assert secret.encode() not in blob, f"{secret[:12]}... leaked"


# --------------------------------------------------------------------------- tampering, gaps


def test_a_deleted_latest_manifest_is_never_written_again(env: Env) -> None:
    debt_id, other = env.debts()[0], env.debts()[2]
    env.run([debt_id, other])
    key = f"debts/{debt_id}/manifests/00000001.json"
    env.s3.client().delete_object(Bucket=env.store.bucket, Key=key)  # a plain delete: a marker
    env.sim.add_followup(debt_id, type="call")
    run = env.run([debt_id, other])
    bad, good = run.debts
    assert bad.status == "failed" and bad.error is not None
    assert bad.error["type"] == "IntegrityError" and "delete marker" in bad.error["message"]
    assert good.status == "unchanged"
    assert [v for v in all_versions(env.store, key)] and not list(
        env.store.list_keys(f"debts/{debt_id}/manifests/")
    )
    problems = verify_debt(env.store, debt_id).problems
    assert any(p.kind == "ChainBroken" and "delete marker" in p.message for p in problems)


def test_a_corrupt_manifest_fails_its_debt_only(env: Env) -> None:
    debt_id, other = env.debts()[0], env.debts()[2]
    env.run([other])
    key = f"debts/{debt_id}/manifests/00000001.json"
    env.s3.client().put_object(Bucket=env.store.bucket, Key=key, Body=b'{"followups": "x"}')
    bad, good = env.run([debt_id, other]).debts
    assert bad.status == "failed" and bad.error["type"] == "IntegrityError"  # type: ignore[index]
    assert good.status == "unchanged"
    r = CliRunner().invoke(main, ["verify", debt_id, other, "--json"], env=env.cli_env())
    assert r.exit_code == 1, r.output
    first, second = (json.loads(line) for line in r.stdout.splitlines()[:2])
    assert "ManifestInvalid" in {p["type"] for p in first["problems"]}
    assert second["status"] == "ok"


def test_followup_gone_upstream_stays_in_the_snapshot(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    gone = env.sim.followup_ids(debt_id)[0]
    env.sim.remove_followup(gone)  # the platform no longer lists it
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 2
    _, second = manifest_of(env.store, debt_id, 2)
    entry = next(f for f in second["followups"] if f["id"] == gone)
    assert entry["upstream_missing_since"] == second["created_at"]
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged"  # noticed once, not on every run


@pytest.mark.integration
def test_a_debts_dossier_renders_while_the_next_debt_downloads(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first debt's dossier waits, rendering, until the second debt has stored a medium:
    run one after the other, that never happens (the wait ends at its timeout, False)."""
    import archiver.wiring as wiring
    from archiver.archive.results import ArchiveEvent, ArchiveEventKind

    first, second = env.debts()[:2]
    env.sim.add_followup(second, type="call", audio_size=30_000, audio_format="wav")
    second_downloading = threading.Event()
    overlapped: dict[str, bool] = {}
    real = wiring.render_for_archive

    def render(request: Any) -> Any:
        if request.manifest["debt_id"] == first:
            overlapped[first] = second_downloading.wait(timeout=60)
        return real(request)

    def on_event(event: ArchiveEvent) -> None:
        if event.kind is ArchiveEventKind.MEDIA_STORED and event.debt_id == second:
            second_downloading.set()

    monkeypatch.setattr(wiring, "render_for_archive", render)
    run = env.run([first, second], on_event=on_event)
    assert overlapped == {first: True}
    assert [r.debt_id for r in run.debts] == [first, second]  # reported in order
    for result in run.debts:
        assert result.status == "archived" and result.dossier_key, result.to_json()
        assert verify_debt(env.store, result.debt_id, rerender=rerender_stored).ok


def test_the_dossier_stack_loads_when_asked_to_prepare_once_not_when_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import archiver.wiring as wiring

    loads: list[str] = []
    loaded = threading.Event()

    def load() -> None:
        loads.append(threading.current_thread().name)
        loaded.set()

    monkeypatch.setattr(wiring, "_load_dossier_stack", load)
    stack = wiring.DossierStack()
    assert not loaded.wait(timeout=0.5)  # built: nothing loads yet
    stack.prepare()
    assert loaded.wait(timeout=30)
    stack.prepare()  # again: no second load (a thread starts once)
    stack._loaded.join(timeout=30)
    assert loads == ["dossier-stack"]


@pytest.mark.integration
def test_the_dossier_stack_starts_loading_after_planning_before_the_media_are_stored(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not as the run starts, where the import would hold up the listing and planning, and
    not at the first render: while the debt's media download."""
    import archiver.wiring as wiring
    from archiver.archive.plan import Planner
    from archiver.archive.storing import Storer

    debt_id = env.debts()[0]
    env.sim.add_followup(debt_id, type="call", audio_size=30_000, audio_format="wav")
    order: list[str] = []
    loading = threading.Event()
    real_plan, real_store, real_load = Planner.plan, Storer.store_plan, wiring._load_dossier_stack

    def plan(self: Planner, debt: str) -> Any:
        planned = real_plan(self, debt)
        order.append("planned")
        return planned

    def store_plan(self: Storer, plan: Any, **kw: Any) -> Any:
        # The load was asked for before the downloads: it starts while they run.
        order.append(f"storing, stack loading: {loading.wait(timeout=60)}")
        return real_store(self, plan, **kw)

    def load() -> None:
        order.append("stack loading")
        loading.set()
        real_load()

    monkeypatch.setattr(Planner, "plan", plan)
    monkeypatch.setattr(Storer, "store_plan", store_plan)
    monkeypatch.setattr(wiring, "_load_dossier_stack", load)
    (result,) = env.run([debt_id]).debts
    assert result.status == "archived" and result.dossier_key
    assert order == ["planned", "stack loading", "storing, stack loading: True"]


@pytest.mark.integration
def test_a_syncs_media_prefetch_starts_the_dossier_stack_loading_too(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync downloads a debt's media before its manifest (prefetch_media): the stack loads
    during those downloads, not at the first render after them."""
    import archiver.wiring as wiring
    from archiver.archive.storing import Storer

    debt_id = env.debts()[0]
    seen: list[bool] = []
    loading = threading.Event()
    real_store = Storer.store_plan

    def store_plan(self: Storer, plan: Any, **kw: Any) -> Any:
        seen.append(loading.wait(timeout=60))
        return real_store(self, plan, **kw)

    monkeypatch.setattr(Storer, "store_plan", store_plan)
    monkeypatch.setattr(wiring, "_load_dossier_stack", loading.set)
    with open_archiver(env.config, env.api, s3_client=env.s3.client()) as session:
        stored, _ = session.archiver.prefetch_media(debt_id)
    assert stored > 0 and seen == [True]


@pytest.mark.integration
def test_a_run_stopped_while_it_reports_a_debt_lists_each_debt_once(env: Env) -> None:
    """The caller's on_result stops the run (Ctrl-C while printing a line): the run's end
    lists the debts done, each once, the one being reported included."""
    from archiver.wiring import open_archiver

    first, second = env.debts()[:2]
    ended: list[Any] = []
    told: list[str] = []

    def on_result(result: Any) -> None:
        told.append(result.debt_id)
        if result.debt_id == second:
            raise KeyboardInterrupt

    with open_archiver(env.config, env.api, s3_client=env.s3.client()) as session:
        archiver = session.archiver
        real_end = archiver.end

        def end(run: Any, status: str) -> None:
            ended.append((run, status))
            real_end(run, status)

        archiver.end = end  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            archiver.run([first, second], on_result=on_result)
    ((run, status),) = ended
    assert status == "interrupted"
    assert [r.debt_id for r in run.debts] == [first, second]
    assert told == [first, second]
