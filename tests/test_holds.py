"""Legal holds against the real SeaweedFS: every version held, events written, idempotent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner
from fixtures.retention import seed_debt, ticking_clock, versions_of

from archiver.catalog.db import Catalog
from archiver.cli.retention_cmds import register
from archiver.common.canonical import canonical_sha256
from archiver.common.time import compact_stamp, iso
from archiver.dossier.load import events_until
from archiver.errors import RetentionError, StorageError, UnsafeIdError, ValidationError
from archiver.retention.events import (
    EVENT_SCHEMA,
    event_lock,
    hold_open,
    purged_versions,
    read_events,
    write_event,
)
from archiver.retention.holds import hold_active, place_hold, release_hold
from archiver.store.objects import ObjectStore

pytestmark = pytest.mark.integration


def holds_of(store: ObjectStore, debt_id: str) -> dict[tuple[str, str | None], bool]:
    out = {}
    for key, vid in versions_of(store, debt_id):
        lock = store.get_lock(key, vid)
        out[(key, vid)] = bool(lock and lock.legal_hold)
    return out


# ---------------------------------------------------------------------------------------------
# Hold


def test_hold_puts_legal_hold_on_every_version_and_writes_the_event(
    locked_bucket: ObjectStore,
) -> None:
    seeded = seed_debt(locked_bucket)
    seed_debt(locked_bucket, "D-2")  # another debt: must stay untouched
    catalog = Catalog.open(":memory:")
    clock = ticking_clock()

    result = place_hold(
        locked_bucket, "D-1", reason="Complaint 118", actor="j.doe", clock=clock, catalog=catalog
    )

    assert result.ok and result.event_written and not result.already
    assert result.event_key is not None
    assert result.event_key.startswith("debts/D-1/events/") and result.event_key.endswith(
        "-hold.json"
    )
    holds = holds_of(locked_bucket, "D-1")
    # 4 data objects + 2 manifests + the event itself, all held
    assert len(holds) == len(seeded.objects) + 1 == 7
    assert all(holds.values()), holds
    assert not any(holds_of(locked_bucket, "D-2").values())
    assert len(result.versions) == 7

    event = json.loads(locked_bucket.read_bytes(result.event_key))
    assert event["schema"] == EVENT_SCHEMA
    assert event["action"] == "hold" and event["debt_id"] == "D-1"
    assert event["reason"] == "Complaint 118" and event["actor"] == "j.doe"
    assert event["at"].endswith("Z")
    assert event["objects"] == 6
    assert sorted((v["key"], v["version_id"]) for v in event["versions"]) == sorted(
        (o["key"], o["version_id"]) for o in seeded.objects
    )
    # Canonical, checksummed, locked like evidence, and itself held.
    data = locked_bucket.read_bytes(result.event_key)
    assert data == canonical_sha256(event)[0]
    info = locked_bucket.head(result.event_key)
    assert info is not None and info.sha256 == result.event_sha256
    assert info.lock_mode == "GOVERNANCE" and info.legal_hold
    assert info.retain_until is not None
    assert info.retain_until > datetime.now(UTC) + timedelta(days=5 * 365)

    assert hold_active(locked_bucket, "D-1") and not hold_active(locked_bucket, "D-2")
    assert catalog.db["events"].count == 1
    row = next(iter(catalog.db["events"].rows))
    assert (row["action"], row["debt_id"], row["key"]) == ("hold", "D-1", result.event_key)


def test_held_object_cannot_be_deleted_even_with_governance_bypass(
    locked_bucket: ObjectStore,
) -> None:
    seeded = seed_debt(locked_bucket, manifests=1)
    place_hold(locked_bucket, "D-1", reason="dispute", actor="ops")
    target = seeded.objects[0]
    with pytest.raises(RetentionError) as err:
        locked_bucket.delete_version(target["key"], target["version_id"], bypass_governance=True)
    assert target["key"] in str(err.value)
    assert locked_bucket.head(target["key"], target["version_id"]) is not None


def test_release_lifts_every_hold_and_writes_the_event(locked_bucket: ObjectStore) -> None:
    seed_debt(locked_bucket, manifests=1)
    clock = ticking_clock()
    held = place_hold(locked_bucket, "D-1", reason="dispute", actor="ops", clock=clock)
    released = release_hold(locked_bucket, "D-1", reason="dispute closed", actor="ops", clock=clock)

    assert released.ok and released.event_written and released.event_key
    assert released.event_key.endswith("-release.json")
    holds = holds_of(locked_bucket, "D-1")
    # Every version, the hold event included, is free again; the release event never held.
    assert holds and not any(holds.values()), holds
    assert held.event_key in {k for k, _ in holds}
    assert not hold_active(locked_bucket, "D-1")

    event = json.loads(locked_bucket.read_bytes(released.event_key))
    assert event["action"] == "release" and event["reason"] == "dispute closed"
    assert {v["key"] for v in event["versions"]} >= {held.event_key}
    info = locked_bucket.head(released.event_key)
    assert info is not None and not info.legal_hold and info.lock_mode == "GOVERNANCE"

    # Once released a version is deletable by governance bypass again (retention only).
    record_key = next(k for k, _ in holds if "/records/" in k)
    vid = next(v for k, v in holds if k == record_key)
    locked_bucket.delete_version(record_key, vid, bypass_governance=True)  # type: ignore[arg-type]
    assert locked_bucket.head(record_key, vid) is None

    events = read_events(locked_bucket, "D-1")
    assert [e["action"] for e in events] == ["hold", "release"]
    assert [e["key"] for e in events] == [held.event_key, released.event_key]


def test_hold_active_flips_and_hold_twice_is_idempotent(locked_bucket: ObjectStore) -> None:
    seed_debt(locked_bucket, manifests=1)
    clock = ticking_clock()
    assert not hold_active(locked_bucket, "D-1")

    first = place_hold(locked_bucket, "D-1", reason="dispute", actor="ops", clock=clock)
    assert hold_active(locked_bucket, "D-1")
    before = versions_of(locked_bucket, "D-1")
    second = place_hold(locked_bucket, "D-1", reason="dispute again", actor="ops", clock=clock)

    assert second.ok and second.already and not second.event_written
    assert second.event_key == first.event_key
    assert versions_of(locked_bucket, "D-1") == before  # no second event, nothing new
    assert all(holds_of(locked_bucket, "D-1").values())
    assert [e["action"] for e in read_events(locked_bucket, "D-1")] == ["hold"]

    release_hold(locked_bucket, "D-1", reason="closed", actor="ops", clock=clock)
    assert not hold_active(locked_bucket, "D-1")
    again = release_hold(locked_bucket, "D-1", reason="closed", actor="ops", clock=clock)
    assert again.already and not again.event_written and again.event_key is None
    assert [e["action"] for e in read_events(locked_bucket, "D-1")] == ["hold", "release"]

    third = place_hold(locked_bucket, "D-1", reason="new dispute", actor="ops", clock=clock)
    assert third.event_written and hold_active(locked_bucket, "D-1")
    # A later purge record is not a hold/release: the debt stays on hold.
    now = clock()
    purge_event = {"schema": EVENT_SCHEMA, "action": "purge", "debt_id": "D-1", "at": iso(now)}
    write_event(locked_bucket, purge_event, now=now, lock=event_lock(locked_bucket, "D-1", now))
    assert read_events(locked_bucket, "D-1")[-1]["action"] == "purge"
    assert hold_active(locked_bucket, "D-1")


def test_a_half_applied_hold_is_completed_by_running_it_again(
    locked_bucket: ObjectStore,
) -> None:
    seed_debt(locked_bucket, manifests=1)
    clock = ticking_clock()
    place_hold(locked_bucket, "D-1", reason="dispute", actor="ops", clock=clock)
    # Simulate a crash after the event: some holds never got placed.
    for key, vid in versions_of(locked_bucket, "D-1")[:3]:
        locked_bucket.set_legal_hold(key, vid, False)
    assert not all(holds_of(locked_bucket, "D-1").values())

    rerun = place_hold(locked_bucket, "D-1", reason="dispute", actor="ops", clock=clock)
    assert rerun.already and rerun.ok
    assert all(holds_of(locked_bucket, "D-1").values())


def test_hold_input_checks(locked_bucket: ObjectStore) -> None:
    with pytest.raises(UnsafeIdError):
        place_hold(locked_bucket, "../D-1", reason="x", actor="ops")
    with pytest.raises(ValidationError, match="reason"):
        place_hold(locked_bucket, "D-1", reason="   ", actor="ops")
    with pytest.raises(StorageError, match="nothing is archived for debt D-404"):
        place_hold(locked_bucket, "D-404", reason="dispute", actor="ops")
    with pytest.raises(StorageError, match="nothing is archived"):
        release_hold(locked_bucket, "D-404", reason="closed", actor="ops")


def test_event_timestamp_sorts_by_time() -> None:
    a = datetime(2026, 11, 28, 10, 15, 0, 123456, tzinfo=UTC)
    assert compact_stamp(a) == "20261128T101500.123456Z"
    assert compact_stamp(a) < compact_stamp(a + timedelta(microseconds=1))


# ---------------------------------------------------------------------------------------------
# Reading events: pure functions over read_events' result


def test_hold_open_follows_the_last_hold_or_release() -> None:
    assert not hold_open([])
    assert hold_open(["hold"]) and not hold_open(["hold", "release"])
    assert hold_open(["hold", "release", "hold", "purge"])  # a purge record changes nothing
    assert not hold_open(["release", "purge", None])
    # Only the two actions the tool writes count.
    assert not hold_open(["legal-hold"]) and hold_open(["hold", "unhold"])


def test_purged_versions_from_deletion_records_only() -> None:
    key = "debts/D-1/events/20261128T101500.000000Z-purge.json"
    later = "debts/D-1/events/20261129T101500.000000Z-purge.json"
    events = [
        {"key": "debts/D-1/events/20261127T101500.000000Z-hold.json", "action": "hold"},
        {
            "key": key,
            "action": "purge",
            "at": "2026-11-28T10:15:00Z",
            "versions": [{"key": "a", "version_id": "1", "sha256": "s1"}, {"key": "b"}],
        },
        {
            "key": later,
            "action": "purge",
            "at": "2026-11-29T10:15:00Z",
            "versions": [{"key": "a", "version_id": "1", "sha256": "s1"}],
        },  # fmt: skip
    ]
    assert purged_versions(events) == {
        ("a", "1"): {"event_key": later, "at": "2026-11-29T10:15:00Z", "sha256": "s1"},
        ("b", None): {"event_key": key, "at": "2026-11-28T10:15:00Z", "sha256": None},
    }
    assert purged_versions(events[:1]) == {}


def test_events_until_keeps_those_at_or_before_the_limit() -> None:
    events = [{"at": "2026-01-01T00:00:00Z"}, {"at": "2026-02-01T00:00:00Z"}, {"at": "soon"}]
    assert events_until(events, "2026-01-01T00:00:00Z") == events[:1]
    assert events_until(events, "2026-03-01T00:00:00+01:00") == events[:2]
    assert events_until(events, None) == events


# ---------------------------------------------------------------------------------------------
# CLI


def _cli() -> click.Group:
    @click.group()
    def group() -> None:
        """Test group."""

    register(group)
    return group


def test_cli_hold_and_release(locked_bucket: ObjectStore, s3_env: dict[str, str]) -> None:
    seed_debt(locked_bucket, manifests=1)
    runner = CliRunner()
    args = ["--bucket", locked_bucket.bucket, "--json"]

    held = runner.invoke(_cli(), ["hold", "D-1", "--reason", "dispute", "--actor", "amy", *args])
    assert held.exit_code == 0, held.output
    out = json.loads(held.stdout)
    assert out["action"] == "hold" and out["event_written"] and out["ok"]
    assert hold_active(locked_bucket, "D-1")

    text = runner.invoke(_cli(), ["hold", "D-1", "--reason", "x", "--bucket", locked_bucket.bucket])
    assert text.exit_code == 0 and "already on hold" in text.output

    released = runner.invoke(_cli(), ["release", "D-1", "--reason", "closed", *args])
    assert released.exit_code == 0, released.output
    assert json.loads(released.stdout)["event_written"]
    assert not hold_active(locked_bucket, "D-1")

    no_reason = runner.invoke(_cli(), ["hold", "D-1", "--reason", " ", *args])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    missing = runner.invoke(_cli(), ["hold", "D-404", "--reason", "x", *args])
    assert missing.exit_code == 1 and "nothing is archived" in missing.output
    no_bucket = runner.invoke(_cli(), ["hold", "D-1", "--reason", "x"], env={"ARCHIVER_BUCKET": ""})
    assert no_bucket.exit_code == 2 and "bucket" in no_bucket.output


@pytest.mark.parametrize("name", ["hold", "release", "purge"])
def test_cli_help_has_an_example(name: str) -> None:
    result = CliRunner().invoke(_cli(), [name, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert "--reason" in result.output and "--bucket" in result.output
