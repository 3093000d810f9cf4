"""Verification of what is archived: the manifest chain, every object, every lock, the dossiers.

Reads only S3 (never the API, never the catalog). Cheap checks first (the chain, then HEADs),
then the expensive ones (re-hash every object by streaming, re-render dossiers). Every problem
is collected and typed; nothing stops at the first one.

Multipart uploads under a debt that were started long ago and never completed (a killed
process) are reported too (:mod:`archiver.audit.uploads`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from archiver.audit.uploads import STALE_UPLOAD_AGE, stale_upload_problems
from archiver.common.canonical import sha256_hex
from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import parse_iso, utcnow
from archiver.errors import ArchiverError
from archiver.manifest.document import all_objects
from archiver.manifest.reader import manifest_history_problems
from archiver.retention.events import purged_versions, read_events
from archiver.retention.holds import hold_active
from archiver.store import keys
from archiver.store.objects import ObjectStore

# Every renderer version this tool has shipped (keep in step with
# archiver.dossier.RENDERER_VERSION): a stored dossier claiming one of them and differing from
# today's render is a renderer change; any other claim is a mismatch.
KNOWN_RENDERER_VERSIONS = frozenset({"1.0.0", "1.1.0", "1.2.0"})

_STRENGTH = {None: 0, "GOVERNANCE": 1, "COMPLIANCE": 2}


@dataclass
class DebtVerification:
    """What :func:`verify_debt` found for one debt: counts, ``problems`` (failures) and
    ``notices`` (facts worth reporting that are not failures)."""

    debt_id: str
    manifests: int = 0
    objects: int = 0
    bytes_hashed: int = 0
    dossiers: int = 0
    purged: int = 0  # versions deleted at their maximum, covered by a deletion record
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)  # facts, not failures
    repaired: list[Problem] = field(default_factory=list)  # problems fixed since, no longer in

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "debt_id": self.debt_id,
            "status": "ok" if self.ok else "problems",
            "manifests": self.manifests,
            "objects": self.objects,
            "bytes_hashed": self.bytes_hashed,
            "dossiers": self.dossiers,
            "purged": self.purged,
            "problems": [p.to_dict() for p in self.problems],
            "notices": [p.to_dict() for p in self.notices],
            "repaired": [p.to_dict() for p in self.repaired],
        }


# (manifest, manifest_key, manifest_sha256, store) -> (pdf bytes, renderer version)
DossierRerender = Callable[[dict[str, Any], str, str, ObjectStore], tuple[bytes, str]]


def verify_debt(
    store: ObjectStore,
    debt_id: str,
    *,
    rerender: DossierRerender | None = None,
    on_object: Callable[[int], None] | None = None,
    stale_after: timedelta = STALE_UPLOAD_AGE,
    now: Callable[[], datetime] = utcnow,
) -> DebtVerification:
    """Check one debt completely; see the module docstring. Multipart uploads started more
    than ``stale_after`` before ``now()`` are stale."""
    result = DebtVerification(debt_id)
    add = result.problems.append
    try:
        prefix = keys.debt_prefix(debt_id)
    except ArchiverError as exc:
        add(Problem(ProblemKind.MANIFEST_INVALID, str(exc), debt_id=debt_id))
        return result

    # first, leftovers of a killed process (one LIST): uploads never completed nor aborted
    for problem in stale_upload_problems(store, debt_id, now() - stale_after):
        add(problem)

    # 0. history (one LIST of versions): rewritten manifests, delete markers
    for problem in _history(store, debt_id, prefix):
        add(problem)

    # 1. the chain (cheap): contiguous sequences, previous = sha of the stored bytes
    by_seq: dict[int, str] = {}
    for key in store.list_keys(f"{prefix}manifests/"):
        parsed = keys.parse_manifest_key(key)
        if parsed is None:
            add(
                Problem(
                    ProblemKind.MANIFEST_INVALID,
                    "unexpected object among manifests",
                    debt_id=debt_id,
                    key=key,
                )
            )
        else:
            by_seq[parsed[1]] = key
    if not by_seq:
        add(
            Problem(
                ProblemKind.MANIFEST_INVALID, "no manifest stored for this debt", debt_id=debt_id
            )
        )
        return result
    manifests: list[tuple[str, str, dict[str, Any]]] = []
    prev: tuple[str, str] | None = None
    for expected_seq in range(1, max(by_seq) + 1):
        found_key = by_seq.get(expected_seq)
        if found_key is None:
            add(
                Problem(
                    ProblemKind.CHAIN_BROKEN,
                    f"manifest sequence {expected_seq} is missing",
                    debt_id=debt_id,
                    key=keys.manifest_key(debt_id, expected_seq),
                )
            )
            prev = None
            continue
        key = found_key
        data = store.read_bytes(key)
        sha = sha256_hex(data)
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            add(Problem(ProblemKind.MANIFEST_INVALID, f"not JSON: {exc}", debt_id=debt_id, key=key))
            prev = (key, sha)
            continue
        if not _check_manifest_fields(manifest, debt_id, expected_seq, key, add):
            prev = (key, sha)  # the chain still runs through its bytes
            continue
        claimed = manifest.get("previous")
        if expected_seq == 1:
            if claimed is not None:
                add(
                    Problem(
                        ProblemKind.CHAIN_BROKEN,
                        "first manifest names a previous one",
                        debt_id=debt_id,
                        key=key,
                    )
                )
        elif prev is not None:
            if not isinstance(claimed, dict) or claimed.get("key") != prev[0]:
                add(
                    Problem(
                        ProblemKind.CHAIN_BROKEN,
                        "previous key does not name the prior manifest",
                        debt_id=debt_id,
                        key=key,
                        expected=prev[0],
                        found=str((claimed or {}).get("key")),
                    )
                )
            elif claimed.get("sha256") != prev[1]:
                add(
                    Problem(
                        ProblemKind.CHAIN_BROKEN,
                        "previous sha256 does not match the stored bytes of the prior manifest",
                        debt_id=debt_id,
                        key=key,
                        expected=prev[1],
                        found=str(claimed.get("sha256")),
                    )
                )
        prev = (key, sha)
        manifests.append((key, sha, manifest))
    result.manifests = len(manifests)

    # 2. objects: HEAD each (existence, size, lock), then re-hash by streaming
    seen: set[tuple[str, str | None]] = set()
    objects: list[dict[str, Any]] = []
    for _, _, manifest in manifests:
        for obj in all_objects(manifest):
            ident = (obj["key"], obj.get("version_id"))
            if ident not in seen:
                seen.add(ident)
                objects.append(obj)
    purged = purged_versions(read_events(store, debt_id))
    hold = hold_active(store, debt_id)
    heads = []
    for obj in objects:
        info = store.head(obj["key"], obj.get("version_id"))
        gone = obj.get("purged") or purged.get((obj["key"], obj.get("version_id")))
        if info is None and gone:
            # Deleted at its maximum retention: fine if a deletion record names these bytes.
            record = purged.get((obj["key"], obj.get("version_id")))
            if record is None:
                add(
                    Problem(
                        ProblemKind.OBJECT_MISSING,
                        "marked purged but no deletion record names this version",
                        debt_id=debt_id,
                        key=obj["key"],
                        expected=obj.get("version_id"),
                    )
                )
            elif record.get("sha256") not in (None, obj["sha256"]):
                add(
                    Problem(
                        ProblemKind.CHECKSUM_MISMATCH,
                        "the deletion record names other bytes than the manifest",
                        debt_id=debt_id,
                        key=obj["key"],
                        expected=obj["sha256"],
                        found=str(record.get("sha256")),
                    )
                )
            result.purged += 1
            continue
        if info is None:
            add(
                Problem(
                    ProblemKind.OBJECT_MISSING,
                    f"{obj['kind']} object is missing"
                    + (" (its version is gone)" if obj.get("version_id") else ""),
                    debt_id=debt_id,
                    key=obj["key"],
                    expected=obj.get("version_id"),
                )
            )
            continue
        if obj.get("size") is not None and info.size != obj["size"]:
            add(
                Problem(
                    ProblemKind.SIZE_MISMATCH,
                    "stored size differs from the manifest",
                    debt_id=debt_id,
                    key=obj["key"],
                    expected=str(obj["size"]),
                    found=str(info.size),
                )
            )
        _check_lock(obj, info.lock_mode, info.retain_until, info.legal_hold, debt_id, add)
        if hold and not info.legal_hold:
            add(
                Problem(
                    ProblemKind.HOLD_MISSING,
                    "the debt is on legal hold but this version is not held",
                    debt_id=debt_id,
                    key=obj["key"],
                    expected="legal hold ON",
                    found="OFF",
                )
            )
        heads.append(obj)
    for obj in heads:
        found_sha, size = store.sha256_of(obj["key"], obj.get("version_id"))
        result.bytes_hashed += size
        result.objects += 1
        if on_object:
            on_object(size)
        if found_sha != obj["sha256"]:
            add(
                Problem(
                    ProblemKind.CHECKSUM_MISMATCH,
                    "content SHA-256 differs from the manifest",
                    debt_id=debt_id,
                    key=obj["key"],
                    expected=obj["sha256"],
                    found=found_sha,
                )
            )

    # 3. dossiers: stored bytes equal a fresh render of the same manifest
    if rerender is not None:
        for mkey, msha, manifest in manifests:
            _check_dossier(store, debt_id, mkey, msha, manifest, purged, rerender, result)
    return result


def _history(store: ObjectStore, debt_id: str, prefix: str) -> list[Problem]:
    """Rewritten or deleted manifests break the chain; a delete marker anywhere else means
    someone tried to delete evidence (Object Lock kept the data, but the key looks gone)."""
    found = [
        Problem(ProblemKind.CHAIN_BROKEN, text, debt_id=debt_id)
        for text in manifest_history_problems(store, debt_id)
    ]
    for v in store.list_versions(prefix):
        if v.is_delete_marker and v.is_latest and "/manifests/" not in v.key:
            found.append(
                Problem(
                    ProblemKind.DELETE_MARKER,
                    "the current version is a delete marker: someone deleted this key "
                    "(the locked versions are still there)",
                    debt_id=debt_id,
                    key=v.key,
                )
            )
    return found


def _check_dossier(
    store: ObjectStore,
    debt_id: str,
    mkey: str,
    msha: str,
    manifest: dict[str, Any],
    purged: dict[tuple[str, str | None], dict[str, Any]],
    rerender: DossierRerender,
    result: DebtVerification,
) -> None:
    seq = manifest.get("sequence")
    if not isinstance(seq, int):
        return
    dkey = keys.dossier_key(debt_id, seq)
    stored = store.head(dkey)
    if stored is None:
        if any(k == dkey for k, _ in purged):
            return  # deleted at its maximum, with a deletion record
        result.problems.append(
            Problem(
                ProblemKind.DOSSIER_MISSING,
                "no dossier stored for this manifest",
                debt_id=debt_id,
                key=dkey,
            )
        )
        return
    result.dossiers += 1
    if any(f.get("record_purged") for f in manifest.get("followups", [])):
        result.notices.append(
            Problem(
                ProblemKind.DOSSIER_NOT_RERENDERED,
                "some records of this manifest were "
                "purged at their maximum retention, so it cannot be rendered again",
                debt_id=debt_id,
                key=dkey,
            )
        )
        return
    stored_sha, _ = store.sha256_of(dkey)
    try:
        pdf, version = rerender(manifest, mkey, msha, store)
    except ArchiverError as exc:
        result.problems.append(
            Problem(
                ProblemKind.DOSSIER_MISMATCH, f"re-render failed: {exc}", debt_id=debt_id, key=dkey
            )
        )
        return
    if sha256_hex(pdf) == stored_sha:
        return
    stored_version = stored.metadata.get("renderer-version")
    if stored_version in KNOWN_RENDERER_VERSIONS and stored_version != version:
        # A later renderer draws the same manifest differently: expected, not tampering.
        result.notices.append(
            Problem(
                ProblemKind.DOSSIER_RENDERER_CHANGED,
                "stored dossier was rendered by an earlier renderer version; a re-render with "
                "this version differs, which is expected, not tampering",
                debt_id=debt_id,
                key=dkey,
                expected=stored_version,
                found=version,
            )
        )
        return
    result.problems.append(
        Problem(
            ProblemKind.DOSSIER_MISMATCH,
            "stored dossier differs from a re-render of its manifest",
            debt_id=debt_id,
            key=dkey,
            expected=sha256_hex(pdf),
            found=stored_sha,
        )
    )


def _check_manifest_fields(
    manifest: Any, debt_id: str, seq: int, key: str, add: Callable[[Problem], None]
) -> bool:
    """Schema and identity checks; False when the manifest cannot be read further."""
    from archiver.common.schemas import validate

    invalid = validate("manifest", manifest)
    for err in invalid:
        add(Problem(ProblemKind.MANIFEST_INVALID, str(err), debt_id=debt_id, key=key))
    if isinstance(manifest, dict):
        if manifest.get("debt_id") != debt_id:
            add(
                Problem(
                    ProblemKind.MANIFEST_INVALID,
                    "manifest names another debt",
                    debt_id=debt_id,
                    key=key,
                    expected=debt_id,
                    found=str(manifest.get("debt_id")),
                )
            )
        if manifest.get("sequence") != seq:
            add(
                Problem(
                    ProblemKind.CHAIN_BROKEN,
                    "sequence inside differs from the key",
                    debt_id=debt_id,
                    key=key,
                    expected=str(seq),
                    found=str(manifest.get("sequence")),
                )
            )
    return not invalid and isinstance(manifest, dict)


def _check_lock(
    obj: dict[str, Any],
    mode: str | None,
    until: datetime | None,
    hold: bool | None,
    debt_id: str,
    add: Callable[[Problem], None],
) -> None:
    want_mode = obj.get("retention_mode")
    want_until = parse_iso(obj.get("retain_until"))
    if _STRENGTH.get(mode, 0) < _STRENGTH.get(want_mode, 0):
        add(
            Problem(
                ProblemKind.LOCK_WEAKER,
                "retention mode weaker than the manifest says",
                debt_id=debt_id,
                key=obj["key"],
                expected=str(want_mode),
                found=str(mode),
            )
        )
    if want_until is not None and (until is None or until < want_until.replace(microsecond=0)):
        add(
            Problem(
                ProblemKind.LOCK_WEAKER,
                "retain-until earlier than the manifest says",
                debt_id=debt_id,
                key=obj["key"],
                expected=obj.get("retain_until"),
                found=until.isoformat() if until else None,
            )
        )
