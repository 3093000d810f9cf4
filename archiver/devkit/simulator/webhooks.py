"""The simulator's webhooks: signed POSTs of followup events, as getbill sends them.

When ``config.webhook_url`` is set, each followup the simulator creates or changes
(:meth:`~.state.SimulatorState.add_followup`, ``update_followup``, ``set_followup_status``,
``set_email_counters``, ``insert_at_top``) is posted there as
``{"type": ..., "data": {the followup as the API serves it}, "changes": {field: {"from",
"to"}}}`` with ``X-GetBill-Signature`` = hex HMAC-SHA256 of the body keyed with
``config.webhook_secret``. Types: ``followup.created``; ``followup.completed`` /
``followup.failed`` when the status becomes a final one; ``followup.updated`` otherwise.

POSTs go one at a time from a background thread, in event order, so a mutation never waits
for the receiver. Knobs (read at each event): ``webhook_duplicates`` sends every delivery that
many extra times; ``webhook_bad_signature_rate`` signs that share of deliveries with a wrong
key (deterministic from the seed). :attr:`WebhookSender.sent` records each POST's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archiver.devkit.simulator.config import SimulatorConfig
    from archiver.devkit.simulator.state import SimulatorState

__all__ = [
    "FINAL_FAILED",
    "FINAL_OK",
    "SentWebhook",
    "WebhookSender",
    "event_type_for",
    "start_activity",
]

FINAL_OK = frozenset({"deal_found", "deal_not_found", "delivered", "sent", "bad_behavior"})
FINAL_FAILED = frozenset({"failed", "no_answer", "cancelled"})
SIGNATURE_HEADER = "X-GetBill-Signature"


def event_type_for(changes: dict[str, Any]) -> str:
    """The type of an update event: by the new status when it is a final one."""
    status = (changes.get("status") or {}).get("to")
    if status in FINAL_FAILED:
        return "followup.failed"
    if status in FINAL_OK:
        return "followup.completed"
    return "followup.updated"


@dataclass(frozen=True)
class SentWebhook:
    """One POST: the event, whether it was signed right, the HTTP status (0: no answer)."""

    event_type: str
    body_sha256: str
    good_signature: bool
    status: int


class WebhookSender:
    """Posts the events of one simulator (see the module docstring)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.sent: list[SentWebhook] = []
        self._queue: queue.Queue[tuple[str, str, bytes, bool] | None] = queue.Queue()
        self._rng = random.Random(f"getbill-sim-webhooks:{config.seed}")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def send(
        self, event_type: str, data: dict[str, Any], changes: dict[str, Any] | None = None
    ) -> None:
        """Queue one event for ``config.webhook_url`` (nothing when no URL is set)."""
        url = self.config.webhook_url
        if not url:
            return
        body = json.dumps(
            {"type": event_type, "data": data, "changes": changes or {}}, separators=(",", ":")
        ).encode("utf-8")
        with self._lock:
            copies = 1 + max(0, int(self.config.webhook_duplicates))
            for _ in range(copies):
                bad = self._rng.random() < self.config.webhook_bad_signature_rate
                self._queue.put((url, event_type, body, bad))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._post_all, name="getbill-simulator-webhooks", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is posted; False if ``timeout`` passed first."""
        done = threading.Event()

        def wait_for_queue() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait_for_queue, daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        """Stop the sending thread once the queue is empty."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def _post_all(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._post(*item)
            finally:
                self._queue.task_done()

    def _post(self, url: str, event_type: str, body: bytes, bad: bool) -> None:
        secret = self.config.webhook_secret or ""
        key = (secret + "-wrong" if bad else secret).encode("utf-8")
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "getbill-simulator-webhooks",
                SIGNATURE_HEADER: signature,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - ours
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        sha = hashlib.sha256(body).hexdigest()
        with self._lock:
            self.sent.append(SentWebhook(event_type, sha, not bad, status))


def start_activity(sim: SimulatorState, every_s: float) -> threading.Event:
    """Every ``every_s`` seconds, a new call with a recording on one of company A's debts
    (in turn), then its status moves on: events for the webhooks of a running simulator.
    Returns the event that stops it."""
    stop = threading.Event()
    debts = sim.debt_ids("A")

    def act() -> None:
        turn = 0
        while debts and not stop.wait(every_s):
            record = sim.add_followup(debts[turn % len(debts)], status="in_progress", media=True)
            if not stop.wait(every_s / 2):
                sim.set_followup_status(record["id"], "deal_found")
            turn += 1

    threading.Thread(target=act, name="getbill-simulator-activity", daemon=True).start()
    return stop
