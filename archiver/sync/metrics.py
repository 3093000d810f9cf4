"""What a sync run tells Prometheus: a textfile for node_exporter's textfile collector.

Every metric is a gauge describing the last run (``archiver_sync_last_run_*``) or the state it
left (last success time, pending debts); none is a counter, as each run rewrites the whole file.

Labels:

* ``shard`` on every metric: ``"I/N"``, or ``""`` for an unsharded run (Prometheus treats an
  empty label value as no label at all, so an unsharded deployment has no shard label).
* ``mode`` (``window`` / ``full``) on the metrics of the last run only: the last success time
  and the pending debts belong to the shard whichever mode the run had.
* ``kind`` / ``severity`` on the per-kind gauges.

Label values come only from the fixed vocabularies checked by :class:`SyncMetrics` (mode, a
shard ``I/N``, lowercase identifiers for kinds): nothing from a run's data, URLs or settings.

``archiver_sync_last_success_timestamp_seconds`` survives failed runs: a failed run carries the
value of the file it replaces (same shard). When that file is missing, unreadable, garbled or
has no such sample for the shard, there is no known previous success and the metric is
omitted (a ``0`` would claim a success in 1970 or "never", neither of which is known); pair
``time() - archiver_sync_last_success_timestamp_seconds > ...`` with
``absent(archiver_sync_last_success_timestamp_seconds)`` or ``archiver_sync_last_run_success
== 0`` in alerts.

The file is written by ``prometheus_client.write_to_textfile``: to a temporary file beside it,
then renamed over it, so the collector never reads half a file. The name should end in
``.prom``, the only files the collector reads (the temporary one does not).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from archiver.common.problems import Severity
from archiver.errors import ConfigError

__all__ = [
    "LAST_SUCCESS",
    "MODES",
    "OBJECT_KINDS",
    "PREFIX",
    "SEVERITIES",
    "SyncMetrics",
    "previous_success",
    "write_metrics",
]

PREFIX = "archiver_sync_"
LAST_SUCCESS = PREFIX + "last_success_timestamp_seconds"
MODES = ("window", "full")
# Always written, at 0 when a run stored none, so every series exists from the first run on
# (a series that appears only when non-zero breaks rate and absence alerts).
OBJECT_KINDS = ("record", "audio", "pdf", "manifest", "debt", "run_record", "dossier")
SEVERITIES: tuple[str, ...] = get_args(Severity)

_SHARD = re.compile(r"^(0|[1-9][0-9]{0,5})/([1-9][0-9]{0,5})$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Our own file is a few kilobytes; anything far larger at the path is not ours to parse.
_MAX_PREVIOUS_BYTES = 1 << 20


@dataclass(frozen=True)
class SyncMetrics:
    """The facts of one finished sync run, as the metrics file reports them.

    Raises :class:`ValueError` for a value that cannot become a metric or a safe label: a naive
    ``finished_at``, an unknown mode, a shard that is not ``I/N``, a kind that is not a short
    lowercase identifier.
    """

    finished_at: datetime  # aware
    success: bool  # the run ended complete (exit 0)
    exit_code: int
    mode: str  # "window" or "full"
    shard: str | None  # "I/N" (0-based) or None
    requests_by_kind: Mapping[str, int]
    requests_left: int | None  # budget left at the end; None: unknown (metric omitted)
    objects_stored: Mapping[str, int]  # by kind, see OBJECT_KINDS
    bytes_stored: int
    debts_touched: int
    followups_seen: int
    problems_by_severity: Mapping[str, int]  # "error", "warning", "notice"
    pending_debts: int  # what the next run has to finish
    duration_seconds: float

    def __post_init__(self) -> None:
        if self.finished_at.tzinfo is None or self.finished_at.utcoffset() is None:
            raise ValueError("finished_at must be timezone-aware")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.shard is not None:
            match = _SHARD.match(self.shard)
            if match is None or int(match[1]) >= int(match[2]):
                raise ValueError(f"shard must be I/N with 0 <= I < N, not {self.shard!r}")
        for what, mapping in (
            ("a request kind", self.requests_by_kind),
            ("an object kind", self.objects_stored),
            ("a problem severity", self.problems_by_severity),
        ):
            for kind in mapping:
                if not _KIND.match(kind):
                    raise ValueError(f"{what} must be a lowercase identifier, not {kind!r}")

    @property
    def shard_label(self) -> str:
        """The ``shard`` label value: ``""`` when unsharded."""
        return self.shard or ""


def previous_success(path: Path, shard: str | None) -> float | None:
    """The last success time (Unix seconds) recorded for ``shard`` in the metrics file at
    ``path``, or ``None`` when there is none to trust: no file, unreadable, not UTF-8, larger
    than any file we write, not the text format, no sample for this shard, or not a finite
    positive number."""
    try:
        if path.stat().st_size > _MAX_PREVIOUS_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    wanted = shard or ""
    found: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and sample.labels.get("shard", "") == wanted:
                    found = float(sample.value)
    # The parser raises ValueError on most malformed input but not only that (IndexError on
    # some); a garbled file must never cost the run its metrics.
    except Exception:
        return None
    if found is None or not math.isfinite(found) or found <= 0:
        return None
    return found


def _registry(metrics: SyncMetrics, last_success: float | None) -> CollectorRegistry:
    """The metrics of one run as a registry of gauges (pure: no I/O)."""
    registry = CollectorRegistry()
    run_labels = ("mode", "shard")
    run = {"mode": metrics.mode, "shard": metrics.shard_label}
    shard = {"shard": metrics.shard_label}

    def gauge(name: str, help_text: str, labels: tuple[str, ...] = run_labels) -> Gauge:
        return Gauge(PREFIX + name, help_text, labelnames=labels, registry=registry)

    gauge("last_run_timestamp_seconds", "When the last sync run ended (Unix time).").labels(
        **run
    ).set(metrics.finished_at.timestamp())
    if last_success is not None:
        gauge(
            "last_success_timestamp_seconds",
            "When the last complete sync run (exit code 0) of this shard ended (Unix time); "
            "kept across failed runs.",
            ("shard",),
        ).labels(**shard).set(last_success)
    gauge(
        "last_run_exit_code",
        "Exit code of the last sync run: 0 complete, 1 failure, 2 configuration error, "
        "3 partial (the next run resumes).",
    ).labels(**run).set(metrics.exit_code)
    gauge(
        "last_run_success", "1 if the last sync run ended complete (exit code 0), else 0."
    ).labels(**run).set(1 if metrics.success else 0)
    gauge("last_run_duration_seconds", "How long the last sync run took.").labels(**run).set(
        metrics.duration_seconds
    )

    requests = gauge(
        "last_run_requests",
        "getbill API requests the last sync run made, by kind.",
        ("kind", *run_labels),
    )
    for kind, count in sorted(metrics.requests_by_kind.items()):
        requests.labels(kind=kind, **run).set(count)
    if metrics.requests_left is not None:
        gauge(
            "last_run_requests_left",
            "getbill API requests left in the budget when the last sync run ended.",
        ).labels(**run).set(metrics.requests_left)

    objects = gauge(
        "last_run_objects_stored",
        "Objects the last sync run stored in S3, by kind.",
        ("kind", *run_labels),
    )
    for kind in sorted({*OBJECT_KINDS, *metrics.objects_stored}):
        objects.labels(kind=kind, **run).set(metrics.objects_stored.get(kind, 0))
    gauge("last_run_stored_bytes", "Bytes the last sync run stored in S3.").labels(**run).set(
        metrics.bytes_stored
    )
    gauge("last_run_debts_touched", "Debts the last sync run worked on.").labels(**run).set(
        metrics.debts_touched
    )
    gauge("last_run_followups_seen", "Followups the last sync run listed from getbill.").labels(
        **run
    ).set(metrics.followups_seen)

    problems = gauge(
        "last_run_problems",
        "Problems the last sync run reported, by severity.",
        ("severity", *run_labels),
    )
    for severity in sorted({*SEVERITIES, *metrics.problems_by_severity}):
        problems.labels(severity=severity, **run).set(metrics.problems_by_severity.get(severity, 0))

    gauge(
        "pending_debts",
        "Debts of this shard left for the next sync run to finish.",
        ("shard",),
    ).labels(**shard).set(metrics.pending_debts)
    return registry


def write_metrics(path: Path, metrics: SyncMetrics) -> None:
    """Write ``metrics`` to ``path`` in the Prometheus text format, atomically (a temporary file
    in the same folder renamed over ``path``).

    The last success time is ``metrics.finished_at`` when the run succeeded, else the one the
    file at ``path`` already holds for the same shard (omitted when there is none).

    Raises :class:`ConfigError` naming the path when its folder does not exist or the file
    cannot be written (no permission, a folder at that path, ...).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(
            f"the folder of the metrics file does not exist: {path.parent}",
            metrics_file=str(path),
        )
    if metrics.success:
        last_success: float | None = metrics.finished_at.timestamp()
    else:
        last_success = previous_success(path, metrics.shard)
    registry = _registry(metrics, last_success)
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the metrics file: {exc.strerror or exc}", metrics_file=str(path)
        ) from exc
