"""``archiver listen`` as a running service: the :class:`Listener` (intake, queue, worker,
app) and :class:`ListenServer` (uvicorn on a socket).

uvicorn serves HTTP/1.1 through httptools (llhttp, in C) on uvloop: per delivery, h11's pure
Python parsing and asyncio's loop cost more CPU than storing the delivery does. Headers at
most 16 KiB (else 400, closed), at most ``max_connections`` connections at once (503
beyond), idle keep-alive connections closed after ``keep_alive_s``. uvicorn has no deadline
of its own for a request's headers, so a client could dribble them forever (slow loris):
:func:`guarded_protocol` closes a connection that has not sent a complete request head within
``header_timeout_s``; the app bounds the body's time. Each connection is a coroutine on one
event loop: a slow client holds no thread and delays no other delivery.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from archiver.listen.app import create_app
from archiver.listen.deliveries import delivery_key
from archiver.listen.intake import Intake
from archiver.listen.metrics import ListenMetrics
from archiver.listen.queue import DeliveryQueue
from archiver.listen.settings import ListenSettings
from archiver.listen.worker import ArchiveWorker, SessionFactory
from archiver.retention.policies import RetentionPolicy
from archiver.store.objects import ObjectStore

__all__ = ["ListenServer", "Listener", "guarded_protocol"]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
_TERMINAL = {"malformed": "malformed", "none": "ignored"}


def guarded_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (httptools), closing a connection whose request head is
    not complete ``header_timeout_s`` after it opened or after its last response, and
    answering 400 (then closing) a head over :data:`MAX_HEADER_BYTES`."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        # httptools has no limit of its own on a head's size (h11 had): the bytes of a head
        # still incomplete, and those of its URL and header lines once parsed, are counted.
        _raw_head = 0
        _head = 0
        _in_head = True
        _heads = 0  # heads completed on this connection

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            in_head, heads = self._in_head, self._heads
            super().data_received(data)
            # Only a chunk wholly inside one head still incomplete counts: one that ended a
            # head, or a body, may hold a body's bytes.
            if in_head and self._in_head and heads == self._heads and self.parser is not None:
                self._raw_head += len(data)
                if self._raw_head > MAX_HEADER_BYTES:
                    self._in_head = False
                    self.send_400_response("Request header fields too large.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head = 0

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count(self, size: int) -> None:
            self._head += size
            if self._head > MAX_HEADER_BYTES:
                # Raised inside the parser: uvicorn answers 400 and closes the connection.
                raise ValueError("request head too large")

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._raw_head = 0
            self._heads += 1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            # A request whose head arrived has a cycle in progress: the app times its body.
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol


class Listener:
    """Receives deliveries and archives what they hint at. ``open_session`` opens the archive
    session on the worker's thread (:func:`archiver.wiring.open_listener` builds it)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        queue: DeliveryQueue,
        settings: ListenSettings,
        policy: RetentionPolicy,
        open_session: SessionFactory,
    ) -> None:
        self.store = store
        self.queue = queue
        self.settings = settings
        self.metrics = ListenMetrics(queue.counts)
        self.worker = ArchiveWorker(
            queue=queue,
            open_session=open_session,
            settings=settings,
            metrics=self.metrics,
            busy=lambda: self.intake.busy,
        )
        self.intake = Intake(
            store=store,
            queue=queue,
            settings=settings,
            policy=policy,
            metrics=self.metrics,
            wake=self.worker.wake,
        )
        self._threads = ThreadPoolExecutor(settings.intake_threads, "listen-intake")
        self.app = create_app(self.intake, settings, self.metrics, self.health, self._threads)

    def recover(self) -> int:
        """Settle the rows of PUTs a crash interrupted: kept if the object exists, else
        forgotten (no 200 was sent). Returns how many were kept."""
        kept = 0
        for row in self.queue.receiving():
            if self.store.head(delivery_key(row.sha256)) is None:
                self.queue.forget(row.sha256)
                continue
            state = _TERMINAL.get(row.hint_kind or "", "stored")
            self.queue.mark_stored(
                row.sha256,
                state,
                row.received_ts,
                row.event_type,
                row.hint_kind or "",
                row.hint_ref,
            )
            kept += 1
        return kept

    def start(self) -> None:
        """Recover, then start the worker (deliveries stored before a crash are picked up)."""
        self.store.check_bucket()
        kept = self.recover()
        waiting = self.queue.waiting()
        if waiting:
            log.info(
                "%d delivery(ies) from before wait to be archived (%d recovered)", waiting, kept
            )
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self._threads.shutdown(wait=True)
        self.intake.close()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(ok, details)`` for ``/healthz``."""
        try:
            counts = self.queue.counts()
        except Exception as exc:  # noqa: BLE001 - the answer says what failed
            return False, {"status": "queue unreadable", "error": type(exc).__name__}
        worker = "running" if self.worker.alive else "stopped"
        if self.worker.error is not None:
            worker = f"stopped: {self.worker.error}"
        ok = self.worker.alive
        return ok, {"status": "ok" if ok else "unhealthy", "worker": worker, "queue": counts}


class ListenServer:
    """The listener on ``host:port`` (0: any free port; :attr:`url` says which)."""

    def __init__(self, listener: Listener, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.listener = listener
        s = listener.settings
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.port = int(self.socket.getsockname()[1])
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{self.port}"
        config = uvicorn.Config(
            listener.app,
            http=guarded_protocol(s.header_timeout_s),
            loop="auto",  # uvloop where it installs (not on Windows), else asyncio's
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=s.keep_alive_s,
            limit_concurrency=s.max_connections,
            timeout_graceful_shutdown=30,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's graceful shutdown), then stop the worker
        (archives in progress end) and return: a stop asked for is a normal end."""
        self.listener.start()
        # uvicorn raises the signal that stopped it again once it is done, to the handler it
        # found: let that be one that ignores it, so the worker is stopped cleanly too.
        previous = {
            sig: signal.signal(sig, lambda number, frame: None)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.server.run(sockets=[self.socket])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.listener.stop()
            self.socket.close()

    def start(self, timeout: float = 30.0) -> ListenServer:
        """Serve in a background thread (tests, benchmarks); returns once serving."""
        self.listener.start()
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the listener did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving, then the worker."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=40)
            self._thread = None
        self.listener.stop()
        self.socket.close()

    def __enter__(self) -> ListenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
