"""The listener's share of the getbill budget: never spend into the reserve.

The listener and ``archiver sync`` use the same OAuth client, so the same hour of requests.
Both read ``X-RateLimit-Remaining`` (what the server says is left of it, whoever spent it) and
keep a reserve (:mod:`archiver.sync.budget`): a sync stops at :func:`default_reserve`, the
listener at the smaller :func:`listener_reserve`. Unlike a sync, the listener does not end
when its share is spent: it waits for the window to reset (``X-RateLimit-Reset``) while
deliveries are still stored and acknowledged, then archives them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from archiver.errors import BudgetExhaustedError
from archiver.getbill.ratelimit import RateLimitState
from archiver.sync.budget import listener_reserve

__all__ = ["ReserveGate"]

# Longest single sleep: a stop is noticed within this.
_SLEEP_STEP_S = 1.0


class ReserveGate:
    """A request gate (:attr:`archiver.getbill.http.ApiHttp.gate`) over the client's
    rate-limit state ``rate``: a request goes when more than the reserve is left, counting
    those sent since the last answer; else it waits for the window's reset. ``stop`` ends a
    wait with :class:`BudgetExhaustedError` (the request is not sent). ``on_wait`` is told
    each wait (seconds, requests left)."""

    def __init__(
        self,
        rate: RateLimitState,
        *,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        on_wait: Callable[[float, int], None] | None = None,
    ) -> None:
        self._rate = rate
        self._stop = stop
        self._clock = clock
        self._on_wait = on_wait
        self._lock = threading.Lock()
        self._answer_seen: float | None = None
        self._sent_since = 0
        self.waits = 0

    def __call__(self, path: str) -> None:
        told = False
        while True:
            wait, left = self._admit()
            if wait is None:
                return
            if not told:
                told = True
                self.waits += 1
                if self._on_wait is not None:
                    self._on_wait(wait, left)
            if self._stop.wait(min(wait, _SLEEP_STEP_S)):
                raise BudgetExhaustedError(
                    "the listener is stopping: request not sent, the delivery waits in the queue",
                    path=path,
                )

    def _admit(self) -> tuple[float | None, int]:
        """``(None, left)`` to send now, else ``(seconds to wait, left)``."""
        with self._lock:
            state = self._rate
            if state.updated_at != self._answer_seen:
                self._answer_seen = state.updated_at
                self._sent_since = 0
            if state.remaining is None:
                self._sent_since += 1
                return None, -1
            left = state.remaining - self._sent_since
            if left > listener_reserve(state.limit):
                self._sent_since += 1
                return None, left
            wait = (state.reset_at or 0.0) - self._clock()
            if wait <= 0:
                # The window has reset since that answer: the next answer says what is left.
                self._sent_since += 1
                return None, left
            return wait, left
