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
from archiver.dossier.load import events_until, manifest_events
from archiver.errors import RetentionError, StorageError, UnsafeIdError, ValidationError
from archiver.retention.events import (
    DEFAULT_MATTER,
    EVENT_SCHEMA,
    event_lock,
    hold_open,
    open_matters,
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
    assert result.event_key == "debts/D-1/events/00000001.json"  # the first event of D-1
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
    assert released.event_key == "debts/D-1/events/00000002.json"
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
    write_event(locked_bucket, purge_event, lock=event_lock(locked_bucket, "D-1", now))
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


# ---------------------------------------------------------------------------------------------
# Event order: by sequence number, never by a clock


def test_a_hold_from_a_clock_an_hour_behind_after_a_release_is_the_latest(
    locked_bucket: ObjectStore,
) -> None:
    seed_debt(locked_bucket, manifests=1)
    right = ticking_clock()
    place_hold(locked_bucket, "D-1", reason="dispute", actor="ops", clock=right)
    release_hold(locked_bucket, "D-1", reason="dispute closed", actor="ops", clock=right)
    assert not hold_active(locked_bucket, "D-1")

    behind = ticking_clock(datetime.now(UTC) - timedelta(hours=1))
    late = place_hold(locked_bucket, "D-1", reason="second dispute", actor="amy", clock=behind)

    assert late.event_written and late.ok
    assert hold_active(locked_bucket, "D-1")
    assert all(holds_of(locked_bucket, "D-1").values())  # S3 legal hold on every version
    events = read_events(locked_bucket, "D-1")
    assert [e["action"] for e in events] == ["hold", "release", "hold"]
    assert events[-1]["key"] == late.event_key and events[-1]["reason"] == "second dispute"
    # The clock's time is kept as data, even though it is earlier than the release's.
    assert events[-1]["at"] < events[1]["at"]
    # ... and the hold is the one a release now lifts.
    again = release_hold(locked_bucket, "D-1", reason="closed too", actor="ops", clock=right)
    assert again.event_written and not again.already
    assert not hold_active(locked_bucket, "D-1")
    assert not any(holds_of(locked_bucket, "D-1").values())


class _StaleListing(ObjectStore):
    """An ObjectStore whose listings miss ``hidden`` keys, as a second writer's listing made
    just before the first one stored its event."""

    hidden: frozenset[str] = frozenset()

    def list_keys(self, prefix: str):  # type: ignore[no-untyped-def]
        return (k for k in super().list_keys(prefix) if k not in self.hidden)


def test_a_sequence_number_another_writer_took_is_skipped(locked_bucket: ObjectStore) -> None:
    seed_debt(locked_bucket, manifests=1)
    first = place_hold(locked_bucket, "D-1", reason="dispute", actor="ops")
    assert first.event_key is not None
    assert first.event_key.endswith("/events/00000001.json"), first.event_key

    stale = _StaleListing(locked_bucket.client, locked_bucket.bucket)
    stale.hidden = frozenset({first.event_key})
    now = datetime.now(UTC)
    event = {"schema": EVENT_SCHEMA, "action": "purge", "debt_id": "D-1", "at": iso(now)}
    key, _, _ = write_event(stale, event, lock=event_lock(stale, "D-1", now))

    # Number 1 was taken (other bytes): the event went to the next number, nothing overwritten.
    assert key == "debts/D-1/events/00000002.json"
    assert json.loads(locked_bucket.read_bytes(first.event_key))["action"] == "hold"
    assert [e["key"] for e in read_events(locked_bucket, "D-1")] == [first.event_key, key]


def test_events_under_old_timestamp_keys_come_before_sequenced_ones(
    locked_bucket: ObjectStore,
) -> None:
    seed_debt(locked_bucket, manifests=1)
    # An archive written by an earlier version: events keyed by their local timestamp.
    old_hold_at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    legacy = []
    for at, action in ((old_hold_at, "hold"), (old_hold_at + timedelta(days=1), "release")):
        event = {
            "schema": EVENT_SCHEMA,
            "action": action,
            "debt_id": "D-1",
            "at": iso(at),
            "reason": f"old {action}",
            "actor": "ops",
        }
        key = f"debts/D-1/events/{compact_stamp(at)}-{action}.json"
        locked_bucket.put_bytes(
            key,
            canonical_sha256(event)[0],
            lock=event_lock(locked_bucket, "D-1", datetime.now(UTC)),
            content_type="application/json",
        )
        legacy.append(key)
    assert not hold_active(locked_bucket, "D-1")

    # A hold written now by a machine whose clock says 2020: still after the old events.
    held = place_hold(
        locked_bucket,
        "D-1",
        reason="new dispute",
        actor="ops",
        clock=ticking_clock(datetime(2020, 1, 1, tzinfo=UTC)),
    )
    assert held.event_written and held.event_key == "debts/D-1/events/00000001.json"
    events = read_events(locked_bucket, "D-1")
    assert [e["key"] for e in events] == [*legacy, held.event_key]
    assert hold_active(locked_bucket, "D-1")


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


def test_open_matters_opens_and_closes_each_matter_on_its_own() -> None:
    def ev(action: str, matter: str | None = None) -> dict[str, str]:
        return {"action": action, **({"matter": matter} if matter else {})}

    first_a = ev("hold", "A")
    assert open_matters([first_a, ev("hold", "B"), ev("release", "A")]).keys() == {"B"}
    # A second hold of an open matter changes nothing: the first one stands.
    assert open_matters([first_a, ev("hold", "A")]) == {"A": first_a}
    assert open_matters([first_a, ev("hold", "A"), ev("release", "A")]) == {}
    assert list(open_matters([ev("hold", "B"), ev("hold", "A"), ev("purge")])) == ["B", "A"]
    # Events from before matters: a hold opens the default matter, a release closes them all.
    assert list(open_matters([ev("hold")])) == [DEFAULT_MATTER]
    assert open_matters([ev("hold", "A"), ev("hold"), ev("release")]) == {}
    assert hold_open([ev("hold", "A"), ev("hold", "B"), ev("release", "A")])
    assert not hold_open([ev("hold", "A"), ev("release", "A"), "purge"])


def test_release_of_a_matter_already_released_or_never_held(locked_bucket: ObjectStore) -> None:
    seed_debt(locked_bucket, manifests=1)
    clock = ticking_clock()
    place_hold(locked_bucket, "D-1", matter="M-1", reason="one", actor="ops", clock=clock)
    place_hold(locked_bucket, "D-1", matter="M-2", reason="two", actor="ops", clock=clock)
    with pytest.raises(ValidationError, match="M-1, M-2") as unclear:
        release_hold(locked_bucket, "D-1", reason="closed", actor="ops", clock=clock)
    assert unclear.value.context["open_matters"] == ["M-1", "M-2"]
    with pytest.raises(ValidationError, match="no hold for matter 'M-9'"):
        release_hold(locked_bucket, "D-1", matter="M-9", reason="typo", actor="ops", clock=clock)

    done = release_hold(locked_bucket, "D-1", matter="M-1", reason="ok", actor="ops", clock=clock)
    assert done.event_written and done.open_matters == ["M-2"] and not done.versions
    info = locked_bucket.head(done.event_key or "")
    assert info is not None and info.legal_hold  # written while the debt stays held
    rerun = release_hold(locked_bucket, "D-1", matter="M-1", reason="ok", actor="ops", clock=clock)
    assert rerun.already and not rerun.event_written and rerun.open_matters == ["M-2"]
    assert all(holds_of(locked_bucket, "D-1").values())
    with pytest.raises(UnsafeIdError):
        place_hold(locked_bucket, "D-1", matter="../x", reason="bad", actor="ops")


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


def test_a_manifest_naming_its_last_event_shows_the_events_up_to_it_whatever_their_time() -> None:
    # The second event's clock was behind: by time it would come first; the store's order
    # (its key) stands, and the cut is at the event the manifest names.
    events = [
        {"key": "e/00000001.json", "action": "hold", "at": "2026-01-02T00:00:00Z"},
        {"key": "e/00000002.json", "action": "release", "at": "2026-01-01T00:00:00Z"},
        {"key": "e/00000003.json", "action": "hold", "at": "2026-01-03T00:00:00Z"},
    ]
    named = {"created_at": "2025-12-01T00:00:00Z", "legal_hold": {"last_event": events[1]["key"]}}
    assert manifest_events(events, named) == events[:2]
    none_yet = {"created_at": "2027-01-01T00:00:00Z", "legal_hold": {"last_event": None}}
    assert manifest_events(events, none_yet) == []
    # Manifests of earlier versions: by the time they were created.
    assert manifest_events(events, {"created_at": "2026-01-01T12:00:00Z"}) == events[1:2]


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
