"""What a manifest keeps from the one before, over real HTTP (simulator socket + SeaweedFS).

A snapshot only ever loses evidence through a purge: a medium whose link the API stopped
sending, a followup an unsettled listing did not show, a manifest whose PUT answer was lost.
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pypdf
import pytest
from botocore.exceptions import ConnectionClosedError
from fixtures_archive import Env, manifest_of

from archiver.audit.verify import verify_debt
from archiver.catalog.db import Catalog
from archiver.common.canonical import sha256_hex
from archiver.common.problems import ProblemKind
from archiver.common.time import parse_iso
from archiver.config import ArchiverConfig
from archiver.store import keys
from archiver.wiring import open_archiver, rerender_stored

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


# --------------------------------------------------------------------------- lost answers


class LostAnswers:
    """An S3 client whose PutObject answer is lost (a connection error) after the server
    stored the object, once per key that ``lose`` names; every other call passes through."""

    def __init__(self, client: Any, lose: set[str]) -> None:
        self._client = client
        self._lose = set(lose)
        self.lost: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kw: Any) -> Any:
        answer = self._client.put_object(**kw)
        if kw["Key"] in self._lose:
            self._lose.discard(kw["Key"])
            self.lost.append(kw["Key"])
            raise ConnectionClosedError(endpoint_url=f"{self._client.meta.endpoint_url}/x")
        return answer


def catalog_rows(env: Env, table: str, debt_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(env.config.catalog)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute(f"select * from [{table}] where debt_id = ?", [debt_id]).fetchall()
        return [dict(r) for r in rows]
    finally:
        con.close()


def test_objects_whose_put_answer_was_lost_reach_the_catalog(env: Env) -> None:
    a, b = env.debts()[0], env.debts()[2]
    manifest_a, dossier_b = keys.manifest_key(a, 1), keys.dossier_key(b, 1)
    client = LostAnswers(env.s3.client(), {manifest_a, dossier_b})
    with open_archiver(env.config, env.api, s3_client=client) as session:
        first = session.archiver.run([a, b])
    assert client.lost == [manifest_a, dossier_b]
    # The answers were lost: a manifest that seems unwritten fails its debt; a dossier that
    # seems unwritten leaves its debt partial (the manifest is stored, the next run repairs).
    assert [d.status for d in first.debts] == ["failed", "partial"]
    assert env.store.head(manifest_a) is not None and env.store.head(dossier_b) is not None

    # The rerun finds both stored: nothing new to write, and the catalog learns of them.
    second = env.run([a, b])
    assert [d.status for d in second.debts] == ["unchanged", "unchanged"]
    for debt_id in (a, b):
        stored = env.store.head(keys.manifest_key(debt_id, 1))
        assert stored is not None
        [row] = catalog_rows(env, "manifests", debt_id)
        assert (row["key"], row["version_id"]) == (stored.key, stored.version_id)
        assert row["sha256"] == sha256_hex(env.store.read_bytes(stored.key))
        assert row["followups"] == len(env.sim.followup_ids(debt_id)) > 0
        assert catalog_rows(env, "followups", debt_id)
        dossier = env.store.head(keys.dossier_key(debt_id, 1))
        assert dossier is not None
        [drow] = catalog_rows(env, "dossiers", debt_id)
        assert (drow["key"], drow["version_id"]) == (dossier.key, dossier.version_id)
        assert drow["sha256"] == sha256_hex(env.store.read_bytes(dossier.key))
        assert drow["renderer_version"]
    [status] = Catalog.open(env.config.catalog).status(a)
    assert status["sequence"] == 1
