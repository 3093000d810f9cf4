"""Retry delays: exponential backoff with equal jitter, one formula for every client."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (1-based).

    The ceiling doubles from ``base`` up to ``maximum``; the delay is drawn uniformly in
    ``[ceiling / 2, ceiling]`` ("equal jitter"): parallel workers do not retry in step after a
    shared outage, and no retry comes back at once.
    """
    ceiling = min(maximum, base * 2 ** max(0, attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)
