"""The sync metrics file: Prometheus text format for node_exporter's textfile collector,
written atomically, keeping the last success time across failed runs."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from archiver.errors import ConfigError
from archiver.sync.metrics import LAST_SUCCESS, SyncMetrics, previous_success, write_metrics

T0 = datetime(2026, 3, 1, 4, 30, 15, 123456, tzinfo=UTC)
RUN = {"mode": "window", "shard": "2/4"}


def make(**changes: Any) -> SyncMetrics:
    base = SyncMetrics(
        finished_at=T0,
        success=True,
        exit_code=0,
        mode="window",
        shard="2/4",
        requests_by_kind={"token": 1, "followups_listing": 100, "debt": 3, "refresh": 2},
        requests_left=894,
        objects_stored={"record": 12, "audio": 5, "manifest": 3},
        bytes_stored=7_340_032,
        debts_touched=3,
        followups_seen=250,
        problems_by_severity={"warning": 2},
        pending_debts=0,
        duration_seconds=42.5,
    )
    return dataclasses.replace(base, **changes)


def samples(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the file: (name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(path: Path, name: str, **labels: str) -> float | None:
    return samples(path).get(("archiver_sync_" + name, frozenset(labels.items())))


def test_every_metric_reads_back_with_its_labels(tmp_path: Path) -> None:
    path = tmp_path / "archiver_sync.prom"
    write_metrics(path, make())
    got = samples(path)
    ts = T0.timestamp()

    def at(name: str, **labels: str) -> float:
        return got[("archiver_sync_" + name, frozenset(labels.items()))]

    assert at("last_run_timestamp_seconds", **RUN) == ts
    assert at("last_success_timestamp_seconds", shard="2/4") == ts
    assert at("last_run_exit_code", **RUN) == 0
    assert at("last_run_success", **RUN) == 1
    assert at("last_run_duration_seconds", **RUN) == 42.5
    assert at("last_run_requests", kind="followups_listing", **RUN) == 100
    assert at("last_run_requests", kind="token", **RUN) == 1
    assert at("last_run_requests", kind="debt", **RUN) == 3
    assert at("last_run_requests", kind="refresh", **RUN) == 2
    assert at("last_run_requests_left", **RUN) == 894
    assert at("last_run_objects_stored", kind="record", **RUN) == 12
    assert at("last_run_objects_stored", kind="audio", **RUN) == 5
    assert at("last_run_stored_bytes", **RUN) == 7_340_032
    assert at("last_run_debts_touched", **RUN) == 3
    assert at("last_run_followups_seen", **RUN) == 250
    assert at("last_run_problems", severity="warning", **RUN) == 2
    assert at("pending_debts", shard="2/4") == 0
    assert len(got) == 24  # 4 requests, 7 object kinds, 3 severities, 10 single gauges


def test_every_family_is_a_gauge_with_help_and_a_conventional_name(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make())
    families = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
    assert len(families) == 13
    for family in families:
        assert family.type == "gauge", family.name
        assert family.name.startswith("archiver_sync_")
        assert not family.name.endswith("_total")  # gauges of the last run, not counters
        assert len(family.documentation) > 10, family.name
    text = path.read_text(encoding="utf-8")
    assert text.count("# HELP ") == 13 and text.count("# TYPE ") == 13


def test_labels_are_only_the_fixed_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make())
    allowed_values = {"window", "2/4", "token", "followups_listing", "debt", "refresh"}
    allowed_values |= {"record", "audio", "pdf", "manifest", "run_record", "dossier"}
    allowed_values |= {"error", "warning", "notice"}
    for _name, labels in samples(path):
        for label, label_value in labels:
            assert label in {"mode", "shard", "kind", "severity"}
            assert label_value in allowed_values


def test_every_object_kind_and_severity_is_present_at_zero(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make(objects_stored={}, problems_by_severity={}))
    for kind in ("record", "audio", "pdf", "manifest", "debt", "run_record", "dossier"):
        assert value(path, "last_run_objects_stored", kind=kind, **RUN) == 0
    for severity in ("error", "warning"):
        assert value(path, "last_run_problems", severity=severity, **RUN) == 0


def test_unsharded_run_has_an_empty_shard_label_and_unknown_budget_is_omitted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make(shard=None, mode="full", requests_left=None))
    assert value(path, "last_run_success", mode="full", shard="") == 1
    assert value(path, "last_success_timestamp_seconds", shard="") == T0.timestamp()
    assert not any(name.endswith("requests_left") for name, _ in samples(path))


def test_last_success_survives_a_failed_run_and_moves_on_the_next_success(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make())
    t1 = T0 + timedelta(hours=1)
    write_metrics(path, make(finished_at=t1, success=False, exit_code=3, pending_debts=7))
    assert value(path, "last_success_timestamp_seconds", shard="2/4") == T0.timestamp()
    assert value(path, "last_run_timestamp_seconds", **RUN) == t1.timestamp()
    assert value(path, "last_run_success", **RUN) == 0
    assert value(path, "last_run_exit_code", **RUN) == 3
    assert value(path, "pending_debts", shard="2/4") == 7

    t2 = T0 + timedelta(hours=2)
    write_metrics(path, make(finished_at=t2, success=False, exit_code=1))
    assert value(path, "last_success_timestamp_seconds", shard="2/4") == T0.timestamp()

    t3 = T0 + timedelta(hours=3)
    write_metrics(path, make(finished_at=t3))
    assert value(path, "last_success_timestamp_seconds", shard="2/4") == t3.timestamp()


def test_a_failed_first_run_has_no_last_success(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make(success=False, exit_code=1))
    assert not any(name == LAST_SUCCESS for name, _ in samples(path))
    assert value(path, "last_run_success", **RUN) == 0


def test_another_shards_success_is_not_carried(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make(shard="1/4"))
    write_metrics(path, make(success=False, exit_code=1))
    assert not any(name == LAST_SUCCESS for name, _ in samples(path))


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00garbage\x00",  # not UTF-8
        b"this is { not the text format\n",
        # a good success sample, then a line the parser fails on with IndexError
        b'archiver_sync_last_success_timestamp_seconds{shard="2/4"} 1.7e9\nfoo{x="y", ="w"} 3\n',
        b'archiver_sync_last_success_timestamp_seconds{shard="2/4"} NaN\n',
        b'archiver_sync_last_success_timestamp_seconds{shard="2/4"} -5\n',
        b"",
    ],
)
def test_a_garbled_previous_file_means_no_previous_success(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.prom"
    path.write_bytes(content)
    write_metrics(path, make(success=False, exit_code=1))
    assert not any(name == LAST_SUCCESS for name, _ in samples(path))
    assert value(path, "last_run_exit_code", **RUN) == 1


def test_a_hand_written_previous_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text(
        "# TYPE archiver_sync_last_success_timestamp_seconds gauge\n"
        'archiver_sync_last_success_timestamp_seconds{shard="2/4"} 1.7e+09\n',
        encoding="utf-8",
    )
    assert previous_success(path, "2/4") == 1.7e9
    assert previous_success(path, "0/4") is None
    assert previous_success(tmp_path / "absent.prom", "2/4") is None


def test_the_file_is_replaced_by_rename_leaving_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make())
    with path.open("rb") as before:
        old = before.read()
        write_metrics(path, make(finished_at=T0 + timedelta(hours=1), success=False, exit_code=1))
        # A reader that opened the old file still sees it whole: the new one was renamed over
        # it, never written into it.
        before.seek(0)
        assert before.read() == old
    assert path.read_bytes() != old
    assert sorted(os.listdir(tmp_path)) == ["m.prom"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.prom"
    write_metrics(path, make())
    old = path.read_bytes()

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", refuse)
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ConfigError) as caught:
        write_metrics(path, make(success=False, exit_code=1))
    assert str(path) in str(caught.value)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["m.prom"]


def test_a_missing_folder_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "m.prom"
    with pytest.raises(ConfigError) as caught:
        write_metrics(path, make())
    assert str(path) in str(caught.value)
    assert caught.value.context["metrics_file"] == str(path)
    assert not (tmp_path / "no").exists()


def test_a_folder_at_the_path_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.mkdir()
    with pytest.raises(ConfigError) as caught:
        write_metrics(path, make(success=False, exit_code=1))
    assert str(path) in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["m.prom"]


@pytest.mark.parametrize(
    "changes",
    [
        {"finished_at": datetime(2026, 3, 1, 4, 30)},  # naive
        {"mode": "fast"},
        {"shard": "4/4"},
        {"shard": "x/4"},
        {"shard": "secret-token"},
        {"requests_by_kind": {"https://api.getbill.io/x?token=abc": 1}},
        {"objects_stored": {"Audio File": 1}},
        {"problems_by_severity": {'error"} 1\nfake': 1}},
    ],
)
def test_values_that_cannot_be_safe_labels_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make(**changes)
