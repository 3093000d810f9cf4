"""Verification of what is archived: the manifest chain, every object, every lock, the dossiers.

Reads only S3 (never the API, never the catalog). Cheap checks first (the chain, then HEADs),
then the expensive ones (re-hash every object by streaming, re-render dossiers). Every problem
is collected and typed; nothing stops at the first one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from . import keys
from .canonical import sha256_hex
from .errors import ArchiverError
from .manifest import all_objects, parse_iso
from .storage import ObjectStore

_STRENGTH = {None: 0, "GOVERNANCE": 1, "COMPLIANCE": 2}


@dataclass(frozen=True)
class Problem:
    """One thing wrong. ``type`` is one of: ManifestInvalid, ChainBroken, ObjectMissing,
    SizeMismatch, ChecksumMismatch, LockWeaker, DossierMissing, DossierMismatch,
    DossierRendererChanged."""

    type: str
    debt_id: str
    message: str
    key: str | None = None
    expected: str | None = None
    found: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class DebtVerification:
    debt_id: str
    manifests: int = 0
    objects: int = 0
    bytes_hashed: int = 0
    dossiers: int = 0
    problems: list[Problem] = field(default_factory=list)

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
            "problems": [p.to_dict() for p in self.problems],
        }


# (manifest, manifest_key, manifest_sha256, store) -> (pdf bytes, renderer version)
DossierRerender = Callable[[dict[str, Any], str, str, ObjectStore], tuple[bytes, str]]


def debts_in_bucket(store: ObjectStore) -> list[str]:
    """Every debt id that has at least one manifest."""
    found = set()
    for key in store.list_keys("debts/"):
        parsed = keys.parse_manifest_key(key)
        if parsed:
            found.add(parsed[0])
    return sorted(found)


def verify_debt(
    store: ObjectStore,
    debt_id: str,
    *,
    rerender: DossierRerender | None = None,
    renderer_version: str | None = None,
    on_object: Callable[[int], None] | None = None,
) -> DebtVerification:
    """Check one debt completely; see the module docstring."""
    result = DebtVerification(debt_id)
    add = result.problems.append
    try:
        prefix = keys.debt_prefix(debt_id)
    except ArchiverError as exc:
        add(Problem("ManifestInvalid", debt_id, str(exc)))
        return result

    # 1. the chain (cheap): contiguous sequences, previous = sha of the stored bytes
    by_seq: dict[int, str] = {}
    for key in store.list_keys(f"{prefix}manifests/"):
        parsed = keys.parse_manifest_key(key)
        if parsed is None:
            add(Problem("ManifestInvalid", debt_id, "unexpected object among manifests", key))
        else:
            by_seq[parsed[1]] = key
    if not by_seq:
        add(Problem("ManifestInvalid", debt_id, "no manifest stored for this debt"))
        return result
    manifests: list[tuple[str, str, dict[str, Any]]] = []
    prev: tuple[str, str] | None = None
    for expected_seq in range(1, max(by_seq) + 1):
        found_key = by_seq.get(expected_seq)
        if found_key is None:
            add(
                Problem(
                    "ChainBroken",
                    debt_id,
                    f"manifest sequence {expected_seq} is missing",
                    keys.manifest_key(debt_id, expected_seq),
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
            add(Problem("ManifestInvalid", debt_id, f"not JSON: {exc}", key))
            prev = (key, sha)
            continue
        _check_manifest_fields(manifest, debt_id, expected_seq, key, add)
        claimed = manifest.get("previous")
        if expected_seq == 1:
            if claimed is not None:
                add(Problem("ChainBroken", debt_id, "first manifest names a previous one", key))
        elif prev is not None:
            if not isinstance(claimed, dict) or claimed.get("key") != prev[0]:
                add(
                    Problem(
                        "ChainBroken",
                        debt_id,
                        "previous key does not name the prior manifest",
                        key,
                        expected=prev[0],
                        found=str((claimed or {}).get("key")),
                    )
                )
            elif claimed.get("sha256") != prev[1]:
                add(
                    Problem(
                        "ChainBroken",
                        debt_id,
                        "previous sha256 does not match the stored bytes of the prior manifest",
                        key,
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
    heads = []
    for obj in objects:
        info = store.head(obj["key"], obj.get("version_id"))
        if info is None:
            add(
                Problem(
                    "ObjectMissing",
                    debt_id,
                    f"{obj['kind']} object is missing"
                    + (" (its version is gone)" if obj.get("version_id") else ""),
                    obj["key"],
                    expected=obj.get("version_id"),
                )
            )
            continue
        if obj.get("size") is not None and info.size != obj["size"]:
            add(
                Problem(
                    "SizeMismatch",
                    debt_id,
                    "stored size differs from the manifest",
                    obj["key"],
                    expected=str(obj["size"]),
                    found=str(info.size),
                )
            )
        _check_lock(obj, info.lock_mode, info.retain_until, info.legal_hold, debt_id, add)
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
                    "ChecksumMismatch",
                    debt_id,
                    "content SHA-256 differs from the manifest",
                    obj["key"],
                    expected=obj["sha256"],
                    found=found_sha,
                )
            )

    # 3. dossiers: stored bytes equal a fresh render of the same manifest
    if rerender is not None:
        for mkey, msha, manifest in manifests:
            seq = manifest.get("sequence")
            if not isinstance(seq, int):
                continue
            dkey = keys.dossier_key(debt_id, seq)
            stored = store.head(dkey)
            if stored is None:
                add(Problem("DossierMissing", debt_id, "no dossier stored for this manifest", dkey))
                continue
            result.dossiers += 1
            stored_sha, _ = store.sha256_of(dkey)
            try:
                pdf, version = rerender(manifest, mkey, msha, store)
            except ArchiverError as exc:
                add(Problem("DossierMismatch", debt_id, f"re-render failed: {exc}", dkey))
                continue
            if sha256_hex(pdf) == stored_sha:
                continue
            stored_version = stored.metadata.get("renderer-version")
            if stored_version and stored_version != version:
                add(
                    Problem(
                        "DossierRendererChanged",
                        debt_id,
                        "stored dossier was rendered by another renderer version; "
                        "a re-render differs, which is expected, not tampering",
                        dkey,
                        expected=stored_version,
                        found=version,
                    )
                )
            else:
                add(
                    Problem(
                        "DossierMismatch",
                        debt_id,
                        "stored dossier differs from a re-render of its manifest",
                        dkey,
                        expected=sha256_hex(pdf),
                        found=stored_sha,
                    )
                )
    return result


def _check_manifest_fields(
    manifest: Any, debt_id: str, seq: int, key: str, add: Callable[[Problem], None]
) -> None:
    from .schemas import validate

    for err in validate("manifest", manifest):
        add(Problem("ManifestInvalid", debt_id, str(err), key))
    if isinstance(manifest, dict):
        if manifest.get("debt_id") != debt_id:
            add(
                Problem(
                    "ManifestInvalid",
                    debt_id,
                    "manifest names another debt",
                    key,
                    expected=debt_id,
                    found=str(manifest.get("debt_id")),
                )
            )
        if manifest.get("sequence") != seq:
            add(
                Problem(
                    "ChainBroken",
                    debt_id,
                    "sequence inside differs from the key",
                    key,
                    expected=str(seq),
                    found=str(manifest.get("sequence")),
                )
            )


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
                "LockWeaker",
                debt_id,
                "retention mode weaker than the manifest says",
                obj["key"],
                expected=str(want_mode),
                found=str(mode),
            )
        )
    if want_until is not None and (until is None or until < want_until.replace(microsecond=0)):
        add(
            Problem(
                "LockWeaker",
                debt_id,
                "retain-until earlier than the manifest says",
                obj["key"],
                expected=obj.get("retain_until"),
                found=until.isoformat() if until else None,
            )
        )


def verify_many(store: ObjectStore, debt_ids: Iterable[str], **kw: Any) -> list[DebtVerification]:
    return [verify_debt(store, d, **kw) for d in debt_ids]
