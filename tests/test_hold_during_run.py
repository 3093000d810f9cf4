"""Legal holds and archive runs over real HTTP (simulator + SeaweedFS): a hold placed while a
run stores, and a hold removed behind the tool's back, end with every object held and a
manifest whose ``legal_hold`` flags say what S3 says."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from typing import Any

import pypdf
import pytest
from fixtures_archive import Env, all_versions, manifest_of

from archiver.archive.results import ArchiveEvent, ArchiveEventKind
from archiver.audit.verify import verify_debt
from archiver.manifest.document import all_objects
from archiver.retention.holds import place_hold
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def _s3_hold(env: Env, key: str, version_id: str | None) -> bool:
    info = env.store.head(key, version_id)
    assert info is not None, key
    return info.legal_hold


def _assert_manifest_agrees_with_s3(env: Env, manifest: dict[str, Any]) -> None:
    """Every flag the manifest sets (debt record, media) is what S3 says of that version."""
    flagged = [o for o in all_objects(manifest) if o["kind"] != "record" and not o.get("purged")]
    assert flagged
    for obj in flagged:
        assert obj["legal_hold"] == _s3_hold(env, obj["key"], obj["version_id"]), obj["key"]


def test_a_hold_placed_while_media_are_stored_covers_every_object_of_the_run(env: Env) -> None:
    # One worker: the media stored after the hook are stored after the hold was placed (so
    # place_hold cannot have seen them), which is what a run in flight meets.
    env.config = replace(env.config, concurrency=1)
    debt_id = env.debts()[0]
    placed = threading.Event()

    def hook(event: ArchiveEvent) -> None:
        if event.kind == ArchiveEventKind.MEDIA_STORED and not placed.is_set():
            placed.set()
            place_hold(env.store, debt_id, matter="D-7", reason="dispute opened", actor="t")

    (res,) = env.run([debt_id], on_event=hook).debts
    assert placed.is_set()
    assert res.status == "archived", res.problems
    assert res.media_stored > 1  # media were stored after the hold, too
    versions = all_versions(env.store, f"debts/{debt_id}/")
    unheld = [v.key for v in versions if not _s3_hold(env, v.key, v.version_id)]
    assert unheld == []  # records, media, debt record, manifest, dossier, the event
    _, manifest = manifest_of(env.store, debt_id, 1)
    assert manifest["legal_hold"] == {
        "open_matters": ["D-7"],
        "last_event": f"debts/{debt_id}/events/00000001.json",
    }
    media = [m for f in manifest["followups"] for m in f["media"]]
    assert media and all(m["legal_hold"] for m in media)
    _assert_manifest_agrees_with_s3(env, manifest)
    # Its dossier shows the hold the manifest records (the event is later than the time the
    # manifest is dated from, which is when planning began).
    dossier = env.store.read_bytes(f"debts/{debt_id}/dossiers/00000001.pdf")
    text = " ".join((p.extract_text() or "") for p in pypdf.PdfReader(io.BytesIO(dossier)).pages)
    text = " ".join(text.split())
    assert "Open matters: the debt is on legal hold" in text and "D-7" in text
    assert "legal hold off" not in text
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok


def test_archive_repairs_a_hold_removed_behind_its_back(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    place_hold(env.store, debt_id, reason="dispute", actor="t")
    _, manifest = manifest_of(env.store, debt_id, 1)
    m = next(m for f in manifest["followups"] for m in f["media"])
    env.store.set_legal_hold(m["key"], m["version_id"], False)  # an admin, not the tool
    assert not _s3_hold(env, m["key"], m["version_id"])

    (res,) = env.run([debt_id]).debts
    repaired = [p for p in res.problems if p["type"] == "HoldMissing"]
    assert [p["key"] for p in repaired] == [m["key"]]
    assert repaired[0]["severity"] == "warning" and "set again" in repaired[0]["message"]
    assert _s3_hold(env, m["key"], m["version_id"])
    assert not [
        v.key
        for v in all_versions(env.store, f"debts/{debt_id}/")
        if not _s3_hold(env, v.key, v.version_id)
    ]
    assert res.status == "archived" and res.sequence == 2  # the run records the hold
    _, manifest = manifest_of(env.store, debt_id, 2)
    _assert_manifest_agrees_with_s3(env, manifest)
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok

    # Removed again while the hold is recorded: repaired and reported, nothing new to write.
    env.store.set_legal_hold(m["key"], m["version_id"], False)
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged"
    assert [p["key"] for p in res.problems if p["type"] == "HoldMissing"] == [m["key"]]
    assert _s3_hold(env, m["key"], m["version_id"])


def test_after_a_release_no_manifest_claims_a_hold(env: Env) -> None:
    from archiver.retention.holds import release_hold

    debt_id = env.debts()[0]
    place_hold_after_first = env.run([debt_id])
    assert place_hold_after_first.exit_status == "ok"
    place_hold(env.store, debt_id, reason="dispute", actor="t")
    env.run([debt_id])
    release_hold(env.store, debt_id, reason="settled", actor="t")
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 3
    _, manifest = manifest_of(env.store, debt_id, 3)
    assert manifest["legal_hold"]["open_matters"] == []
    assert not (manifest["debt"] or {}).get("legal_hold")
    assert not any(m["legal_hold"] for f in manifest["followups"] for m in f["media"])
    _assert_manifest_agrees_with_s3(env, manifest)
