"""One delivery, from its raw bytes to its answer: signature, evidence, queue.

1. The signature (:mod:`.signature`) on the raw bytes: none that verifies is a 401, nothing
   stored, one log line (size and peer, never the body or the signature).
2. A body delivered before (its row is past ``receiving``) is a duplicate: 200, nothing new.
3. Else its queue row is written (``receiving``), then the object (:mod:`.deliveries`), then
   the row moves on (``stored``; ``ignored`` or ``malformed`` for one with nothing to
   archive), and only then the answer: 200, or 202 for a malformed body (stored, reported).
   An S3 failure forgets the row and answers 503: getbill may deliver it again.

Blocking (SQLite, S3): the HTTP app runs it on a thread of its pool, and counts each
delivery from its request to its answer (:meth:`Intake.arriving`): the archive worker gives
way while any is in flight. The PUT goes through :class:`~archiver.store.smallputs.SmallPuts`
(the store's own request, without boto3's per-call cost) when the client allows it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from archiver.common.time import utcnow
from archiver.errors import StorageError
from archiver.listen.deliveries import Delivery, evidence_headers, store_delivery
from archiver.listen.events import read_hint
from archiver.listen.metrics import ListenMetrics
from archiver.listen.queue import DeliveryQueue
from archiver.listen.settings import ListenSettings
from archiver.listen.signature import SIGNATURE_HEADER, signed_with
from archiver.retention.locks import new_lock
from archiver.retention.policies import AnchorDates, RetentionPolicy
from archiver.store.objects import ObjectStore

__all__ = ["ARRIVAL_GAP_S", "Answer", "Intake"]

log = logging.getLogger(__name__)

# Within a burst, every delivery may be between its answer and the next request for a moment
# (most of all when the process waits for the CPU): that is no end of the burst yet.
ARRIVAL_GAP_S = 0.02


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a delivery."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Intake:
    """Receives deliveries into ``store`` and ``queue``. ``policy``: the configured retention
    policy (the lock of each stored delivery, as a sync's run records get); ``wake`` is
    called when a delivery waits to be archived."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        queue: DeliveryQueue,
        settings: ListenSettings,
        policy: RetentionPolicy,
        metrics: ListenMetrics,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        # The wiring's stores put small objects through SmallPuts (without boto3's per-call
        # cost, a third of it): the PUT is most of a delivery's CPU.
        self.store = store
        self.queue = queue
        self.settings = settings
        self.policy = policy
        self.metrics = metrics
        self._wake = wake
        self._clock = clock
        self._secrets = settings.secrets()
        # Deliveries handled at once: more threads than this only contend for the GIL and
        # the queue's lock (a convoy that slows every one of them); the others wait here.
        self._slots = threading.BoundedSemaphore(settings.intake_threads)
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._last_answer = float("-inf")

    @property
    def busy(self) -> bool:
        """Whether deliveries are being received now, or one was answered within the last
        :data:`ARRIVAL_GAP_S` (the archive worker gives way)."""
        return self._in_flight > 0 or time.monotonic() - self._last_answer < ARRIVAL_GAP_S

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Count one delivery in flight, from its request to its answer (:attr:`busy`); the
        last one out wakes the worker."""
        with self._count_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._in_flight -= 1
                idle = self._in_flight == 0
                self._last_answer = time.monotonic()
            if idle:
                self._wake()

    def receive(self, body: bytes, headers: Iterable[tuple[str, str]], peer: str) -> Answer:
        """Check, store and queue one delivery (see the module docstring)."""
        with self._slots:
            return self._receive(body, list(headers), peer)

    def close(self) -> None:
        """Close the connections kept open to S3."""
        if self.store.small is not None:
            self.store.small.close()

    def _receive(self, body: bytes, pairs: list[tuple[str, str]], peer: str) -> Answer:
        given = next((v for k, v in pairs if k.lower() == SIGNATURE_HEADER.lower()), None)
        secret = signed_with(body, given, self._secrets)
        if secret is None:
            self.metrics.delivery("unauthorized")
            log.warning(
                "refused a webhook from %s: %s signature (%d bytes, nothing stored)",
                peer,
                "no" if not given else "a wrong",
                len(body),
            )
            return Answer(401, {"error": "invalid signature"})
        sha = hashlib.sha256(body).hexdigest()
        now = self._clock()
        ts = now.timestamp()
        hint = read_hint(body)
        seen = self.queue.reserve(sha, ts, hint.event_type, hint.kind, hint.ref)
        if seen is not None and seen != "receiving":
            self.metrics.delivery("duplicate")
            log.info("webhook %s from %s: delivered before (%s)", sha[:12], peer, seen)
            return Answer(200, {"status": "duplicate", "sha256": sha})
        delivery = Delivery(
            body=body,
            headers=evidence_headers(pairs),
            received_at=now,
            signed_with=secret,
            json_ok=hint.json,
            event_type=hint.event_type,
        )
        lock = new_lock(self.policy, "manifest", AnchorDates(archived_at=now), hold=False)
        try:
            created = store_delivery(self.store, delivery, lock)
        except StorageError as exc:
            if seen is None:
                self.queue.forget(sha)
            self.metrics.delivery("store_failed")
            log.error("webhook %s from %s could not be stored: %s", sha[:12], peer, exc)
            return Answer(503, {"error": "not stored; deliver it again"})
        state = {"malformed": "malformed", "none": "ignored"}.get(hint.kind, "stored")
        self.queue.mark_stored(sha, state, ts, hint.event_type, hint.kind, hint.ref)
        if state == "malformed":
            self.metrics.delivery("malformed")
            log.warning(
                "webhook %s from %s is signed but malformed (%s): stored as %s, not archived",
                sha[:12],
                peer,
                hint.reason,
                delivery.key,
            )
            return Answer(202, {"status": "malformed", "sha256": sha, "reason": hint.reason})
        self.metrics.delivery("stored" if created else "duplicate")
        log.info(
            "webhook %s (%s) from %s stored as %s", sha[:12], hint.event_type, peer, delivery.key
        )
        if state == "stored":
            self._wake()
        return Answer(200, {"status": "stored", "sha256": sha})
