"""Reads what a dossier is rendered from out of the archive, checking every SHA-256.

Only two methods of :class:`archiver.store.objects.ObjectStore` are used (``list_keys`` and
``read_bytes``), so any object with those can stand in for it in tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from archiver.common.canonical import canonical_json, sha256_hex
from archiver.common.ids import check_id
from archiver.common.schemas import validate
from archiver.common.time import parse_iso_lenient
from archiver.manifest.reader import manifest_keys
from archiver.retention.events import read_events
from archiver.store import keys

from ..errors import ArchiverError, IntegrityError, StorageError
from .data import DossierInput


class ReadableStore(Protocol):
    """What the loader needs of an object store."""

    def list_keys(self, prefix: str) -> Any: ...

    def read_bytes(self, key: str, version_id: str | None = None) -> bytes: ...


def _read(store: ReadableStore, key: str, version_id: str | None = None) -> bytes:
    try:
        return store.read_bytes(key, version_id)
    except ArchiverError:
        raise
    except KeyError as exc:  # in-memory stores
        raise StorageError("object not found", key=key) from exc


def _json(data: bytes, key: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"stored object is not JSON: {exc}", key=key) from None


def latest_sequence(store: ReadableStore, debt_id: str) -> int | None:
    """The highest manifest sequence stored for ``debt_id``, or None."""
    stored = manifest_keys(store, debt_id)
    return stored[-1][0] if stored else None


def events_until(events: list[dict[str, Any]], until: str | None) -> list[dict[str, Any]]:
    """The events (as :func:`archiver.retention.events.read_events` gives them, oldest first)
    dated at or before ``until`` (ISO 8601); all of them when ``until`` is None.

    A dossier shows the events up to its manifest's ``created_at`` only, so that rendering the
    same manifest later (after new holds) still gives the same bytes. An event without a
    readable ``at`` is left out when there is a limit.
    """
    limit = parse_iso_lenient(until) if until else None
    if limit is None:
        return list(events)
    kept = []
    for event in events:
        at = parse_iso_lenient(event.get("at"))
        if at is not None and at <= limit:
            kept.append(event)
    return kept


def manifest_events(events: list[dict[str, Any]], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The events (as :func:`archiver.retention.events.read_events` gives them) that the
    dossier of ``manifest`` shows: up to the one its ``legal_hold.last_event`` names, in the
    store's order (the hold state it recorded was read from exactly those); for a manifest
    without it, those dated up to its ``created_at`` (:func:`events_until`)."""
    hold = manifest.get("legal_hold")
    if isinstance(hold, dict) and "last_event" in hold:
        last = hold["last_event"]
        if last is None:
            return []
        keys = [e.get("key") for e in events]
        if last in keys:
            return events[: keys.index(last) + 1]
    return events_until(events, manifest.get("created_at"))


def load_events(store: ReadableStore, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The events the dossier of ``manifest`` shows (:func:`manifest_events`), read from
    ``store``; the same at archive time as when rendered again later."""
    return manifest_events(read_events(store, manifest["debt_id"]), manifest)


def load_timestamps(
    store: ReadableStore, debt_id: str, upto: int, only: set[int] | None = None
) -> dict[int, bytes]:
    """The stored tokens of manifests 1..``upto`` of ``debt_id`` (one LIST, one GET each);
    with ``only``, of those sequences alone (the ones a stored dossier showed)."""
    found: dict[int, bytes] = {}
    for key in store.list_keys(f"{keys.debt_prefix(debt_id)}manifests/"):
        parsed = keys.parse_manifest_token_key(key)
        if parsed is None or parsed[0] != debt_id or parsed[1] > upto:
            continue
        if only is None or parsed[1] in only:
            found[parsed[1]] = _read(store, key)
    return found


def format_sequences(sequences: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3,5"``: which tokens a dossier shows, short enough for the
    S3 metadata of the dossier (read back with :func:`parse_sequences`)."""
    runs: list[list[int]] = []
    for seq in sorted(set(sequences)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def parse_sequences(text: str | None) -> set[int]:
    """``"1-3,5"`` -> ``{1, 2, 3, 5}``; what cannot be read is left out."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            out.update(range(int(first), int(last or first) + 1))
    return out


def load_dossier_input(
    store: ReadableStore,
    debt_id: str,
    sequence: int | None = None,
    *,
    later_events: bool = False,
) -> DossierInput:
    """Read manifest ``sequence`` of ``debt_id`` (the latest when None) and everything it names.

    The events are those the manifest accounts for (:func:`manifest_events`): the input of
    the dossier stored with it. With ``later_events`` the events recorded since are given too
    (``DossierInput.later_events``), for a dossier rendered on demand that must show a hold
    or release the manifest predates.

    The tokens are those stored for manifests 1..``sequence`` now (:func:`load_timestamps`);
    the dossier stored with the manifest may have shown fewer (its S3 metadata says which).

    Every record and the debt record are re-hashed and compared with the manifest; all
    mismatches are collected and raised together as one :class:`IntegrityError` (a dossier
    must never present evidence that does not match its manifest). Raises
    :class:`StorageError` when the debt has no manifest.
    """
    check_id(debt_id, what="debt id")
    if sequence is None:
        sequence = latest_sequence(store, debt_id)
        if sequence is None:
            raise StorageError("no manifest stored for this debt", debt_id=debt_id)
    mkey = keys.manifest_key(debt_id, sequence)
    data = _read(store, mkey)
    msha = sha256_hex(data)
    manifest = _json(data, mkey)
    problems: list[dict[str, Any]] = []

    def problem(kind: str, key: str, message: str, **extra: Any) -> None:
        problems.append({"type": kind, "key": key, "message": message, **extra})

    if not isinstance(manifest, dict):
        raise IntegrityError("manifest is not a JSON object", key=mkey, debt_id=debt_id)
    invalid = validate("manifest", manifest)
    if invalid:
        raise IntegrityError(
            "manifest does not match schemas/manifest.schema.json",
            problems=[{"type": "ManifestInvalid", "key": mkey, "message": str(e)} for e in invalid],
            key=mkey,
            debt_id=debt_id,
        )
    if manifest.get("debt_id") != debt_id or manifest.get("sequence") != sequence:
        problem(
            "ManifestMismatch",
            mkey,
            "debt_id/sequence inside differ from the key",
            found=f"{manifest.get('debt_id')}/{manifest.get('sequence')}",
        )
    if canonical_json(manifest) != data:
        # Its SHA-256 is still what we report, but the chain rules require canonical bytes.
        problem("ManifestNotCanonical", mkey, "manifest bytes are not RFC 8785 canonical JSON")

    records: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("followups") or []:
        if entry.get("record_purged"):
            continue  # deleted at its maximum retention: nothing left to show
        rkey = entry.get("record_key", "")
        try:
            rdata = _read(store, rkey, entry.get("record_version_id"))
        except StorageError as exc:
            problem("RecordMissing", rkey, str(exc), followup_id=entry.get("id"))
            continue
        found = sha256_hex(rdata)
        if found != entry.get("record_sha256"):
            problem(
                "ChecksumMismatch",
                rkey,
                "record SHA-256 differs from the manifest",
                followup_id=entry.get("id"),
                expected=entry.get("record_sha256"),
                found=found,
            )
            continue
        record = _json(rdata, rkey)
        if isinstance(record, dict):
            records[str(entry.get("id"))] = record

    debt: dict[str, Any] | None = None
    ref = manifest.get("debt")  # a purged debt record is gone: the cover says so
    if isinstance(ref, dict) and ref.get("key") and not ref.get("purged"):
        try:
            ddata = _read(store, ref["key"], ref.get("version_id"))
        except StorageError as exc:
            problem("RecordMissing", ref["key"], str(exc))
        else:
            found = sha256_hex(ddata)
            if found != ref.get("sha256"):
                problem(
                    "ChecksumMismatch",
                    ref["key"],
                    "debt record SHA-256 differs",
                    expected=ref.get("sha256"),
                    found=found,
                )
            else:
                parsed = _json(ddata, ref["key"])
                debt = parsed if isinstance(parsed, dict) else None

    if problems:
        raise IntegrityError(
            f"{len(problems)} problem(s) reading the archive of manifest {sequence}; "
            "run `archiver verify` for the full report",
            problems=problems,
            debt_id=debt_id,
            key=mkey,
        )
    events = read_events(store, debt_id)
    until = manifest_events(events, manifest)
    shown = {e["key"] for e in until}
    return DossierInput(
        manifest=manifest,
        manifest_key=mkey,
        manifest_sha256=msha,
        records=records,
        debt=debt,
        events=until,
        later_events=[e for e in events if e["key"] not in shown] if later_events else [],
        timestamps=load_timestamps(store, debt_id, sequence),
    )
