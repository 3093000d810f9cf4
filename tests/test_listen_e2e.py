"""``archiver listen`` end to end over real HTTP: the simulator's signed webhooks -> the
listener -> SeaweedFS. A new call is archived, manifest and all, after its webhook; duplicates
and replays store nothing new; the sync that follows finds nothing left to do; refusals store
nothing; other events archive the debt they name."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fixtures_archive import Env
from fixtures_listen import SECRET, Live, event_body, listen_settings, wait_for

from archiver.listen.deliveries import WEBHOOKS_PREFIX, delivery_key, read_delivery
from archiver.listen.server import ListenServer
from archiver.listen.settings import MAX_BODY_BYTES
from archiver.listen.signature import SIGNATURE_HEADER, sign
from archiver.manifest.reader import latest_manifest
from archiver.sync.engine import SyncResult, SyncSettings
from archiver.wiring import open_listener, open_sync

pytestmark = pytest.mark.integration


def manifests(env: Env, debt_id: str) -> list[str]:
    return sorted(env.store.list_keys(f"debts/{debt_id}/manifests/"))


def deliveries(env: Env) -> list[str]:
    return sorted(env.store.list_keys(WEBHOOKS_PREFIX))


def entry_of(env: Env, debt_id: str, followup_id: str) -> dict | None:
    stored = latest_manifest(env.store, debt_id)
    if stored is None:
        return None
    return next((f for f in stored[2]["followups"] if f["id"] == followup_id), None)


def sync_statuses(env: Env) -> dict[str, str]:
    since = datetime.now(UTC).date() - timedelta(days=1)
    with open_sync(env.config, env.api, SyncSettings(since=since), s3_client=env.s3.client()) as s:
        result = s.syncer.run()
    return {d.debt_id: d.status for d in result.debts}


def test_a_new_call_is_archived_with_its_recording_and_the_next_sync_finds_it_done(
    live: Live,
) -> None:
    env = live.env
    debt = env.debts()[1]
    record = env.sim.add_followup(debt)  # a call that took place now, with a recording
    assert env.sim.webhooks.flush()
    (sent,) = env.sim.webhooks.sent
    assert (sent.event_type, sent.status, sent.good_signature) == ("followup.created", 200, True)

    wait_for(lambda: live.archived(sent.body_sha256))
    entry = entry_of(env, debt, record["id"])
    assert entry is not None and [m["kind"] for m in entry["media"]] == ["audio"]
    assert env.store.head(entry["media"][0]["key"]) is not None
    row = live.queue.get(sent.body_sha256)
    assert row is not None and row.debt_id == debt
    assert row.manifest_key == manifests(env, debt)[-1]
    # The webhook is a hint: the followup was fetched again from the API.
    refreshed = env.sim.requests_to(f"/external-api/v1/followups/{record['id']}")
    assert [r.status for r in refreshed] == [200]

    # The delivery is evidence: the exact body and its signature, locked.
    body, envelope = read_delivery(env.store, sent.body_sha256)
    assert json.loads(body)["data"]["id"] == record["id"]
    assert envelope["headers"][SIGNATURE_HEADER.lower()] == sign(body, SECRET)
    assert envelope["signature"]["secret"] == "current" and envelope["json"] is True
    lock = env.store.get_lock(delivery_key(sent.body_sha256))
    assert lock is not None and lock.retain_until > datetime.now(UTC)

    # The hourly sync lists the new followup and finds its debt archived already.
    before = manifests(env, debt)
    assert sync_statuses(env)[debt] == "unchanged"
    assert manifests(env, debt) == before


def test_a_status_change_is_archived_as_a_new_manifest(live: Live) -> None:
    env = live.env
    debt = env.debts()[0]
    record = env.sim.add_followup(debt, status="in_progress", media=False)
    env.sim.set_followup_status(record["id"], "deal_found")
    assert env.sim.webhooks.flush()
    kinds = [s.event_type for s in env.sim.webhooks.sent]
    assert kinds == ["followup.created", "followup.completed"]
    wait_for(lambda: all(live.archived(s.body_sha256) for s in env.sim.webhooks.sent))
    entry = entry_of(env, debt, record["id"])
    assert entry is not None and entry["status"] == "deal_found"


def test_duplicates_and_replays_store_nothing_new(live: Live, env: Env, tmp_path: Path) -> None:
    debts = env.debts()
    env.sim.config.webhook_duplicates = 50
    record = env.sim.add_followup(debts[0])
    assert env.sim.webhooks.flush()
    env.sim.config.webhook_duplicates = 0
    sent = env.sim.webhooks.sent
    assert len(sent) == 51 and {s.status for s in sent} == {200}
    assert len({s.body_sha256 for s in sent}) == 1
    first = sent[0].body_sha256
    wait_for(lambda: live.archived(first))
    for debt in debts[1:]:
        env.sim.add_followup(debt, media=False)
    assert env.sim.webhooks.flush()
    wait_for(lambda: all(live.archived(s.body_sha256) for s in env.sim.webhooks.sent))
    objects = deliveries(env)
    chains = {d: manifests(env, d) for d in debts}
    assert len(objects) == len(debts)  # one object per distinct body
    assert all(len(keys) == 1 for keys in chains.values()), chains

    # 50 replays of the old bodies, byte for byte with their signatures.
    bodies = [read_delivery(env.store, key[len(WEBHOOKS_PREFIX) : -5])[0] for key in objects]
    answers = [live.post(bodies[i % len(bodies)]).json()["status"] for i in range(50)]
    assert set(answers) == {"duplicate"}
    # The same replays to a listener that lost its queue file: stored before, so nothing new;
    # the debts are archived again and found unchanged.
    with (
        open_listener(
            env.config,
            env.api,
            listen_settings(),
            queue=tmp_path / "fresh-queue.db",
            s3_client=env.s3.client(),
        ) as other,
        ListenServer(other, "127.0.0.1", 0) as server,
    ):
        url = server.url + "/webhooks/getbill"
        for body in bodies:
            answer = httpx.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, SECRET)},
            )
            assert answer.status_code == 200 and answer.json()["status"] == "stored"
        wait_for(lambda: other.queue.counts()["archived"] == len(bodies))
    assert deliveries(env) == objects
    assert {d: manifests(env, d) for d in debts} == chains
    assert entry_of(env, debts[0], record["id"]) is not None


def test_refused_deliveries_store_nothing_and_log_no_body(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    env = live.env
    body = event_body("followup.created", {"id": env.sim.followup_ids(env.debts()[0])[0]})
    caplog.set_level(logging.INFO)
    assert live.post(body, secret="another-secret-of-some-length").status_code == 401
    assert live.post(body, secret=None).status_code == 401
    assert live.post(body, signature="zz" * 32).status_code == 401
    assert live.post(body, content_type="text/plain").status_code == 415
    assert live.post(body, content_type="application/x-www-form-urlencoded").status_code == 415
    big = event_body("followup.created", {"id": "x", "pad": "x" * MAX_BODY_BYTES})
    assert live.post(big).status_code == 413

    def chunks():
        yield big[:1000]
        yield big[1000:]

    streamed = httpx.post(
        live.url,
        content=chunks(),
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(big, SECRET)},
    )
    assert streamed.status_code == 413
    assert deliveries(env) == [] and sum(live.queue.counts().values()) == 0
    text = caplog.text
    assert "refused a webhook" in text
    assert body.decode() not in text and SECRET not in text and sign(body, SECRET) not in text
    # The listener keeps serving.
    assert live.post(body).status_code == 200


def test_a_signed_malformed_body_is_stored_answered_202_and_reported(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for body in (b'{"type": "followup.created", "data": ', b"[1, 2]", b'{"data": {}}'):
        answer = live.post(body)
        assert answer.status_code == 202 and answer.json()["status"] == "malformed"
        sha = answer.json()["sha256"]
        stored, envelope = read_delivery(live.env.store, sha)
        assert stored == body
        row = live.queue.get(sha)
        assert row is not None and row.state == "malformed"
    assert envelope["json"] is True
    assert "signed but malformed" in caplog.text


def test_other_events_archive_the_debt_they_name(live: Live) -> None:
    env = live.env
    paid, updated, _ = env.debts()[:3]
    answers = [
        live.post(event_body("payment.received", {"id": "pay-1", "debt_id": paid})),
        live.post(event_body("debt.status_changed", {"id": updated, "status": "paid"})),
        live.post(event_body("company.updated", {"id": "c-1"})),
        live.post(event_body("followup.updated", {"id": "no-such-followup"})),
    ]
    assert [a.status_code for a in answers] == [200] * 4
    shas = [a.json()["sha256"] for a in answers]
    wait_for(lambda: live.archived(shas[0]) and live.archived(shas[1]))
    assert manifests(env, paid) and manifests(env, updated)
    ignored = live.queue.get(shas[2])
    assert ignored is not None and ignored.state == "ignored"
    missing = wait_for(lambda: (r := live.queue.get(shas[3])) and r.state == "failed" and r)
    assert "no-such-followup" in (missing.last_error or "")
    assert len(deliveries(env)) == 4


def test_healthz_and_metrics(live: Live) -> None:
    base = live.server.url
    health = httpx.get(base + "/healthz")
    assert health.status_code == 200 and health.json()["worker"] == "running"
    live.post(event_body("company.updated", {"id": "c-1"}))
    live.post(b"{}", secret="wrong-secret-wrong-secret")
    # The intake marks the company event ignored as it stores it; the worker's gauge goes to
    # 1 once its thread has opened its session, which may come later on a busy machine
    # ("running" above only says its thread is alive): wait for both (bounded).
    deadline = time.monotonic() + 20
    text = httpx.get(base + "/metrics").text
    while time.monotonic() < deadline and not (
        'state="ignored"} 1.0' in text and "archiver_listen_worker_up 1.0" in text
    ):
        time.sleep(0.05)
        text = httpx.get(base + "/metrics").text
    assert 'archiver_listen_deliveries_total{outcome="stored"} 1.0' in text
    assert 'archiver_listen_deliveries_total{outcome="unauthorized"} 1.0' in text
    assert 'archiver_listen_queue_deliveries{state="ignored"} 1.0' in text
    assert "archiver_listen_worker_up 1.0" in text
    assert httpx.get(live.url).status_code == 405


def test_a_client_dribbling_its_request_is_cut_off_while_others_are_served(live: Live) -> None:
    address = ("127.0.0.1", live.server.port)
    head = b"POST /webhooks/getbill HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    slow = socket.create_connection(address)
    slow.settimeout(30)
    stop = threading.Event()

    def dribble() -> None:
        with contextlib.suppress(OSError):
            for byte in head * 50:
                if stop.is_set():
                    return
                slow.send(bytes([byte]))
                time.sleep(0.1)

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    # A body that never comes, after a complete head.
    stalled = socket.create_connection(address)
    stalled.settimeout(30)
    stalled.sendall(head + b"Content-Length: 100\r\n\r\n" + b'{"type": ')
    idle = socket.create_connection(address)  # sends nothing at all
    idle.settimeout(30)
    try:
        for i in range(5):  # served meanwhile
            assert live.post(event_body("company.updated", {"id": f"c-{i}"})).status_code == 200
        assert slow.recv(1024) == b""  # closed by the listener, head never complete
        assert idle.recv(1024) == b""
        assert stalled.recv(1024).startswith(b"HTTP/1.1 408")
    finally:
        stop.set()
        for sock in (slow, stalled, idle):
            sock.close()
    assert live.post(event_body("company.updated", {"id": "c-after"})).status_code == 200
    assert live.listener.queue.counts()["ignored"] == 6


def _answer(sock: socket.socket) -> bytes:
    """Everything the listener sends on ``sock`` until it closes it (or 30 s)."""
    sock.settimeout(30)
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


@pytest.mark.parametrize("dribbled", [False, True])
def test_a_request_head_over_16_kib_is_refused_and_the_connection_closed(
    live: Live, dribbled: bool
) -> None:
    address = ("127.0.0.1", live.server.port)
    body = event_body("company.updated", {"id": "c-head"})
    start = b"POST /webhooks/getbill HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    ending = b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body

    def padded(size: int) -> bytes:
        return start + b"X-Padding: " + b"p" * size + b"\r\n" + ending

    with socket.create_connection(address) as ok:  # a large head within the limit is served
        ok.sendall(padded(14 * 1024))
        assert _answer(ok).startswith(b"HTTP/1.1 401")  # unsigned: refused, but read whole
    with socket.create_connection(address) as big:
        request = padded(17 * 1024)
        if dribbled:  # a head that grows past the limit is cut off before it is complete
            with contextlib.suppress(OSError):
                for i in range(0, len(request), 1024):
                    big.sendall(request[i : i + 1024])
                    time.sleep(0.01)
        else:
            big.sendall(request)
        assert _answer(big).startswith(b"HTTP/1.1 400")
    assert live.post(body).status_code == 200  # and the listener goes on
    assert live.listener.queue.counts()["ignored"] == 1


def test_a_large_body_on_a_kept_alive_connection_is_not_taken_for_a_head(live: Live) -> None:
    with httpx.Client(timeout=15) as client:  # one connection for both
        for n in range(2):
            body = event_body("company.updated", {"id": f"c-big-{n}", "pad": "x" * 200_000})
            answer = client.post(
                live.url,
                content=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, SECRET)},
            )
            assert answer.status_code == 200
    assert live.listener.queue.counts()["ignored"] == 2


def test_a_sync_running_while_deliveries_arrive_meets_no_429(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = live.env
    # A small hour: the sync and the listener together ask for more than a window allows.
    env.sim.config.rate_limit = 25
    env.sim.config.rate_window_s = 10
    served: list[int] = []  # X-RateLimit-Remaining of every counted API answer
    real_rate_state = env.sim.rate_state

    def spy(client_id: str | None, count: bool) -> tuple[list[tuple[str, str]], float | None]:
        headers, wait = real_rate_state(client_id, count)
        if count:
            served.append(int(dict(headers)["X-RateLimit-Remaining"]))
        return headers, wait

    monkeypatch.setattr(env.sim, "rate_state", spy)
    debts = env.debts()
    outcome: dict[str, SyncResult] = {}

    def sync() -> None:
        with open_sync(
            env.config, env.api, SyncSettings(since=date(2025, 1, 1)), s3_client=env.s3.client()
        ) as session:
            outcome["result"] = session.syncer.run()

    syncing = threading.Thread(target=sync)
    syncing.start()
    for turn in range(16):
        env.sim.add_followup(debts[turn % len(debts)], media=turn % 2 == 0)
    assert env.sim.webhooks.flush()
    syncing.join(timeout=120)
    assert not syncing.is_alive()
    wait_for(lambda: all(live.archived(s.body_sha256) for s in env.sim.webhooks.sent), 120)
    statuses = Counter(r.status for r in env.sim.request_log)
    assert statuses[429] == 0, statuses
    # Neither ran the window dry: the sync stopped at its reserve, the listener at its own
    # and waited for the window to slide.
    assert served and min(served) >= 1, sorted(served)[:5]
    result = outcome["result"]
    assert result.complete or result.budget_exhausted


def test_the_simulators_wrong_signatures_are_refused(live: Live) -> None:
    env = live.env
    env.sim.config.webhook_bad_signature_rate = 1.0
    env.sim.add_followup(env.debts()[0], media=False)
    assert env.sim.webhooks.flush()
    (sent,) = env.sim.webhooks.sent
    assert (sent.good_signature, sent.status) == (False, 401)
    assert deliveries(env) == [] and live.queue.get(sent.body_sha256) is None


def test_a_worker_stopped_by_refused_credentials_shows_in_healthz(env: Env, tmp_path: Path) -> None:
    wrong = dataclasses.replace(env.api, client_secret="not-the-secret")
    with (
        open_listener(
            env.config, wrong, listen_settings(), queue=tmp_path / "q.db", s3_client=env.s3.client()
        ) as listener,
        ListenServer(listener, "127.0.0.1", 0) as server,
    ):
        body = event_body("debt.updated", {"id": env.debts()[0]})
        answer = httpx.post(
            server.url + "/webhooks/getbill",
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, SECRET)},
        )
        assert answer.status_code == 200  # stored all the same: archived once fixed
        health = wait_for(
            lambda: (h := httpx.get(server.url + "/healthz")).status_code == 503 and h
        )
        assert "client credentials" in health.json()["worker"]
        assert "not-the-secret" not in health.text
        assert listener.queue.counts()["resolved"] == 1
