"""What ``archiver listen`` tells Prometheus on ``GET /metrics`` (prefix ``archiver_listen_``).

* ``deliveries_total{outcome}``: every POST by what became of it: ``stored``, ``duplicate``,
  ``malformed`` (stored, 202), ``unauthorized`` (401), ``too_large`` (413),
  ``unsupported_media_type`` (415), ``timeout`` (408), ``store_failed`` (503);
* ``archives_total{status}``: debt archives by result (``archived``, ``unchanged``,
  ``partial``, ``failed``), ``resolve_failures_total``: deliveries whose followup the API
  would not give;
* ``delivery_to_archive_seconds``: from a delivery's receipt to its debt's manifest stored;
* ``queue_deliveries{state}``: rows of the queue file by state (``stored`` and ``resolved``
  wait to be archived), ``in_memory``: those the worker holds now (at most its capacity);
* ``budget_waits_total``: times the worker waited for getbill's window to reset,
  ``api_requests_remaining``: the last ``X-RateLimit-Remaining`` seen;
* ``worker_up``: 1 while the archive worker runs.

Label values come from those fixed vocabularies only: nothing of a payload reaches a label.
Its own registry (not the process-wide default), so two listeners in one process (tests)
never share series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "OUTCOMES", "ListenMetrics"]

PREFIX = "archiver_listen_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = (
    "stored",
    "duplicate",
    "malformed",
    "unauthorized",
    "too_large",
    "unsupported_media_type",
    "timeout",
    "store_failed",
)
ARCHIVE_STATUSES = ("archived", "unchanged", "partial", "failed")
_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600)


class _QueueCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            PREFIX + "queue_deliveries", "Deliveries in the queue file, by state", labels=["state"]
        )
        for state, count in self._counts().items():
            family.add_metric([state], count)
        yield family


class ListenMetrics:
    """The listener's series; ``queue_counts`` is read at each scrape."""

    def __init__(self, queue_counts: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            PREFIX + "deliveries", "Webhook POSTs by outcome", ["outcome"], registry=r
        )
        for outcome in OUTCOMES:
            self.deliveries.labels(outcome)
        self.archives = Counter(
            PREFIX + "archives", "Debt archives by status", ["status"], registry=r
        )
        for status in ARCHIVE_STATUSES:
            self.archives.labels(status)
        self.resolve_failures = Counter(
            PREFIX + "resolve_failures",
            "Deliveries whose followup the API would not give",
            registry=r,
        )
        self.latency = Histogram(
            PREFIX + "delivery_to_archive_seconds",
            "From a delivery's receipt to its debt's manifest stored",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_memory = Gauge(
            PREFIX + "in_memory", "Deliveries the worker holds in memory now", registry=r
        )
        self.budget_waits = Counter(
            PREFIX + "budget_waits", "Waits for getbill's rate-limit window to reset", registry=r
        )
        self.remaining = Gauge(
            PREFIX + "api_requests_remaining", "The last X-RateLimit-Remaining seen", registry=r
        )
        self.worker_up = Gauge(PREFIX + "worker_up", "1 while the archive worker runs", registry=r)
        r.register(_QueueCollector(queue_counts))

    def delivery(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()

    def exposition(self) -> bytes:
        """The text format of every series."""
        return generate_latest(self.registry)
