"""Verification of what is archived: the manifest chain, every object, every lock, the dossiers.

Reads only S3 (never the API, never the catalog). Cheap checks first (the chain, then HEADs),
then the expensive ones (re-hash every object and dossier by streaming; with a re-render,
render each dossier again). Each manifest's trusted timestamp is checked against its bytes
and the trusted TSA roots (:mod:`archiver.audit.timestamps`). Every problem is collected and
typed; nothing stops at the first one. Dossiers are proven by their receipts and the next
manifest (:mod:`archiver.audit.dossiers`).

Multipart uploads under a debt that were started long ago and never completed (a killed
process) are reported too (:mod:`archiver.audit.uploads`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from archiver.audit.dossiers import DossierRerender, check_dossiers
from archiver.audit.timestamps import TimestampTrust, check_timestamps
from archiver.audit.uploads import STALE_UPLOAD_AGE, stale_upload_problems
from archiver.common.canonical import sha256_hex
from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import parse_iso, utcnow
from archiver.errors import ArchiverError
from archiver.manifest.chain import UNREAD, ChainFault, ChainFaultKind, ChainLink, chain_faults
from archiver.manifest.document import all_objects
from archiver.manifest.reader import manifest_history_problems
from archiver.retention.events import purged_versions, read_events
from archiver.retention.holds import hold_active
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["DebtVerification", "DossierRerender", "verify_debt"]

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
    timestamps: int = 0  # timestamp tokens checked
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
            "timestamps": self.timestamps,
            "purged": self.purged,
            "problems": [p.to_dict() for p in self.problems],
            "notices": [p.to_dict() for p in self.notices],
            "repaired": [p.to_dict() for p in self.repaired],
        }


READERS = 4
"""Objects HEADed and re-hashed at once by :func:`verify_debt`."""


def verify_debt(
    store: ObjectStore,
    debt_id: str,
    *,
    dossiers: bool = True,
    rerender: DossierRerender | None = None,
    on_object: Callable[[int], None] | None = None,
    stale_after: timedelta = STALE_UPLOAD_AGE,
    now: Callable[[], datetime] = utcnow,
    timestamps: TimestampTrust | None = None,
) -> DebtVerification:
    """Check one debt completely; see the module docstring. Without ``dossiers`` the stored
    dossiers are not checked; ``rerender`` renders each one again too. Multipart uploads
    started more than ``stale_after`` before ``now()`` are stale. The manifests' timestamp
    tokens are checked against ``timestamps`` (:mod:`archiver.audit.timestamps`; None: no
    trusted TSA roots, no token expected)."""
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
    token_keys: dict[int, str] = {}  # the manifests' timestamp tokens, beside them
    for key in store.list_keys(f"{prefix}manifests/"):
        parsed = keys.parse_manifest_key(key)
        token = keys.parse_manifest_token_key(key)
        if token is not None and token[0] == debt_id:
            token_keys[token[1]] = key
        elif parsed is None:
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
    links: list[ChainLink] = []
    for seq, key in sorted(by_seq.items()):
        data = store.read_bytes(key)
        sha = sha256_hex(data)
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            add(Problem(ProblemKind.MANIFEST_INVALID, f"not JSON: {exc}", debt_id=debt_id, key=key))
            links.append(ChainLink(seq, key, sha, UNREAD))  # the chain runs through its bytes
            continue
        if not _check_manifest_fields(manifest, debt_id, seq, key, add):
            links.append(ChainLink(seq, key, sha, UNREAD))
            continue
        links.append(ChainLink(seq, key, sha, manifest.get("previous")))
        manifests.append((key, sha, manifest))
    for problem in _chain_problems(chain_faults(links), debt_id):
        add(problem)
    result.manifests = len(manifests)

    # 2. objects: each read once (existence, size, lock from its headers), re-hashed
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
    # Several objects in flight: hashing and socket reads release the GIL.
    # One GET per object: its headers give size, lock and hold (what a HEAD would), its body
    # is re-hashed as it streams.
    with ThreadPoolExecutor(READERS, thread_name_prefix="verify") as pool:
        hashed: list[tuple[dict[str, Any], str, int]] = []
        fetched = pool.map(lambda o: store.read_hashed(o["key"], o.get("version_id")), objects)
        for obj, got in zip(objects, fetched, strict=True):
            info = got[0] if got is not None else None
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
            if got is not None:
                hashed.append((obj, got[1], got[2]))
                result.bytes_hashed += got[2]
                result.objects += 1
                if on_object:
                    on_object(got[2])  # as each object is read, for the progress bar
        for obj, found_sha, _ in hashed:
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

    # 3. timestamps: each token stamps its manifest's bytes, signed by a trusted TSA
    stamps = check_timestamps(store, debt_id, links, token_keys, timestamps or TimestampTrust())
    result.timestamps = stamps.tokens
    result.problems += stamps.problems
    result.notices += stamps.notices

    # 4. dossiers: the stored bytes are those their receipt and the next manifest name
    if dossiers:
        found = check_dossiers(store, debt_id, manifests, purged, rerender)
        result.dossiers = found.dossiers
        result.problems += found.problems
        result.notices += found.notices
    return result


def _chain_problems(faults: list[ChainFault], debt_id: str) -> list[Problem]:
    """The chain's faults as verify reports them: each missing sequence by its key; a link
    right after a gap is not checked against the manifest before the gap."""
    problems = []
    after_gap = {f.link.sequence for f in faults if f.kind is ChainFaultKind.SEQUENCE_GAP}
    for fault in faults:
        link = fault.link
        match fault.kind:
            case ChainFaultKind.SEQUENCE_GAP:
                for missing in range(fault.expected_sequence or 1, link.sequence):
                    problems.append(
                        Problem(
                            ProblemKind.CHAIN_BROKEN,
                            f"manifest sequence {missing} is missing",
                            debt_id=debt_id,
                            key=keys.manifest_key(debt_id, missing),
                        )
                    )
                continue
            case _ if link.sequence in after_gap:
                continue
            case ChainFaultKind.FIRST_NAMES_PREVIOUS:
                message, expected, found = "first manifest names a previous one", None, None
            case ChainFaultKind.NAMES_NO_PREVIOUS | ChainFaultKind.KEY_MISMATCH:
                message = "previous key does not name the prior manifest"
                expected = fault.before.key if fault.before else None
                found = str(fault.named.get("key"))
            case ChainFaultKind.SHA256_MISMATCH:
                message = "previous sha256 does not match the stored bytes of the prior manifest"
                expected, found = fault.expected, fault.found
            case _:  # PREVIOUS_UNKNOWN: every manifest verify reads has known bytes
                message, expected, found = fault.message, None, None
        problems.append(
            Problem(
                ProblemKind.CHAIN_BROKEN,
                message,
                debt_id=debt_id,
                key=fault.key,
                expected=expected,
                found=found,
            )
        )
    return problems


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
