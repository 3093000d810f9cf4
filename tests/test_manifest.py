"""Manifest building, fingerprints and indexes (pure), checked against the JSON Schema."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from archiver.common.schemas import validate
from archiver.manifest.document import (
    all_objects,
    build_manifest,
    fingerprint,
    iso,
    manifest_bytes,
)
from archiver.manifest.entries import media_entries

SHA = "a" * 64
WHEN = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)


def media(kind: str = "audio", sha: str = SHA) -> dict:
    return {
        "kind": kind,
        "key": f"debts/d1/media/f1/{kind}-{sha}.mp3",
        "version_id": "v1",
        "sha256": sha,
        "size": 10,
        "content_type": "audio/mpeg",
        "sniffed_type": "audio/mpeg",
        "source": "https://s3.amazonaws.com/b/f1.mp3",
        "downloaded_at": iso(WHEN),
        "url_expires_at": iso(WHEN),
        "retain_until": "2029-11-28T10:00:00Z",
        "legal_hold": False,
    }


def manifest(run_id: str = "r1", when: datetime = WHEN, **over: object) -> dict:
    followups = [
        {"id": "f2", "record_key": "k2", "record_sha256": "b" * 64, "media": []},
        {"id": "f1", "record_key": "k1", "record_sha256": SHA, "media": [media()]},
    ]
    args: dict = dict(
        debt_id="d1",
        sequence=1,
        created_at=when,
        run_id=run_id,
        previous=None,
        policy={"name": "default", "sha256": SHA, "mode": "GOVERNANCE"},
        debt=None,
        debt_unavailable={"reason": "no scope", "status": 403},
        followups=followups,
        problems=[],
        retention_extensions=[],
        media_stored=1,
        media_reused=0,
        last_activity=when,
    )
    args.update(over)
    return build_manifest(**args)


def test_built_manifest_matches_its_schema_and_is_sorted() -> None:
    m = manifest()
    assert validate("manifest", m) == []
    assert [f["id"] for f in m["followups"]] == ["f1", "f2"]
    assert m["created_at"] == "2026-11-28T10:00:00Z"  # UTC, no microseconds
    assert m["summary"] == {
        "followups": 2,
        "media": 1,
        "media_bytes": 10,
        "media_stored": 1,
        "media_reused": 0,
        "problems": 0,
        "last_activity": "2026-11-28T10:00:00Z",
    }


def test_fingerprint_ignores_run_bookkeeping_but_not_content() -> None:
    a = manifest()
    later = manifest(run_id="r2", when=datetime(2026, 12, 1, tzinfo=UTC), media_stored=0)
    assert fingerprint(a) == fingerprint(later)
    changed = copy.deepcopy(a)
    changed["followups"][0]["media"][0]["sha256"] = "c" * 64
    assert fingerprint(changed) != fingerprint(a)
    warned = manifest(problems=[{"type": "X", "message": "m", "severity": "warning"}])
    assert fingerprint(warned) == fingerprint(a)  # a passing warning is no change
    failed = manifest(problems=[{"type": "MediaError", "message": "m", "followup_id": "f1"}])
    assert fingerprint(failed) != fingerprint(a)


def test_open_matters_are_recorded_and_a_hold_or_release_is_a_change() -> None:
    event = "debts/d1/events/00000002.json"
    held = manifest(legal_hold={"open_matters": ["D-1", "D-2"], "last_event": event})
    assert held["legal_hold"] == {"open_matters": ["D-1", "D-2"], "last_event": event}
    assert validate("manifest", held) == []
    none_open = manifest(legal_hold={"open_matters": [], "last_event": None})
    assert validate("manifest", none_open) == []
    assert fingerprint(held) != fingerprint(none_open)
    one = manifest(legal_hold={"open_matters": ["D-2"], "last_event": event})
    assert fingerprint(held) != fingerprint(one)
    # A manifest of an earlier version (no legal_hold field) counts as none open.
    assert "legal_hold" not in manifest()
    assert fingerprint(manifest()) == fingerprint(none_open)


def test_bytes_are_canonical_and_hash_stable() -> None:
    data, sha = manifest_bytes(manifest())
    assert data == manifest_bytes(manifest())[0]
    assert data.startswith(b'{"created_at":"2026-11-28T10:00:00Z","debt":null')
    assert len(sha) == 64


def test_indexes_and_object_listing() -> None:
    m = manifest()
    assert set(media_entries(m)) == {("f1", "audio", "https://s3.amazonaws.com/b/f1.mp3")}
    kinds = sorted(o["kind"] for o in all_objects(m))
    assert kinds == ["audio", "record", "record"]
