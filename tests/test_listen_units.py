"""Pure parts of ``archiver listen``: signatures, payload hints, evidence headers, the queue
file, the listener's budget gate, the intake's refusals and the settings."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from archiver.archive.results import DebtResult
from archiver.cli import main
from archiver.common.redact import register_secret
from archiver.devkit.simulator.webhooks import event_type_for
from archiver.errors import BudgetExhaustedError, ConfigError, StorageError
from archiver.getbill.ratelimit import RateLimitState
from archiver.listen.budget import ReserveGate
from archiver.listen.deliveries import delivery_key, evidence_headers
from archiver.listen.events import read_hint
from archiver.listen.intake import ARRIVAL_GAP_S
from archiver.listen.metrics import ListenMetrics
from archiver.listen.queue import DeliveryQueue
from archiver.listen.server import Listener
from archiver.listen.settings import ListenSettings
from archiver.listen.signature import sign, signed_with
from archiver.listen.worker import ArchiveTools, ArchiveWorker
from archiver.retention.registry import PolicyRegistry
from archiver.store.types import StoredObject
from archiver.sync.budget import RequestBudget, default_reserve, listener_reserve

SECRET = "current-secret-0123456789"
OLD = "previous-secret-0123456789"


# -- signatures


def test_the_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    # RFC 4231-style vector, computed independently of the code under test.
    body = b"The quick brown fox jumps over the lazy dog"
    assert sign(body, "key") == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert sign(body, "key") == hmac.new(b"key", body, hashlib.sha256).hexdigest()


def test_a_signature_verifies_against_the_current_or_the_previous_secret() -> None:
    body = b'{"type":"followup.created","data":{"id":"F1"}}'
    secrets = [("current", SECRET), ("previous", OLD)]
    assert signed_with(body, sign(body, SECRET), secrets) == "current"
    assert signed_with(body, sign(body, OLD), secrets) == "previous"
    assert signed_with(body, sign(body, SECRET).upper(), secrets) == "current"
    assert signed_with(body, sign(body, OLD), secrets[:1]) is None  # rotation over
    assert signed_with(body + b" ", sign(body, SECRET), secrets) is None  # one byte more
    for given in (None, "", "sha256=" + sign(body, SECRET), "zz" * 32, sign(body, SECRET)[:-1]):
        assert signed_with(body, given, secrets) is None


# -- hints


@pytest.mark.parametrize(
    "payload,kind,ref",
    [
        ({"type": "followup.created", "data": {"id": "F1", "debt_id": "D9"}}, "followup", "F1"),
        ({"type": "followup.failed", "data": {"id": "F2"}}, "followup", "F2"),
        ({"type": "debt.status_changed", "data": {"id": "D1"}}, "debt", "D1"),
        ({"type": "payment.received", "data": {"id": "P1", "debt_id": "D2"}}, "debt", "D2"),
        ({"type": "company.updated", "data": {"id": "C1"}}, "none", None),
        ({"type": "followup.created", "data": {"id": "../x"}}, "malformed", None),
        ({"type": "followup.created", "data": {}}, "malformed", None),
        ({"type": "payment.received", "data": {"debt_id": 7}}, "malformed", None),
        ({"type": 3, "data": {}}, "malformed", None),
        ({"type": "followup.created\nforged log line", "data": {"id": "F1"}}, "malformed", None),
        ({"type": "debt.updated", "data": "D1"}, "malformed", None),
        (["followup.created"], "malformed", None),
    ],
)
def test_the_payload_hints_at_a_followup_or_a_debt(payload: Any, kind: str, ref: str) -> None:
    hint = read_hint(json.dumps(payload).encode())
    assert (hint.kind, hint.ref) == (kind, ref)
    assert hint.json


def test_a_body_that_is_not_json_is_malformed() -> None:
    for body in (b"{", b"\xff\xfe", b""):
        hint = read_hint(body)
        assert hint.kind == "malformed" and not hint.json and "not JSON" in (hint.reason or "")


# -- evidence headers


def test_evidence_headers_keep_the_signature_and_drop_secrets() -> None:
    register_secret(SECRET)
    kept = evidence_headers(
        [
            ("Content-Type", "application/json"),
            ("X-GetBill-Signature", "ab" * 32),
            ("Authorization", "Bearer abc"),
            ("Cookie", "session=1"),
            ("X-Api-Key", "k"),
            ("X-Auth-Token", "t"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-For", "10.0.0.2"),
            ("X-Echo", f"the secret is {SECRET}"),
        ]
    )
    assert kept == {
        "content-type": "application/json",
        "x-getbill-signature": "ab" * 32,
        "x-forwarded-for": "10.0.0.1, 10.0.0.2",
        "x-echo": "the secret is ***",
    }


# -- the queue file


def test_a_delivery_moves_through_the_queue_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = DeliveryQueue.open(path)
    assert queue.reserve("a" * 64, 10.0, "followup.created", "followup", "F1") is None
    assert queue.reserve("a" * 64, 11.0, "followup.created", "followup", "F1") == "receiving"
    queue.mark_stored("a" * 64, "stored", 10.0, "followup.created", "followup", "F1")
    assert queue.reserve("a" * 64, 12.0, "followup.created", "followup", "F1") == "stored"
    queue.forget("a" * 64)  # only a row still receiving is forgotten
    assert [r.sha256 for r in queue.due(20.0, 10)] == ["a" * 64]
    queue.retry(["a" * 64], "HTTP 503", not_before=30.0)
    assert queue.due(20.0, 10) == [] and len(queue.due(30.0, 10)) == 1
    queue.resolve("a" * 64, "D1")
    queue.reserve("b" * 64, 13.0, "debt.updated", "debt", "D1")
    queue.mark_stored("b" * 64, "stored", 13.0, "debt.updated", "debt", "D1")
    queue.resolve("b" * 64, "D1")
    assert queue.debts_due(40.0) == ["D1"]
    assert {r.sha256 for r in queue.resolved_of("D1")} == {"a" * 64, "b" * 64}
    queue.archived(["a" * 64, "b" * 64], "debts/D1/manifests/00000001.json", 41.0)
    queue.close()

    again = DeliveryQueue.open(path)
    row = again.get("a" * 64)
    assert row is not None and row.state == "archived" and row.attempts == 1
    assert row.manifest_key == "debts/D1/manifests/00000001.json"
    assert again.counts()["archived"] == 2 and again.waiting() == 0
    again.close()


@dataclass
class FakeStore:
    """Just enough of an ObjectStore: heads of what exists, puts that may fail."""

    existing: set[str] = field(default_factory=set)
    fail: bool = False
    puts: dict[str, bytes] = field(default_factory=dict)
    bucket: str = "fake"

    def head(self, key: str) -> object | None:
        return object() if key in self.existing or key in self.puts else None

    def put_bytes(self, key: str, data: bytes, **kw: Any) -> StoredObject:
        if self.fail:
            raise StorageError("S3 is down", key=key)
        self.puts[key] = data
        return StoredObject(key, "v1", hashlib.sha256(data).hexdigest(), len(data), created=True)


def make_listener(store: FakeStore, queue: DeliveryQueue, **kw: Any) -> Listener:
    return Listener(
        store=store,  # type: ignore[arg-type]
        queue=queue,
        settings=ListenSettings(secret=SECRET, **kw),
        policy=PolicyRegistry.with_user_dirs(()).load("default"),
        open_session=lambda: None,  # type: ignore[arg-type,return-value]
    )


def test_rows_of_puts_a_crash_interrupted_are_kept_or_forgotten_by_what_s3_holds() -> None:
    queue = DeliveryQueue.open(":memory:")
    stored, lost, odd = "1" * 64, "2" * 64, "3" * 64
    queue.reserve(stored, 1.0, "followup.created", "followup", "F1")
    queue.reserve(lost, 2.0, "followup.created", "followup", "F2")
    queue.reserve(odd, 3.0, None, "malformed", None)
    listener = make_listener(FakeStore(existing={delivery_key(stored), delivery_key(odd)}), queue)
    assert listener.recover() == 2
    assert queue.get(lost) is None
    assert [r.sha256 for r in queue.due(10.0, 10)] == [stored]
    malformed = queue.get(odd)
    assert malformed is not None and malformed.state == "malformed"


def test_intake_answers_503_and_forgets_the_row_when_s3_fails() -> None:
    queue = DeliveryQueue.open(":memory:")
    store = FakeStore(fail=True)
    intake = make_listener(store, queue).intake
    body = b'{"type":"debt.updated","data":{"id":"D1"}}'
    answer = intake.receive(body, [("X-GetBill-Signature", sign(body, SECRET))], "peer")
    assert answer.status == 503 and sum(queue.counts().values()) == 0
    store.fail = False
    answer = intake.receive(body, [("X-GetBill-Signature", sign(body, SECRET))], "peer")
    assert answer.status == 200 and queue.counts()["stored"] == 1


def test_intake_takes_the_previous_secret_during_a_rotation_and_says_so() -> None:
    queue = DeliveryQueue.open(":memory:")
    store = FakeStore()
    intake = make_listener(store, queue, previous_secret=OLD).intake
    body = b'{"type":"debt.updated","data":{"id":"D1"}}'
    answer = intake.receive(body, [("x-getbill-signature", sign(body, OLD))], "peer")
    assert answer.status == 200
    (stored,) = store.puts.values()
    assert json.loads(stored)["signature"]["secret"] == "previous"
    assert OLD.encode() not in stored and SECRET.encode() not in stored


def test_rows_can_be_taken_only_once_they_have_waited(tmp_path: Path) -> None:
    queue = DeliveryQueue.open(":memory:")
    for sha, ts, debt in (("a" * 64, 10.0, "D1"), ("b" * 64, 20.0, "D2"), ("c" * 64, 21.0, "D1")):
        queue.reserve(sha, ts, "debt.updated", "debt", debt)
        queue.mark_stored(sha, "stored", ts, "debt.updated", "debt", debt)
    assert [r.sha256 for r in queue.due(30.0, 10, received_before=15.0)] == ["a" * 64]
    assert len(queue.due(30.0, 10)) == 3
    for sha, debt in (("a" * 64, "D1"), ("b" * 64, "D2"), ("c" * 64, "D1")):
        queue.resolve(sha, debt)
    # a debt waits by its oldest delivery: D1's has waited since 10.0
    assert queue.debts_due(30.0, received_before=15.0) == ["D1"]
    assert queue.debts_due(30.0) == ["D1", "D2"]


class FakeArchiver:
    """The pipeline as the worker drives it; ``archive_debt`` records its calls."""

    def __init__(self) -> None:
        self.archived: list[tuple[str, float]] = []
        self.run_id = "run"

    def begin(self, debts: list[str], **kw: Any) -> None:
        pass

    def deliver_pending(self) -> None:
        pass

    def end(self, result: Any, status: str) -> None:
        pass

    def archive_debt(self, debt_id: str) -> DebtResult:
        self.archived.append((debt_id, time.monotonic()))
        return DebtResult(debt_id, "archived", manifest_key=f"debts/{debt_id}/manifests/1.json")


def _worker(queue: DeliveryQueue, busy: threading.Event, defer: float) -> tuple[Any, Any]:
    fake = FakeArchiver()
    client = SimpleNamespace(rate_limit=RateLimitState(limit=100, remaining=None), http=None)
    client.http = SimpleNamespace(gate=None)

    @contextmanager
    def session() -> Iterator[ArchiveTools]:
        yield ArchiveTools(fake, client)  # type: ignore[arg-type]

    worker = ArchiveWorker(
        queue=queue,
        open_session=session,
        settings=ListenSettings(secret=SECRET, archive_defer_s=defer),
        metrics=ListenMetrics(queue.counts),
        busy=busy.is_set,
    )
    return worker, fake


def _stored(queue: DeliveryQueue, debt_id: str, n: int) -> None:
    body = f"{debt_id}-{n}".encode()
    sha = hashlib.sha256(body).hexdigest()
    queue.reserve(sha, time.time(), "debt.updated", "debt", debt_id)
    queue.mark_stored(sha, "stored", time.time(), "debt.updated", "debt", debt_id)


def test_the_worker_gives_way_while_deliveries_arrive_then_archives_them_together() -> None:
    queue = DeliveryQueue.open(":memory:")
    busy = threading.Event()
    busy.set()
    worker, fake = _worker(queue, busy, defer=60.0)
    worker.start()
    try:
        for n in range(3):
            _stored(queue, "D1", n)
            worker.wake()
        time.sleep(1.0)
        assert fake.archived == [] and queue.counts()["stored"] == 3  # not even resolved
        busy.clear()  # the deliveries stopped coming
        worker.wake()
        wait_until = time.monotonic() + 10
        while queue.counts()["archived"] < 3 and time.monotonic() < wait_until:
            time.sleep(0.02)
        assert queue.counts()["archived"] == 3
        assert [d for d, _ in fake.archived] == ["D1"]  # one archive for the three
    finally:
        worker.stop()


def test_while_deliveries_keep_coming_a_delivery_waits_at_most_archive_defer_s() -> None:
    queue = DeliveryQueue.open(":memory:")
    busy = threading.Event()
    busy.set()
    worker, fake = _worker(queue, busy, defer=0.5)
    worker.start()
    try:
        began = time.monotonic()
        _stored(queue, "D1", 0)
        worker.wake()
        wait_until = began + 10
        while queue.counts()["archived"] < 1 and time.monotonic() < wait_until:
            time.sleep(0.02)
        assert [d for d, _ in fake.archived] == ["D1"]
        assert 0.5 <= fake.archived[0][1] - began < 5.0
    finally:
        worker.stop()


def test_an_archive_scheduled_before_more_deliveries_came_waits_for_a_later_turn() -> None:
    queue = DeliveryQueue.open(":memory:")
    busy = threading.Event()
    worker, fake = _worker(queue, busy, defer=60.0)
    _stored(queue, "D1", 0)
    (row,) = queue.due(time.time(), 10)
    queue.resolve(row.sha256, "D1")
    tools = ArchiveTools(fake, None)  # type: ignore[arg-type]
    busy.set()  # deliveries arrive again between the scheduling and the archive
    worker._archive(tools, "D1")
    assert fake.archived == [] and queue.counts()["resolved"] == 1
    busy.clear()
    worker._archive(tools, "D1")
    assert [d for d, _ in fake.archived] == ["D1"] and queue.counts()["archived"] == 1


def test_the_intake_is_busy_from_a_request_to_shortly_after_its_answer() -> None:
    woken: list[bool] = []
    queue = DeliveryQueue.open(":memory:")
    intake = make_listener(FakeStore(), queue).intake
    intake._wake = lambda: woken.append(True)
    assert not intake.busy
    with intake.arriving():
        with intake.arriving():
            assert intake.busy
        assert intake.busy and woken == []
    assert intake.busy and woken == [True]  # the last one out wakes the worker
    time.sleep(ARRIVAL_GAP_S * 2)
    assert not intake.busy


# -- the budget gate


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_listener_stops_at_its_reserve_and_goes_on_after_the_reset() -> None:
    clock = Clock()
    rate = RateLimitState(limit=100, remaining=None)
    stop = threading.Event()
    waits: list[tuple[float, int]] = []
    gate = ReserveGate(rate, stop=stop, clock=clock, on_wait=lambda s, n: waits.append((s, n)))
    gate("/token")  # nothing known yet: the first answer tells
    rate.update({"X-RateLimit-Remaining": "8", "X-RateLimit-Reset": str(clock.now + 60)}, 1.0)
    sent = 0
    for _ in range(8 - listener_reserve(100)):
        gate("/followups/F1")
        sent += 1
    assert sent == 3
    stop.set()  # the next one would wait for the reset: a stop ends the wait unsent
    with pytest.raises(BudgetExhaustedError):
        gate("/followups/F2")
    assert waits == [(60.0, 5)]
    clock.now += 61  # the window reset: one request tells what is left now
    gate("/followups/F2")
    rate.update({"X-RateLimit-Remaining": "90"}, 2.0)
    for _ in range(20):
        gate("/followups/F3")


def test_a_sync_budget_follows_what_the_server_says_is_left() -> None:
    budget = RequestBudget()
    budget.take("/token")
    budget.settle(remaining=500, hourly_limit=1000)
    assert budget.limit == 401
    for _ in range(10):
        budget.take("/followups")
    budget.follow(remaining=490, hourly_limit=1000)  # only this run spent: no change
    assert budget.limit == 401
    budget.follow(remaining=200, hourly_limit=1000)  # another process spent 290 meanwhile
    assert budget.limit == 11 + 200 - default_reserve(1000)
    budget.follow(remaining=900, hourly_limit=1000)  # never grows
    assert budget.limit == 111
    assert listener_reserve(1000) < default_reserve(1000)


# -- settings and the command line


def test_settings_need_a_long_enough_secret_and_never_show_it() -> None:
    with pytest.raises(ConfigError, match="GETBILL_WEBHOOK_SECRET"):
        ListenSettings.from_env({})
    with pytest.raises(ConfigError, match="too short"):
        ListenSettings.from_env({"GETBILL_WEBHOOK_SECRET": "short"})
    settings = ListenSettings.from_env(
        {"GETBILL_WEBHOOK_SECRET": SECRET, "GETBILL_WEBHOOK_SECRET_PREVIOUS": OLD}
    )
    assert settings.secrets() == [("current", SECRET), ("previous", OLD)]
    assert SECRET not in repr(settings) and OLD not in repr(settings)


def test_listen_without_a_secret_is_a_configuration_error(tmp_path: Path) -> None:
    env = {
        "ARCHIVER_BUCKET": "b",
        "GETBILL_CLIENT_ID": "c",
        "GETBILL_CLIENT_SECRET": "s",
        "GETBILL_WEBHOOK_SECRET": "",
    }
    result = CliRunner().invoke(main, ["listen", "--queue", str(tmp_path / "q.db")], env=env)
    assert result.exit_code == 2, result.output
    assert "GETBILL_WEBHOOK_SECRET" in result.output


def test_metrics_start_at_zero_for_every_outcome() -> None:
    text = ListenMetrics(lambda: {"stored": 2}).exposition().decode()
    assert 'archiver_listen_deliveries_total{outcome="too_large"} 0.0' in text
    assert 'archiver_listen_queue_deliveries{state="stored"} 2.0' in text


def test_simulator_event_types_follow_the_new_status() -> None:
    assert event_type_for({"status": {"from": "in_progress", "to": "failed"}}) == "followup.failed"
    assert event_type_for({"status": {"from": "x", "to": "deal_found"}}) == "followup.completed"
    assert event_type_for({"email_open_count": {"from": 0, "to": 1}}) == "followup.updated"


def test_simulator_webhooks_need_a_secret() -> None:
    result = CliRunner().invoke(
        main,
        ["simulate", "--port", "0", "--webhook-url", "http://127.0.0.1:8080/webhooks/getbill"],
        env={"GETBILL_WEBHOOK_SECRET": ""},
    )
    assert result.exit_code == 2 and "--webhook-secret" in result.output
