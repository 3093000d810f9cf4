"""Tests of the catalog: incremental recording, events, and reindex from a store."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlite_utils

from archiver.archive.results import ManifestStored
from archiver.catalog.db import Catalog
from archiver.catalog.recorder import CatalogRecorder
from archiver.catalog.reindex import reindex
from archiver.common.canonical import canonical_sha256, sha256_hex
from archiver.errors import ConfigError, StorageError
from archiver.store.keys import debt_record_key, manifest_key, media_key, record_key

SCHEMA = json.loads((Path(__file__).parent.parent / "schemas" / "manifest.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def h(text: str) -> str:
    return sha256_hex(text.encode())


def make_manifest(
    debt_id: str,
    sequence: int,
    followups: dict[str, list[str]],
    *,
    previous: tuple[str, str] | None = None,
    problems: list[dict[str, Any]] | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    """A manifest following schemas/manifest.schema.json; ``followups`` maps id -> media kinds."""
    fups: list[dict[str, Any]] = []
    for fid, kinds in followups.items():
        media: list[dict[str, Any]] = []
        for kind in kinds:
            sha = h(f"{debt_id}/{fid}/{kind}")
            ext = "mp3" if kind == "audio" else "pdf"
            media.append(
                {
                    "kind": kind,
                    "key": media_key(debt_id, fid, kind, sha, ext),
                    "version_id": f"v-{fid}-{kind}",
                    "sha256": sha,
                    "size": 1000 if kind == "audio" else 200,
                    "content_type": "audio/mpeg" if kind == "audio" else "application/pdf",
                    "sniffed_type": "audio/mpeg" if kind == "audio" else "application/pdf",
                    "source": f"https://media.getbill.test/{debt_id}/{fid}.{ext}",
                    "downloaded_at": "2026-11-28T10:00:00Z",
                    "url_expires_at": "2026-11-28T11:00:00Z",
                    "retain_until": "2029-11-28T00:00:00Z",
                    "retention_mode": "COMPLIANCE",
                    "legal_hold": False,
                }
            )
        rsha = h(f"record {debt_id}/{fid}/{status}")
        fups.append(
            {
                "id": fid,
                "type": "call",
                "status": status,
                "call_date": "2026-11-20T09:00:00+00:00",
                "record_key": record_key(debt_id, fid, rsha),
                "record_sha256": rsha,
                "record_size": 321,
                "record_version_id": f"rv-{fid}",
                "record_retain_until": "2029-11-28T00:00:00Z",
                "media": media,
            }
        )
    problems = problems or []
    n_media = sum(len(f["media"]) for f in fups)
    dsha = h(f"debt {debt_id}")
    manifest = {
        "schema": "getbill-archiver/manifest/v1",
        "debt_id": debt_id,
        "sequence": sequence,
        "created_at": f"2026-11-28T10:{sequence:02d}:00Z",
        "run_id": f"run-{sequence}",
        "tool": {"name": "getbill-archiver", "version": "0.1.0"},
        "source": {"api_base_url": "https://api.getbill.test"},
        "previous": None if previous is None else {"key": previous[0], "sha256": previous[1]},
        "policy": {"name": "us-reg-f", "sha256": h("policy"), "mode": "COMPLIANCE"},
        "debt": {"key": debt_record_key(debt_id, dsha), "sha256": dsha, "size": 10},
        "debt_unavailable": None,
        "followups": fups,
        "problems": problems,
        "summary": {
            "followups": len(fups),
            "media": n_media,
            "media_bytes": sum(m["size"] for f in fups for m in f["media"]),
            "problems": len(problems),
            "last_activity": "2026-11-20T09:00:00+00:00",
        },
    }
    errors = [e.message for e in VALIDATOR.iter_errors(manifest)]
    assert errors == [], errors
    return manifest


@dataclass
class FakeInfo:
    version_id: str | None


class FakeStore:
    """list_keys / read_bytes / head over a dict, like archiver.store.objects.ObjectStore."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.unreadable: set[str] = set()

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def list_keys(self, prefix: str) -> Iterator[str]:
        yield from sorted(k for k in self.objects if k.startswith(prefix))

    def read_bytes(self, key: str, version_id: str | None = None) -> bytes:
        if key in self.unreadable:
            raise StorageError("read failed", key=key)
        return self.objects[key]

    def version(self, key: str) -> str:
        info = self.head(key)
        assert info is not None and info.version_id is not None
        return info.version_id

    def head(self, key: str, version_id: str | None = None) -> FakeInfo | None:
        return FakeInfo(f"ver-{sha256_hex(self.objects[key])[:8]}") if key in self.objects else None


def chain(debt_id: str, specs: list[dict[str, list[str]]]) -> list[tuple[dict, str, bytes, str]]:
    """Manifests 1..n of a debt, hash-chained: (manifest, key, bytes, sha256)."""
    out: list[tuple[dict, str, bytes, str]] = []
    previous = None
    for seq, followups in enumerate(specs, start=1):
        m = make_manifest(debt_id, seq, followups, previous=previous)
        data, sha = canonical_sha256(m)
        key = manifest_key(debt_id, seq)
        out.append((m, key, data, sha))
        previous = (key, sha)
    return out


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.open(":memory:")


def record(catalog: Catalog, entry: tuple[dict, str, bytes, str]) -> None:
    m, key, data, sha = entry
    catalog.record_manifest(m, key=key, sha256=sha, version_id=f"ver-{sha[:8]}")


def counts(catalog: Catalog) -> dict[str, int]:
    """Row count of every table."""
    return {name: catalog.db[name].count for name in catalog.db.table_names()}


def manifests(catalog: Catalog, debt_id: str) -> list[dict[str, Any]]:
    """The catalogued manifests of a debt, oldest sequence first."""
    return list(catalog.db["manifests"].rows_where("debt_id = ?", [debt_id], order_by="sequence"))


def runs(catalog: Catalog, limit: int | None = None) -> list[dict[str, Any]]:
    """The journalled runs, most recent first, JSON columns decoded."""
    rows = list(catalog.db["runs"].rows_where(order_by="started_at desc, run_id desc", limit=limit))
    for row in rows:
        for name in ("debt_ids", "options", "summary"):
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
    return rows


def test_record_manifest_then_status(catalog: Catalog) -> None:
    entry = chain("D1", [{"F1": ["audio", "pdf"], "F2": []}])[0]
    record(catalog, entry)
    [row] = catalog.status()
    assert row["debt_id"] == "D1"
    assert row["sequence"] == 1
    assert row["manifest_key"] == "debts/D1/manifests/00000001.json"
    assert row["manifest_sha256"] == entry[3]
    assert row["last_archived_at"] == "2026-11-28T10:01:00Z"
    assert (row["followups"], row["media"], row["media_bytes"], row["problems"]) == (2, 2, 1200, 0)
    assert row["policy"] == "us-reg-f"
    assert row["on_hold"] is False
    assert catalog.status("nope") == []
    latest = manifests(catalog, "D1")[-1]
    assert latest is not None and latest["sha256"] == entry[3]
    assert latest["version_id"] == f"ver-{entry[3][:8]}"


def test_recording_twice_does_not_duplicate(catalog: Catalog) -> None:
    entry = chain("D1", [{"F1": ["audio"], "F2": ["pdf"]}])[0]
    entry[0]["problems"] = [{"type": "media_expired", "message": "x", "followup_id": "F2"}]
    record(catalog, entry)
    first = counts(catalog)
    record(catalog, entry)
    assert counts(catalog) == first
    assert first["manifests"] == 1 and first["followups"] == 2 and first["media"] == 2
    assert first["problems"] == 1


def test_second_sequence_updates_counts_and_keeps_first_seen(catalog: Catalog) -> None:
    e1, e2 = chain("D1", [{"F1": ["audio"]}, {"F1": ["audio"], "F2": ["pdf"]}])
    record(catalog, e1)
    record(catalog, e2)
    [row] = catalog.status()
    assert row["sequence"] == 2 and row["manifest_sha256"] == e2[3]
    assert (row["followups"], row["media"], row["media_bytes"]) == (2, 2, 1200)
    fups = {r["followup_id"]: r for r in catalog.db["followups"].rows}
    assert (fups["F1"]["first_seen_sequence"], fups["F1"]["last_seen_sequence"]) == (1, 2)
    assert (fups["F2"]["first_seen_sequence"], fups["F2"]["last_seen_sequence"]) == (2, 2)
    media = {r["followup_id"]: r for r in catalog.db["media"].rows}
    assert media["F1"]["first_sequence"] == 1 and media["F2"]["first_sequence"] == 2
    assert [m["sequence"] for m in manifests(catalog, "D1")] == [1, 2]
    assert manifests(catalog, "D1")[1]["previous_sha256"] == e1[3]


def test_out_of_order_recording_keeps_newest_fields(catalog: Catalog) -> None:
    e1, e2 = chain("D1", [{"F1": []}, {"F1": []}])
    e2[0]["followups"][0]["status"] = "answered"
    record(catalog, e2)
    record(catalog, e1)
    [row] = catalog.status()
    assert row["sequence"] == 2
    [fup] = catalog.db["followups"].rows
    assert fup["status"] == "answered"
    assert (fup["first_seen_sequence"], fup["last_seen_sequence"]) == (1, 2)


def test_no_query_strings_and_sources_as_given(catalog: Catalog) -> None:
    entry = chain("D1", [{"F1": ["audio", "pdf"]}])[0]
    record(catalog, entry)
    catalog.start_run(
        run_id="r1",
        started_at="2026-11-28T10:00:00Z",
        command="archive",
        debt_ids=["D1"],
        options={"api_token": "tok-secret", "media_url": "https://m.test/a?sig=secret", "n": 1},
    )
    for table in catalog.db.table_names():
        for row in catalog.db[table].rows:
            for value in row.values():
                assert not (isinstance(value, str) and "?" in value), (table, value)
                assert not (isinstance(value, str) and "secret" in value), (table, value)
    stored = {r["key"]: r["source"] for r in catalog.db["media"].rows}
    given = {m["key"]: m["source"] for m in entry[0]["followups"][0]["media"]}
    assert stored == given
    [run] = runs(catalog)
    assert run["options"] == {"media_url": "https://m.test/a", "n": 1}


def test_runs_journal(catalog: Catalog) -> None:
    catalog.start_run(
        run_id="r1",
        started_at="2026-11-28T10:00:00Z",
        command="archive",
        debt_ids=["D1"],
        options={},
    )
    catalog.start_run(
        run_id="r2",
        started_at="2026-11-28T11:00:00Z",
        command="archive",
        debt_ids=[],
        options={},
    )
    catalog.finish_run("r1", finished_at="2026-11-28T10:05:00Z", status="ok", summary={"m": 1})
    journal = runs(catalog)
    assert [r["run_id"] for r in journal] == ["r2", "r1"]
    assert journal[1]["status"] == "ok" and journal[1]["summary"] == {"m": 1}
    assert journal[1]["command"] == "archive" and journal[1]["debt_ids"] == ["D1"]
    assert journal[0]["status"] == "running"
    assert len(runs(catalog, limit=1)) == 1


def test_events_put_on_hold_and_release(catalog: Catalog) -> None:
    record(catalog, chain("D1", [{"F1": []}])[0])
    hold = {"debt_id": "D1", "action": "hold", "at": "2026-11-28T12:00:00Z", "reason": "dispute"}
    catalog.record_event(hold, key="debts/D1/events/20261128T120000Z-hold.json", sha256=h("1"))
    assert catalog.status("D1")[0]["on_hold"] is True
    release = {"debt_id": "D1", "action": "release", "at": "2026-11-28T13:00:00Z"}
    catalog.record_event(
        release, key="debts/D1/events/20261128T130000Z-release.json", sha256=h("2")
    )
    [row] = catalog.status("D1")
    assert row["on_hold"] is False and row["last_event"] == "release"
    # Action and debt taken from the key when the event does not say.
    catalog.record_event(
        {"at": "2026-11-28T14:00:00Z"},
        key="debts/D1/events/20261128T140000Z-hold.json",
        sha256=h("3"),
    )
    assert catalog.status("D1")[0]["on_hold"] is True
    assert (
        catalog.db.table("events").get("debts/D1/events/20261128T140000Z-hold.json")["at"]
        == "2026-11-28T14:00:00Z"
    )


def test_dossier_in_status(catalog: Catalog) -> None:
    record(catalog, chain("D1", [{"F1": []}])[0])
    assert catalog.status()[0]["dossier_sequence"] is None
    catalog.record_dossier(
        debt_id="D1",
        sequence=1,
        key="debts/D1/dossiers/00000001.pdf",
        sha256=h("pdf"),
        version_id="v",
        renderer_version="1",
    )
    assert catalog.status()[0]["dossier_sequence"] == 1


def _store_with_two_debts() -> tuple[FakeStore, list[tuple[dict, str, bytes, str]]]:
    store = FakeStore()
    entries = chain("D1", [{"F1": ["audio"]}, {"F1": ["audio"], "F2": ["pdf"]}]) + chain(
        "D2", [{"G1": []}, {"G1": [], "G2": ["audio", "pdf"]}]
    )
    for _m, key, data, _sha in entries:
        store.put(key, data)
    store.put("debts/D1/media/F1/unrelated.bin", b"x")
    return store, entries


def test_reindex_rebuilds_identical_status() -> None:
    store, entries = _store_with_two_debts()
    hold = {"debt_id": "D2", "action": "hold", "at": "2026-11-28T12:00:00Z"}
    hold_bytes = json.dumps(hold).encode()
    hold_key = "debts/D2/events/20261128T120000Z-hold.json"
    store.put(hold_key, hold_bytes)
    store.put("debts/D1/dossiers/00000002.pdf", b"%PDF-1.7 fake")

    incremental = Catalog.open(":memory:")
    for m, key, _data, sha in entries:
        incremental.record_manifest(m, key=key, sha256=sha, version_id=store.version(key))
    incremental.record_event(hold, key=hold_key, sha256=sha256_hex(hold_bytes))
    incremental.record_dossier(
        debt_id="D1",
        sequence=2,
        key="debts/D1/dossiers/00000002.pdf",
        sha256=sha256_hex(b"%PDF-1.7 fake"),
        version_id=store.version("debts/D1/dossiers/00000002.pdf"),
        renderer_version=None,
    )

    rebuilt = Catalog.open(":memory:")
    # Stale rows must disappear: reindex starts from a clean catalog.
    record(rebuilt, chain("STALE", [{"X": []}])[0])
    messages: list[str] = []
    result = reindex(rebuilt, store, verify_chain=True, on_progress=messages.append)

    assert result.problems == []
    assert (result.debts, result.manifests, result.events, result.dossiers) == (2, 4, 1, 1)
    assert (result.followups, result.media) == (4, 4)
    assert rebuilt.status() == incremental.status()
    assert [r["debt_id"] for r in rebuilt.status()] == ["D1", "D2"]
    assert rebuilt.status("D2")[0]["on_hold"] is True
    for table in ("followups", "media", "manifests", "problems"):
        assert list(rebuilt.db[table].rows) == list(incremental.db[table].rows), table
    assert messages and "4 manifests" in messages[-1]


def test_reindex_reports_corrupt_manifest_and_indexes_the_rest() -> None:
    store, _entries = _store_with_two_debts()
    store.put(manifest_key("D2", 2), b"{not json")
    store.put(manifest_key("D3", 1), json.dumps({"schema": "nope"}).encode())
    store.put("debts/D1/events/20261128T120000Z-hold.json", b"\x00garbage")
    store.unreadable.add(manifest_key("D1", 1))

    catalog = Catalog.open(":memory:")
    result = reindex(catalog, store)

    by_key = {p.key: p.kind for p in result.problems}
    assert by_key == {
        manifest_key("D2", 2): "unparseable_manifest",
        manifest_key("D3", 1): "invalid_manifest",
        manifest_key("D1", 1): "unreadable_manifest",
        "debts/D1/events/20261128T120000Z-hold.json": "unparseable_event",
    }
    assert result.manifests == 2 and result.debts == 2
    status = {r["debt_id"]: r["sequence"] for r in catalog.status()}
    assert status == {"D1": 2, "D2": 1}
    assert result.to_dict()["problems"][0]["type"]


def test_reindex_verify_chain_finds_broken_link() -> None:
    store = FakeStore()
    e1, e2 = chain("D1", [{"F1": []}, {"F1": []}])
    e3 = make_manifest("D1", 3, {"F1": []}, previous=(e2[1], h("wrong")))
    for _m, key, data, _sha in (e1, e2):
        store.put(key, data)
    store.put(manifest_key("D1", 3), canonical_sha256(e3)[0])
    e5 = make_manifest("D1", 5, {"F1": []}, previous=(manifest_key("D1", 4), h("x")))
    store.put(manifest_key("D1", 5), canonical_sha256(e5)[0])

    result = reindex(Catalog.open(":memory:"), store, verify_chain=True)
    types = sorted((p.key.rsplit("/", 1)[1], p.kind) for p in result.problems)
    assert types == [
        ("00000003.json", "chain_broken"),
        ("00000005.json", "chain_broken"),
        ("00000005.json", "sequence_gap"),
    ]
    # Chain problems do not stop indexing: S3 holds these manifests, the catalog lists them.
    assert result.manifests == 4
    assert reindex(Catalog.open(":memory:"), store).problems == []


def test_open_file_is_idempotent_and_keeps_runs_on_clear(tmp_path: Path) -> None:
    path = tmp_path / "archiver-catalog.db"
    cat = Catalog.open(path)
    record(cat, chain("D1", [{"F1": ["audio"]}])[0])
    cat.start_run(run_id="r1", started_at="t", command="archive", debt_ids=[], options={})
    again = Catalog.open(path)
    assert again.status()[0]["debt_id"] == "D1"
    assert again.db.journal_mode == "wal"
    again.clear()
    assert again.status() == [] and len(runs(again)) == 1
    again.clear(include_local=True)
    assert runs(again) == []


def test_reindex_validate_schema_is_stricter() -> None:
    store = FakeStore()
    m = make_manifest("D1", 1, {"F1": ["audio"]})
    del m["followups"][0]["media"][0]["sha256"]  # the catalog does not need it, the schema does
    store.put(manifest_key("D1", 1), canonical_sha256(m)[0])
    assert reindex(Catalog.open(":memory:"), store).problems == []
    [problem] = reindex(Catalog.open(":memory:"), store, validate_schema=True).problems
    assert problem.kind == "invalid_manifest" and "sha256" in problem.message


def test_reindex_failure_keeps_previous_catalog() -> None:
    store, entries = _store_with_two_debts()
    catalog = Catalog.open(":memory:")
    record(catalog, entries[0])

    class Boom(Exception):
        pass

    def explode(_key: str, version_id: str | None = None) -> bytes:
        raise Boom()

    store.read_bytes = explode  # type: ignore[method-assign,assignment]
    with pytest.raises(Boom):
        reindex(catalog, store)
    assert [r["debt_id"] for r in catalog.status()] == ["D1"]


def test_open_unusable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Catalog.open(tmp_path / "no-such-dir" / "catalog.db")
    assert "no-such-dir" in str(info.value)


# --------------------------------------------------------------------------- a damaged file


def _filled_catalog(path: Path) -> None:
    cat = Catalog.open(path)
    for entry in chain("D1", [{f"F{i}": ["audio"] for i in range(40)}] * 3):
        record(cat, entry)
    cat.close()  # the WAL goes back into the file


def _corrupt_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    pages = len(data) // page
    assert pages >= 4
    data[page * (pages // 4) : page * (3 * pages // 4)] = b"\xa5" * (page * (pages // 2))
    path.write_bytes(bytes(data))


def test_open_corrupt_file_is_a_config_error_naming_reindex(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    path.write_bytes(b"not a database" * 500)
    with pytest.raises(ConfigError) as info:
        Catalog.open(path)
    assert "corrupt" in str(info.value) and "archiver reindex" in str(info.value)


@pytest.mark.parametrize("damage", ["header", "middle"])
def test_open_replace_corrupt_keeps_the_file_aside(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "catalog.db"
    _filled_catalog(path)
    if damage == "header":
        path.write_bytes(b"\xff" * 100 + path.read_bytes()[100:])
    else:
        _corrupt_middle(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="archiver"):
        fresh = Catalog.open(path, replace_corrupt=True)
    assert fresh.status() == [] and counts(fresh)["manifests"] == 0
    [kept] = [
        p
        for p in tmp_path.iterdir()
        if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))
    ]
    assert kept.read_bytes() == damaged
    assert [r.message for r in caplog.records if "was corrupt" in r.message]


def test_open_replace_corrupt_leaves_a_sound_catalog_alone(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    _filled_catalog(path)
    assert Catalog.open(path, replace_corrupt=True).status()[0]["debt_id"] == "D1"
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []


def test_recorder_of_a_corrupt_catalog_warns_once_and_records_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "catalog.db"
    _filled_catalog(path)
    _corrupt_middle(path)
    with caplog.at_level(logging.WARNING, logger="archiver"):
        recorder = CatalogRecorder.open(path)
        for m, key, _data, sha in chain("D2", [{"F1": ["audio"]}]):
            recorder(ManifestStored("r1", m, key, sha, "v1"))
    assert recorder.catalog is None
    [warning] = caplog.records
    assert str(path) in warning.message and "`archiver reindex`" in warning.message


def test_recorder_that_fails_while_writing_warns_once_and_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Failing(Catalog):
        def record_manifest(self, *args: Any, **kw: Any) -> None:
            calls.append("manifest")
            raise sqlite3.DatabaseError("database disk image is malformed")

    recorder = CatalogRecorder(Failing(sqlite_utils.Database(memory=True)), path="x.db")
    entries = chain("D1", [{"F1": []}, {"F1": [], "F2": []}])
    with caplog.at_level(logging.WARNING, logger="archiver"):
        for m, key, _data, sha in entries:
            recorder(ManifestStored("r1", m, key, sha, "v1"))  # never raises
    assert calls == ["manifest"] and recorder.catalog is None
    [warning] = caplog.records
    assert "x.db" in warning.message and "malformed" in warning.message
    assert "`archiver reindex`" in warning.message


def test_recorder_open_unusable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        CatalogRecorder.open(tmp_path / "no-such-dir" / "catalog.db")
    assert "no-such-dir" in str(info.value)


def test_status_of_a_catalog_corrupted_inside_names_reindex(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    catalog = Catalog.open(path)
    catalog.db["debts"].insert_all(
        [{"debt_id": f"d{i}", "sequence": 1} for i in range(3000)], alter=True
    )
    catalog.close()
    data = bytearray(path.read_bytes())
    middle, span = len(data) // 2, len(data) // 4
    data[middle : middle + span] = b"\xff" * span  # the header is intact, the pages are not
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="archiver reindex"):
        Catalog.open(path).status()
