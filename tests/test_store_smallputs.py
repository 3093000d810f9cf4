"""SmallPuts: the lean PUT of records, deliveries and small media files sends what boto3
sends, and every refusal ends as it would through boto3 (rerun, conflict, checksum,
credentials, retries, an answer before the whole body)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fixtures.faultproxy import FaultProxy, Rule
from fixtures_s3 import unique_bucket_name

from archiver.common.redact import RedactingFormatter
from archiver.devkit.s3server import LocalS3Server
from archiver.errors import ConfigError, ObjectConflictError, StorageError
from archiver.store.objects import ObjectStore
from archiver.store.settings import StorageSettings, make_s3_client
from archiver.store.smallputs import SmallPuts, small_puts
from archiver.store.types import Lock

pytestmark = pytest.mark.integration

# Any signature value left in a log line (SigV4 header, botocore.auth's own output).
LEAKED_SIGNATURE = re.compile(r"signature(?:=|:\s*)(?!\*\*\*)[0-9a-z%]{8,}", re.IGNORECASE)


def _lock(days: int = 30, hold: bool = False) -> Lock:
    return Lock("GOVERNANCE", datetime.now(UTC) + timedelta(days=days), legal_hold=hold)


def _store(server: LocalS3Server, endpoint: str | None = None, **kw: Any) -> ObjectStore:
    client = make_s3_client(
        endpoint or server.endpoint_url,
        aws_access_key_id=kw.pop("key", server.access_key),
        aws_secret_access_key=kw.pop("secret", server.secret_key),
        region_name=server.region,
        config_options=kw,
    )
    return ObjectStore(client, unique_bucket_name("small"))


@pytest.fixture(autouse=True)
def _lean_connections_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every SmallPuts a test makes has its idle connections closed at the end: a socket left
    to the collector warns later, inside some other test (pikepdf's PDF/A validator counts a
    warning raised while it parses as a finding)."""
    made: list[SmallPuts] = []
    real = SmallPuts.__init__

    def init(self: SmallPuts, store: ObjectStore) -> None:
        real(self, store)
        made.append(self)

    monkeypatch.setattr(SmallPuts, "__init__", init)
    yield
    for puts in made:
        puts.close()


@pytest.fixture
def pair(s3_server: LocalS3Server) -> tuple[ObjectStore, SmallPuts]:
    store = _store(s3_server)
    store.create_bucket()
    puts = small_puts(store)
    assert isinstance(puts, SmallPuts)
    return store, puts


@pytest.fixture
def lean(pair: tuple[ObjectStore, SmallPuts]) -> ObjectStore:
    """A store whose small writes, small files included, take the lean PUT."""
    store, puts = pair
    store.small = puts
    return store


def test_a_small_put_stores_what_put_bytes_stores(pair: tuple[ObjectStore, SmallPuts]) -> None:
    store, puts = pair
    lock = _lock(hold=True)
    meta = {"kind": "webhook-delivery"}
    data = b'{"type":"debt.updated"}'
    ours = puts.put_bytes(
        "webhooks/a b+é~.json", data, lock=lock, content_type="application/json", metadata=meta
    )
    theirs = store.put_bytes(
        "webhooks/boto3.json", data, lock=lock, content_type="application/json", metadata=meta
    )
    assert ours.created and ours.version_id and ours.sha256 == theirs.sha256
    assert store.read_bytes(ours.key) == data
    a, b = store.head(ours.key), store.head(theirs.key)
    assert a is not None and b is not None
    assert (a.size, a.sha256, a.content_type, a.metadata) == (
        b.size,
        b.sha256,
        b.content_type,
        b.metadata,
    )
    assert store.get_lock(ours.key, ours.version_id) == lock == store.get_lock(theirs.key)
    assert store.sha256_of(ours.key) == (ours.sha256, len(data))


def test_a_taken_key_is_a_rerun_or_a_conflict_as_through_boto3(
    pair: tuple[ObjectStore, SmallPuts],
) -> None:
    store, puts = pair
    first = puts.put_bytes("k.json", b"same", lock=_lock(), content_type="text/plain")
    again = puts.put_bytes("k.json", b"same", lock=_lock(), content_type="text/plain")
    assert first.created and not again.created and again.version_id == first.version_id
    with pytest.raises(ObjectConflictError) as raised:
        puts.put_bytes("k.json", b"other", lock=_lock(), content_type="text/plain")
    assert raised.value.context["existing_version_id"] == first.version_id
    assert len([v for v in store.list_versions("k.json")]) == 1


def test_bytes_that_do_not_match_their_checksum_are_refused(
    pair: tuple[ObjectStore, SmallPuts],
) -> None:
    store, puts = pair
    wrong = "00" * 32
    with pytest.raises(StorageError, match="do not match their SHA-256"):
        puts._put_once("bad.json", b"these bytes", wrong, _lock(), "text/plain", None)
    assert store.head("bad.json") is None


def test_a_lock_in_the_past_is_a_retention_error(pair: tuple[ObjectStore, SmallPuts]) -> None:
    _, puts = pair
    past = Lock("GOVERNANCE", datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(StorageError, match="retain-until"):
        puts.put_bytes("old.json", b"x", lock=past, content_type="text/plain")


def test_refused_credentials_are_a_configuration_error_and_never_logged(
    s3_server: LocalS3Server, caplog: pytest.LogCaptureFixture
) -> None:
    good = _store(s3_server)
    good.create_bucket()
    secret = "wrong-secret-key-0123456789abcdef"
    bad = _store(s3_server, secret=secret)
    bad.bucket = good.bucket
    puts = small_puts(bad)
    assert puts is not None
    caplog.handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    with (
        caplog.at_level(logging.DEBUG, logger="botocore.auth"),
        pytest.raises(ConfigError) as raised,
    ):
        puts.put_bytes("k.json", b"x", lock=_lock(), content_type="text/plain")
    assert "refused the credentials" in str(raised.value)
    assert any(r.name == "botocore.auth" for r in caplog.records)  # the signer did log
    text = caplog.handler.format
    logged = "\n".join(text(r) for r in caplog.records)
    for value in (secret, s3_server.secret_key):
        assert value not in logged and value not in repr(raised.value.context)
    assert LEAKED_SIGNATURE.search(logged) is None


def test_debug_logs_of_a_good_put_hold_no_secret(
    pair: tuple[ObjectStore, SmallPuts], s3_server: LocalS3Server, caplog: pytest.LogCaptureFixture
) -> None:
    _, puts = pair
    caplog.handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    with caplog.at_level(logging.DEBUG, logger="botocore.auth"):
        puts.put_bytes("k.json", b"x", lock=_lock(), content_type="text/plain")
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records)
    assert "botocore.auth" in logged
    assert s3_server.secret_key not in logged
    assert LEAKED_SIGNATURE.search(logged) is None


@pytest.mark.parametrize("fault", ["slowdown", "internal", "reset", "drop_response"])
def test_transient_faults_are_retried_to_one_object(s3_server: LocalS3Server, fault: str) -> None:
    with FaultProxy(s3_server.endpoint_url) as proxy:
        store = _store(s3_server, proxy.url)
        store.create_bucket()
        puts = small_puts(store)
        assert puts is not None
        proxy.add(Rule(fault, op="PutObject", count=2))  # type: ignore[arg-type]
        stored = puts.put_bytes("k.json", b"evidence", lock=_lock(), content_type="text/plain")
        assert [f.fault for f in proxy.faults()] == [fault, fault]
        # the answer lost after the write: the retry finds the same bytes stored
        assert stored.created is (fault != "drop_response")
        assert len(list(store.list_versions("k.json"))) == 1
        assert store.read_bytes("k.json") == b"evidence"


def test_faults_past_the_last_attempt_are_a_storage_error(s3_server: LocalS3Server) -> None:
    with FaultProxy(s3_server.endpoint_url) as proxy:
        store = _store(s3_server, proxy.url)
        store.create_bucket()
        puts = small_puts(store)
        assert puts is not None
        proxy.add(Rule("slowdown", op="PutObject", count=3))
        with pytest.raises(StorageError, match="SlowDown"):
            puts.put_bytes("k.json", b"x", lock=_lock(), content_type="text/plain")
        proxy.clear()
        proxy.add(Rule("reset", op="PutObject", count=10))
        with pytest.raises(StorageError, match="store k.json failed"):
            puts.put_bytes("k.json", b"x", lock=_lock(), content_type="text/plain")
        assert store.head("k.json") is None


def test_a_closed_keep_alive_connection_is_replaced(pair: tuple[ObjectStore, SmallPuts]) -> None:
    store, puts = pair
    puts.put_bytes("a.json", b"a", lock=_lock(), content_type="text/plain")
    idle = puts._idle.get_nowait()
    assert idle.sock is not None
    idle.sock.shutdown(socket.SHUT_RDWR)  # as if the server had closed it while idle
    puts._idle.put_nowait(idle)
    assert puts.put_bytes("b.json", b"b", lock=_lock(), content_type="text/plain").created
    assert idle.sock is None  # dropped, not used
    puts.close()
    assert store.read_bytes("b.json") == b"b"


def test_clients_this_path_does_not_cover_keep_boto3(
    s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert small_puts(_store(s3_server, signature_version="s3")) is None
    assert small_puts(_store(s3_server, proxies={"http": "http://127.0.0.1:9"})) is None
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    assert small_puts(_store(s3_server)) is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert small_puts(_store(s3_server)) is not None


def test_the_client_s_retry_setting_counts_the_attempts(s3_server: LocalS3Server) -> None:
    """AWS_MAX_ATTEMPTS (here as the client config it becomes) bounds the small PUTs too."""
    with FaultProxy(s3_server.endpoint_url) as proxy:
        store = _store(s3_server, proxy.url)
        store.create_bucket()
        one = ObjectStore(
            make_s3_client(
                proxy.url,
                config_options={"retries": {"mode": "standard", "total_max_attempts": 1}},
                aws_access_key_id=s3_server.access_key,
                aws_secret_access_key=s3_server.secret_key,
                region_name=s3_server.region,
            ),
            store.bucket,
        )
        puts = small_puts(one)
        assert puts is not None
        proxy.add(Rule("slowdown", op="PutObject", count=1))
        with pytest.raises(StorageError, match="SlowDown"):
            puts.put_bytes("k.json", b"x", lock=_lock(), content_type="text/plain")
        assert puts.put_bytes("k.json", b"x", lock=_lock(), content_type="text/plain").created


def test_stores_the_wiring_opens_put_small_objects_this_way(s3_server: LocalS3Server) -> None:
    from archiver.wiring import open_store

    store = open_store(unique_bucket_name("wired"), s3_server.client())
    assert isinstance(store.small, SmallPuts)
    store.create_bucket()
    stored = store.put_bytes("r.json", b"{}", lock=_lock(), content_type="application/json")
    assert stored.created and store.read_bytes("r.json") == b"{}"


SMALL = StorageSettings().small_file_bytes


def _boto3_puts(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys boto3's own put_object is asked to store, from now on."""
    keys: list[str] = []
    real = store.client.put_object

    def counting(**kw: Any) -> Any:
        keys.append(kw["Key"])
        return real(**kw)

    monkeypatch.setattr(store.client, "put_object", counting)
    return keys


def _media(path: Path, size: int) -> tuple[Path, str]:
    data = (b"%PDF-1.7 " + bytes(range(256)) * (size // 256 + 1))[:size]
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_a_small_file_goes_through_the_lean_put_and_stores_what_boto3_stores(
    s3_server: LocalS3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean, plain = _store(s3_server), _store(s3_server)
    lean.create_bucket()
    plain.create_bucket()
    lean.small = small_puts(lean)
    assert plain.small is None
    media, sha = _media(tmp_path / "letter.pdf", SMALL)  # the largest that goes this way
    lock, meta = _lock(hold=True), {"kind": "letter"}
    through_boto3 = _boto3_puts(lean, monkeypatch)
    put: dict[str, Any] = {
        "sha256": sha,
        "size": SMALL,
        "lock": lock,
        "content_type": "application/pdf",
    }
    ours = lean.put_file("m/a.pdf", media, **put, metadata=meta)
    assert through_boto3 == []
    theirs = plain.put_file("m/a.pdf", media, **put, metadata=meta)
    assert ours.created and theirs.created and ours.version_id
    a, b = lean.head("m/a.pdf"), plain.head("m/a.pdf")
    assert a is not None and b is not None
    assert (a.size, a.sha256, a.content_type, a.metadata) == (
        b.size,
        b.sha256,
        b.content_type,
        b.metadata,
    )
    assert lean.get_lock("m/a.pdf", ours.version_id) == lock == plain.get_lock("m/a.pdf")
    assert lean.sha256_of("m/a.pdf") == (sha, SMALL)
    again = lean.put_file("m/a.pdf", media, **put)
    assert not again.created and again.version_id == ours.version_id
    assert through_boto3 == []


def test_a_small_file_that_does_not_match_its_measured_sha256_is_refused(
    lean: ObjectStore, tmp_path: Path
) -> None:
    store = lean
    media, _ = _media(tmp_path / "r.wav", 4004)
    with pytest.raises(StorageError, match="do not match their SHA-256"):
        store.put_file(
            "m/r.wav", media, sha256="00" * 32, size=4004, lock=_lock(), content_type="audio/wav"
        )
    assert store.head("m/r.wav") is None


def test_a_small_file_that_changed_since_it_was_measured_is_refused_before_sending(
    lean: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = lean
    media, sha = _media(tmp_path / "r.wav", 4000)
    real_stat = Path.stat

    def stale_stat(self: Path, **kw: Any) -> Any:  # the size it had when measured
        info = real_stat(self, **kw)
        return type("Stat", (), {"st_size": 5000, "st_mtime": info.st_mtime})()

    monkeypatch.setattr(Path, "stat", stale_stat)
    with pytest.raises(StorageError, match="changed before its upload: 4000 bytes, expected 5000"):
        store.put_file("m/r.wav", media, sha256=sha, size=5000, lock=_lock(), content_type="x/y")
    monkeypatch.undo()
    assert store.head("m/r.wav") is None


def test_a_small_file_with_non_ascii_metadata_ends_as_through_boto3(
    lean: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean PUT leaves non-ASCII metadata to boto3, which refuses it as it always did."""
    store = lean
    media, sha = _media(tmp_path / "lettre.pdf", 3000)
    through_boto3 = _boto3_puts(store, monkeypatch)
    with pytest.raises(StorageError, match="ASCII"):
        store.put_file(
            "m/l.pdf",
            media,
            sha256=sha,
            size=3000,
            lock=_lock(),
            content_type="application/pdf",
            metadata={"title": "relance n° 2"},
        )
    assert through_boto3 == ["m/l.pdf"]
    assert store.head("m/l.pdf") is None


def test_a_file_over_the_small_size_keeps_boto3_s_streamed_upload(
    lean: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = lean
    media, sha = _media(tmp_path / "call.wav", SMALL + 1)
    through_boto3 = _boto3_puts(store, monkeypatch)
    stored = store.put_file(
        "m/call.wav", media, sha256=sha, size=SMALL + 1, lock=_lock(), content_type="audio/wav"
    )
    assert stored.created and through_boto3 == ["m/call.wav"]


def _fake_puts(port: int) -> SmallPuts:
    """SmallPuts towards a hand-written server on ``port`` (credentials that sign, no S3)."""
    client = make_s3_client(
        f"http://127.0.0.1:{port}",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
        region_name="us-east-1",
    )
    puts = small_puts(ObjectStore(client, "bucket"))
    assert puts is not None
    return puts


def _read_request(conn: socket.socket) -> bytes:
    """One whole request (headers and a Content-Length body) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _listener(rcvbuf: int | None = None) -> socket.socket:
    listener = socket.socket()
    if rcvbuf is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    return listener


REFUSAL = b"<Error><Code>PreconditionFailed</Code><Message>taken</Message></Error>"


def test_an_answer_sent_before_the_whole_body_is_read_not_taken_for_a_lost_connection() -> None:
    """S3 may refuse a PUT (a taken key, a bad signature) as soon as it has the headers, then
    close: the body still going out meets a broken pipe. The refusal is the answer that
    counts, and the half-used connection is not kept."""
    listener = _listener(rcvbuf=4096)  # the body cannot all fit

    def refuse_early() -> None:
        conn, _ = listener.accept()
        seen = b""
        while b"\r\n\r\n" not in seen:
            seen += conn.recv(1024)
        conn.sendall(
            b"HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(REFUSAL), REFUSAL)
        )
        conn.shutdown(socket.SHUT_WR)
        threading.Event().wait(0.3)  # the client is still sending, into a full window
        conn.close()  # unread bytes: the kernel resets the connection

    server = threading.Thread(target=refuse_early, daemon=True)
    server.start()
    puts = _fake_puts(listener.getsockname()[1])
    body = b"x" * (8 * 1024 * 1024)  # far more than the two sockets' buffers hold
    status, answer, text = puts._send_once("/bucket/k", body, {"If-None-Match": "*"})
    assert (status, text) == (412, REFUSAL)
    assert answer["content-type"] == "application/xml"
    assert puts._idle.empty()
    server.join(5)
    listener.close()


def test_a_reset_without_an_answer_is_a_failed_attempt() -> None:
    listener = _listener(rcvbuf=4096)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # a reset, no answer

    server = threading.Thread(target=hang_up, daemon=True)
    server.start()
    puts = _fake_puts(listener.getsockname()[1])
    with pytest.raises((OSError, http.client.HTTPException)):
        puts._send_once("/bucket/k", b"x" * (8 * 1024 * 1024), {"If-None-Match": "*"})
    assert puts._idle.empty()
    server.join(5)
    listener.close()


def test_an_answer_waiting_on_an_idle_connection_is_nobody_s_answer() -> None:
    """A server may write to an idle keep-alive connection unasked (a 408 before it closes
    it): the next PUT goes on a new connection and gets its own answer."""
    listener = _listener()
    answered = threading.Event()

    def serve() -> None:
        first, _ = listener.accept()
        _read_request(first)
        first.sendall(b"HTTP/1.1 200 OK\r\nx-amz-version-id: v1\r\nContent-Length: 0\r\n\r\n")
        answered.wait(5)  # the client has its answer and the connection is idle
        first.sendall(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        first.close()  # as servers do after a 408
        second, _ = listener.accept()
        _read_request(second)
        second.sendall(b"HTTP/1.1 200 OK\r\nx-amz-version-id: v2\r\nContent-Length: 0\r\n\r\n")
        threading.Event().wait(0.5)
        second.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    puts = _fake_puts(listener.getsockname()[1])
    assert puts._send_once("/bucket/a", b"a", {})[1]["x-amz-version-id"] == "v1"
    answered.set()
    threading.Event().wait(0.2)  # the unasked 408 is on the idle connection by now
    status, answer, _ = puts._send_once("/bucket/b", b"b", {})
    assert (status, answer["x-amz-version-id"]) == (200, "v2")
    server.join(5)
    listener.close()


def test_uploads_are_signed_over_their_checksum_not_a_second_hash_of_the_body(
    pair: tuple[ObjectStore, SmallPuts], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, puts = pair
    sent: list[dict[str, str]] = []
    real = http.client.HTTPConnection.request

    def recording(
        self: Any, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        sent.append(dict(headers or {}))
        real(self, method, url, body, headers or {}, **kw)

    monkeypatch.setattr(http.client.HTTPConnection, "request", recording)
    assert puts.put_bytes("s.json", b"{}", lock=_lock(), content_type="application/json").created
    (headers,) = sent
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    signed = re.search(r"SignedHeaders=([^,]+)", headers["Authorization"]).group(1)  # type: ignore[union-attr]
    assert {"x-amz-checksum-sha256", "if-none-match", "x-amz-object-lock-mode"} <= set(
        signed.split(";")
    )
