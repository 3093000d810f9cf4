"""What a manifest keeps from the one before, over real HTTP (simulator socket + SeaweedFS).

A snapshot only ever loses evidence through a purge: a medium whose link the API stopped
sending, a followup an unsettled listing did not show, a manifest whose PUT answer was lost.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta

import pypdf
import pytest
from fixtures_archive import Env, manifest_of

from archiver.audit.verify import verify_debt
from archiver.common.problems import ProblemKind
from archiver.common.time import parse_iso
from archiver.config import ArchiverConfig
from archiver.store import keys
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def with_policy(env: Env, policy: str) -> Env:
    env.config = ArchiverConfig(**{**env.config.__dict__, "policy": policy})
    return env


def pdf_text(data: bytes) -> str:
    """The text of a PDF, without the line breaks the layout puts into long values."""
    pages = pypdf.PdfReader(io.BytesIO(data)).pages
    return "".join((page.extract_text() or "") for page in pages).replace("\n", "")


# --------------------------------------------------------------------------- dropped links


def test_a_medium_whose_link_is_dropped_stays_in_the_snapshot(env: Env) -> None:
    # Letters follow the last activity under this policy, so the next manifest must extend
    # the letter's retention, which it can only do while the letter is in the snapshot.
    with_policy(env, "us-cfpb-reg-f")
    debt_id = env.debts()[0]
    env.run([debt_id])
    _, first = manifest_of(env.store, debt_id, 1)
    entry = next(f for f in first["followups"] if any(m["kind"] == "pdf" for m in f["media"]))
    [letter] = [m for m in entry["media"] if m["kind"] == "pdf"]

    # The followup is still listed, but its record no longer carries a pdf_url.
    del env.sim.data.media[(entry["id"], "pdf")]
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    env.sim.add_followup(debt_id, type="sms", status="delivered", when=later)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 2, res.problems

    _, second = manifest_of(env.store, debt_id, 2)
    still = next(f for f in second["followups"] if f["id"] == entry["id"])
    assert still["record_sha256"] != entry["record_sha256"]  # the new record says pdf_url null
    assert "upstream_missing_since" not in still  # the followup itself is still listed
    [kept] = [m for m in still["media"] if m["kind"] == "pdf"]
    assert (kept["key"], kept["version_id"], kept["sha256"]) == (
        letter["key"],
        letter["version_id"],
        letter["sha256"],
    )
    # Its retention follows the new activity, in S3 and in the manifest.
    ext = {e["key"]: e for e in second["retention_extensions"]}
    assert letter["key"] in ext
    assert kept["retain_until"] == ext[letter["key"]]["to"]
    lock = env.store.get_lock(letter["key"], letter["version_id"])
    old_until = parse_iso(letter["retain_until"])
    assert lock is not None and old_until is not None and lock.retain_until > old_until
    # The dossier of manifest 2 lists it.
    dossier = env.store.read_bytes(keys.dossier_key(debt_id, 2))
    assert letter["sha256"] in pdf_text(dossier)
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
    # Noticed once: the next run has nothing new.
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged"


# --------------------------------------------------------------------------- unsettled listings


def test_an_unsettled_listing_is_partial_and_marks_no_followup_missing(env: Env) -> None:
    debt_id = env.debts()[0]  # 10 followups: 4 pages of 3, so insertions shift later pages
    env.api = dataclasses.replace(env.api, page_limit=3)
    env.run([debt_id])
    gone = env.sim.followup_ids(debt_id)[-1]
    env.sim.remove_followup(gone)  # really gone, but a shifting listing cannot tell
    env.sim.config.insert_during_listing = 10_000  # 3 more on every pass: never settles

    run = env.run([debt_id])
    (res,) = run.debts
    assert run.exit_status == "partial"  # `archiver archive` exits 3
    assert res.status == "partial" and res.sequence == 2
    [unstable] = [p for p in res.problems if p["type"] == ProblemKind.LISTING_UNSTABLE.value]
    assert "may be missing" in unstable["message"]
    _, second = manifest_of(env.store, debt_id, 2)
    assert [p["type"] for p in second["problems"]].count("ListingUnstable") == 1
    carried = next(f for f in second["followups"] if f["id"] == gone)
    assert "upstream_missing_since" not in carried  # carried as it was, not marked gone
    assert not any(f.get("upstream_missing_since") for f in second["followups"])

    # Once the listing settles, the followup it lacks is marked missing upstream.
    env.sim.config.insert_during_listing = 0
    run = env.run([debt_id])
    (res,) = run.debts
    assert run.exit_status == "ok" and res.status == "archived" and res.sequence == 3
    _, third = manifest_of(env.store, debt_id, 3)
    marked = {f["id"]: f.get("upstream_missing_since") for f in third["followups"]}
    assert marked[gone] == third["created_at"]
    assert [fid for fid, since in marked.items() if since] == [gone]
