"""``archiver pack verify``: an evidence pack checked offline, with nothing but the pack.

1. The bag (bagit-python): structure, Payload-Oxum, completeness and both digests of every
   payload and tag file. When bagit-python finds the bag invalid, each file is checked on
   its own as well, so that every missing, added or changed file is named.
2. The tags against the shipped BagIt profile (:mod:`archiver.pack.profile`).
3. The manifest chain inside the pack (:func:`archiver.manifest.chain.chain_faults`), and the
   manifest the pack is made from against the key and SHA-256 ``bag-info.txt`` names.
4. Every record, medium and debt record that manifest names against its entry (SHA-256,
   size); a purged object against its deletion record in ``data/events/``.
5. The dossier against its receipt, and the receipt against the manifest.
6. Every timestamp token: its message imprint must be its manifest's SHA-256; with a
   ``token_verifier`` (the TSA signature and certificate chain) that too.

Every problem is collected and typed (:class:`archiver.common.problems.Problem`), each naming
the pack file (``key``) it is about.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bagit

from archiver.common.problems import Problem, ProblemKind
from archiver.common.schemas import validate
from archiver.errors import ArchiverError
from archiver.manifest.chain import UNREAD, ChainLink, chain_faults
from archiver.manifest.receipt import read_receipt
from archiver.pack.copy import hash_file, read_json
from archiver.pack.layout import (
    DATA,
    DOSSIER_PATH,
    RECEIPT_PATH,
    TSA_CA_PATH,
    manifest_items,
    pack_path,
    token_sequences,
)
from archiver.pack.profile import profile_faults
from archiver.pack.zipped import extract_zip, is_zip
from archiver.retention.events import purged_versions
from archiver.store import keys

__all__ = ["PackVerification", "TokenVerifier", "imprint_matches", "verify_pack"]

TokenVerifier = Callable[[bytes, str], list[str]]
"""``(token bytes, the manifest's SHA-256 hex) -> faults``: a full RFC 3161 check (signature,
certificate chain, policy) where one is available; the imprint is checked here anyway."""

# DER of the AlgorithmIdentifier OID of SHA-256 (2.16.840.1.101.3.4.2.1).
_SHA256_OID = bytes.fromhex("0609608648016503040201")
_STANDARD_TAG_FILES = {"bagit.txt", "bag-info.txt", "fetch.txt"}


@dataclass
class PackVerification:
    """What :func:`verify_pack` found."""

    path: str
    debt_id: str | None = None
    sequence: int | None = None
    files: int = 0
    manifests: int = 0
    tokens: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: ProblemKind, message: str, key: str | None = None, **kw: Any) -> None:
        problem = Problem(kind, message, debt_id=self.debt_id, key=key, **kw)
        (self.problems if problem.blocking else self.notices).append(problem)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": "ok" if self.ok else "problems",
            "debt_id": self.debt_id,
            "sequence": self.sequence,
            "files": self.files,
            "manifests": self.manifests,
            "tokens": self.tokens,
            "problems": [p.to_dict() for p in self.problems],
            "notices": [p.to_dict() for p in self.notices],
        }


def imprint_matches(token: bytes, sha256_hex: str) -> bool:
    """Whether an RFC 3161 token's bytes carry the message imprint SHA-256 ``sha256_hex``
    (its DER: the SHA-256 algorithm identifier, then the 32-byte digest as an OCTET STRING)."""
    try:
        digest = bytes.fromhex(sha256_hex)
    except ValueError:
        return False
    at = token.find(b"\x04\x20" + digest)
    return at > 0 and _SHA256_OID in token[max(0, at - 32) : at]


def tsa_verifier(root: Path) -> TokenVerifier:
    """Token checks with the TSA roots the pack carries (``data/tsa-ca.pem``): the signature
    and the chain up to them (:func:`archiver.timestamps.tokens.verify_token`). A pack without
    roots checks the imprint only (a notice says the signatures were not checked)."""
    from archiver.timestamps.tokens import verify_token

    ca_path = root / TSA_CA_PATH
    ca = ca_path.read_bytes() if ca_path.is_file() else None

    def check(token: bytes, sha256: str) -> list[str]:
        found = verify_token(token, sha256, ca)
        return [p.message for p in found.problems if p.severity == "error"]

    return check


def verify_pack(path: Path, *, token_verifier: TokenVerifier | None = None) -> PackVerification:
    """Check the pack at ``path`` (its folder, or its .zip); see the module docstring.
    ``token_verifier``: how tokens are checked beyond their imprint (default:
    :func:`tsa_verifier` with the pack's own TSA roots)."""
    path = Path(path)
    result = PackVerification(str(path))
    if is_zip(path):
        with tempfile.TemporaryDirectory(prefix="archiver-pack-") as tmp:
            try:
                root = extract_zip(path, Path(tmp))
            except ArchiverError as exc:
                result.add(ProblemKind.PACK_INVALID, exc.message, exc.context.get("path"))
                return result
            _verify_folder(root, result, token_verifier or tsa_verifier(root))
        return result
    if not path.is_dir():
        result.add(ProblemKind.PACK_INVALID, "not a pack: neither a folder nor a zip file")
        return result
    _verify_folder(path, result, token_verifier or tsa_verifier(path))
    return result


class _Files:
    """The payload files of the bag and their SHA-256: from the bag's own manifest once
    bagit-python has validated every digest, else hashed here."""

    def __init__(self, root: Path, trusted: Mapping[str, str] | None) -> None:
        self.root = root
        self.trusted = trusted
        self._hashed: dict[str, tuple[str, int]] = {}

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def sha256(self, rel: str) -> str:
        return self.fixity(rel)[0]

    def fixity(self, rel: str) -> tuple[str, int]:
        if rel not in self._hashed:
            size = (self.root / rel).stat().st_size
            if self.trusted is not None and rel in self.trusted:
                self._hashed[rel] = (self.trusted[rel], size)
            else:
                self._hashed[rel] = (hash_file(self.root / rel).sha256, size)
        return self._hashed[rel]


def _verify_folder(root: Path, result: PackVerification, tokens: TokenVerifier | None) -> None:
    bag, valid = _check_bag(root, result)
    info: Mapping[str, Any] = bag.info if bag is not None else {}
    debt_id = _one(info.get("External-Identifier"))
    result.debt_id = debt_id
    payload = (
        [p.relative_to(root).as_posix() for p in (root / DATA).rglob("*") if p.is_file()]
        if (root / DATA).is_dir()
        else []
    )
    result.files = len(payload)
    trusted = None
    if bag is not None and valid:  # bagit-python re-hashed every file: its digests hold
        trusted = {
            path.replace(os.sep, "/"): digests["sha256"]
            for path, digests in bag.entries.items()
            if "sha256" in digests
        }
    files = _Files(root, trusted)
    if not debt_id:
        result.add(ProblemKind.PACK_PROFILE, "bag-info.txt names no debt (External-Identifier)")
        return
    try:
        keys.debt_prefix(debt_id)
    except ArchiverError as exc:
        result.add(ProblemKind.PACK_PROFILE, f"External-Identifier: {exc.message}")
        return
    manifest, msha = _check_chain(root, info, files, result)
    if manifest is None or msha is None:
        return
    _check_objects(root, manifest, files, result)
    _check_dossier(manifest, msha, files, result)
    _check_tokens(root, files, result, tokens)


def _one(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def _check_bag(root: Path, result: PackVerification) -> tuple[bagit.Bag | None, bool]:
    """bagit-python's validation (the bag, and whether it is valid); on failure every file
    on its own, named."""
    try:
        bag = bagit.Bag(str(root))
    except bagit.BagError as exc:
        result.add(ProblemKind.PACK_INVALID, f"not a bag: {exc}")
        return None, False
    valid = False
    try:
        bag.validate(processes=1)
        valid = True
    except bagit.BagValidationError as exc:
        result.add(ProblemKind.PACK_INVALID, f"bagit: {exc.message}")
        _name_each_fault(root, bag, result)
    except bagit.BagError as exc:
        result.add(ProblemKind.PACK_INVALID, f"bagit: {exc}")
    tagfiles = {p.replace(os.sep, "/") for p in bag.tagfile_entries()}
    for entry in sorted(os.listdir(root)):
        if entry in _STANDARD_TAG_FILES or entry == DATA or entry in tagfiles:
            continue
        if entry.startswith(("manifest-", "tagmanifest-")) and entry.endswith(".txt"):
            continue
        result.add(
            ProblemKind.PACK_UNEXPECTED_FILE,
            "a file no tag manifest names is in the bag's top folder",
            key=entry,
        )
    manifests = {Path(f).name[len("manifest-") : -4] for f in bag.manifest_files()}
    tagmanifests = {Path(f).name[len("tagmanifest-") : -4] for f in bag.tagmanifest_files()}
    for fault in profile_faults(
        bag.info, bag.tags.get("BagIt-Version", ""), manifests, tagmanifests
    ):
        result.add(ProblemKind.PACK_PROFILE, fault, key="bag-info.txt")
    return bag, valid


def _name_each_fault(root: Path, bag: bagit.Bag, result: PackVerification) -> None:
    """Every file bagit-python's verdict is about, named: missing, added, changed."""
    missing, added = bag.compare_manifests_with_fs()
    for rel in sorted(missing):
        result.add(
            ProblemKind.OBJECT_MISSING,
            "a file the bag's manifests name is missing",
            key=rel.replace(os.sep, "/"),
        )
    for rel in sorted(added):
        result.add(
            ProblemKind.PACK_UNEXPECTED_FILE,
            "a file no manifest of the bag names",
            key=rel.replace(os.sep, "/"),
        )
    gone = set(missing)
    for rel, digests in sorted(bag.entries.items()):
        if rel in gone or not (root / rel).is_file():
            continue
        fixity = hash_file(root / rel)
        for alg, expected in sorted(digests.items()):
            found = getattr(fixity, alg, None)
            if found is not None and found != expected.lower():
                listed = f"manifest-{alg}.txt" if rel.startswith(DATA) else f"tagmanifest-{alg}.txt"
                result.add(
                    ProblemKind.CHECKSUM_MISMATCH,
                    f"{alg} differs from the one {listed} names",
                    key=rel.replace(os.sep, "/"),
                    expected=expected.lower(),
                    found=found,
                )


def _check_chain(
    root: Path, info: Mapping[str, Any], files: _Files, result: PackVerification
) -> tuple[dict[str, Any] | None, str | None]:
    """The chain of the pack's manifests; the manifest the pack is made from, and its SHA-256."""
    debt_id = str(result.debt_id)
    folder = root / DATA / "manifests"
    names = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
    links, docs = [], {}
    for name in names:
        rel = f"{DATA}/manifests/{name}"
        key = f"{keys.debt_prefix(debt_id)}manifests/{name}"
        parsed = keys.parse_manifest_key(key)
        if parsed is None:
            result.add(ProblemKind.MANIFEST_INVALID, "not a manifest name", key=rel)
            continue
        doc = read_json(root / rel)
        docs[parsed[1]] = (rel, doc)
        previous = doc.get("previous") if isinstance(doc, dict) else UNREAD
        links.append(ChainLink(parsed[1], key, files.sha256(rel), previous))
    result.manifests = len(links)
    for fault in chain_faults(links):
        result.add(
            ProblemKind.CHAIN_BROKEN,
            fault.message,
            key=pack_path(debt_id, fault.key),
            expected=fault.expected,
            found=fault.found,
        )
    try:
        sequence = int(_one(info.get("Archive-Manifest-Sequence")) or "")
    except ValueError:
        result.add(ProblemKind.PACK_PROFILE, "bag-info.txt names no Archive-Manifest-Sequence")
        return None, None
    result.sequence = sequence
    if sequence not in docs:
        result.add(
            ProblemKind.OBJECT_MISSING,
            f"the manifest the pack is made from (sequence {sequence}) is not in it",
            key=f"{DATA}/manifests/{sequence:08d}.json",
        )
        return None, None
    if max(docs) != sequence:
        result.add(
            ProblemKind.MANIFEST_MISMATCH,
            f"the pack holds manifests after {sequence}, the one it is made from",
            key=docs[max(docs)][0],
        )
    rel, manifest = docs[sequence]
    msha = files.sha256(rel)
    named = _one(info.get("Archive-Manifest-SHA256"))
    if named != msha:
        result.add(
            ProblemKind.MANIFEST_MISMATCH,
            "the manifest's SHA-256 is not the one bag-info.txt names",
            key=rel,
            expected=named,
            found=msha,
        )
    named_key = _one(info.get("Archive-Manifest-Key"))
    if named_key != keys.manifest_key(debt_id, sequence):
        result.add(
            ProblemKind.MANIFEST_MISMATCH,
            "bag-info.txt names another manifest key",
            key="bag-info.txt",
            expected=keys.manifest_key(debt_id, sequence),
            found=named_key,
        )
    if not isinstance(manifest, dict):
        result.add(ProblemKind.MANIFEST_INVALID, "the manifest is not a JSON object", key=rel)
        return None, None
    for error in validate("manifest", manifest):
        result.add(ProblemKind.MANIFEST_INVALID, str(error), key=rel)
    if manifest.get("debt_id") != debt_id or manifest.get("sequence") != sequence:
        result.add(
            ProblemKind.MANIFEST_MISMATCH,
            "the manifest's debt id or sequence is not the pack's",
            key=rel,
            found=f"{manifest.get('debt_id')}/{manifest.get('sequence')}",
        )
        return None, None
    return manifest, msha


def _pack_events(root: Path, debt_id: str) -> list[dict[str, Any]]:
    """The events in the pack, as :func:`archiver.retention.events.read_events` gives them."""
    folder = root / DATA / "events"
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        event = read_json(p)
        if isinstance(event, dict):
            out.append({**event, "key": f"{keys.debt_prefix(debt_id)}events/{p.name}"})
    return out


def _check_objects(
    root: Path, manifest: dict[str, Any], files: _Files, result: PackVerification
) -> None:
    events = _pack_events(root, str(result.debt_id))
    items, purged = manifest_items(manifest, purged_versions(events))
    for item in items:
        if not files.exists(item.path):
            result.add(
                ProblemKind.OBJECT_MISSING,
                f"the {item.kind} the manifest names is not in the pack",
                key=item.path,
            )
            continue
        sha, size = files.fixity(item.path)
        if item.size is not None and size != item.size:
            result.add(
                ProblemKind.SIZE_MISMATCH,
                f"the {item.kind} is not the size the manifest names",
                key=item.path,
                expected=str(item.size),
                found=str(size),
            )
        if item.sha256 is not None and sha != item.sha256:
            result.add(
                ProblemKind.CHECKSUM_MISMATCH,
                f"the {item.kind}'s SHA-256 is not the one the manifest names",
                key=item.path,
                expected=item.sha256,
                found=sha,
            )
    for p in purged:
        record = pack_path(str(result.debt_id), p.event_key) if p.event_key else None
        if record is None or not files.exists(record):
            result.add(
                ProblemKind.OBJECT_MISSING,
                f"a purged {p.kind}'s deletion record is not in the pack",
                key=record or p.key,
            )


def _check_dossier(
    manifest: dict[str, Any], msha: str, files: _Files, result: PackVerification
) -> None:
    debt_id, sequence = str(result.debt_id), int(manifest["sequence"])
    has_pdf, has_receipt = files.exists(DOSSIER_PATH), files.exists(RECEIPT_PATH)
    if not has_pdf:
        result.add(
            ProblemKind.DOSSIER_MISSING,
            "no dossier in the pack (VERIFY.txt says why)",
            key=DOSSIER_PATH,
            severity="notice",
        )
        return
    if not has_receipt:
        result.add(
            ProblemKind.DOSSIER_RECEIPT_MISSING,
            "the dossier has no receipt in the pack: nothing ties it to the manifest",
            key=RECEIPT_PATH,
            severity="notice",
        )
        return
    _, ref, faults = read_receipt(
        (files.root / RECEIPT_PATH).read_bytes(),
        debt_id=debt_id,
        sequence=sequence,
        dossier_key=keys.dossier_key(debt_id, sequence),
        manifest_key=keys.manifest_key(debt_id, sequence),
        manifest_sha256=msha,
    )
    for fault in faults:
        result.add(ProblemKind.DOSSIER_RECEIPT_INVALID, fault, key=RECEIPT_PATH)
    if ref is None:
        return
    sha, size = files.fixity(DOSSIER_PATH)
    if (sha, size) != (ref.sha256, ref.size):
        result.add(
            ProblemKind.DOSSIER_MISMATCH,
            "the dossier is not the one its receipt names",
            key=DOSSIER_PATH,
            expected=ref.sha256,
            found=sha,
        )


def _check_tokens(
    root: Path, files: _Files, result: PackVerification, verifier: TokenVerifier | None
) -> None:
    folder = root / DATA / "manifests"
    names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    by_seq = token_sequences(names)
    tokens = {seq: [n for n in found if n.endswith(".tsr")] for seq, found in by_seq.items()}
    tokens = {seq: found for seq, found in tokens.items() if found}
    result.tokens = sum(len(v) for v in tokens.values())
    if not tokens:
        return  # the archive takes no timestamps (no TSA configured)
    for seq in range(1, (result.sequence or 0) + 1):
        rel = f"{DATA}/manifests/{seq:08d}.json"
        if seq not in tokens and files.exists(rel):
            result.add(
                ProblemKind.PACK_TOKEN_MISSING,
                "this manifest has no timestamp token in the pack",
                key=rel,
                severity="notice",
            )
    for seq, found in tokens.items():
        rel = f"{DATA}/manifests/{seq:08d}.json"
        if not files.exists(rel):
            for name in found:
                result.add(
                    ProblemKind.PACK_TOKEN_MISMATCH,
                    "a timestamp token of a manifest that is not in the pack",
                    key=f"{DATA}/manifests/{name}",
                )
            continue
        msha = files.sha256(rel)
        for name in found:
            token_rel = f"{DATA}/manifests/{name}"
            token = (root / token_rel).read_bytes()
            if not imprint_matches(token, msha):
                result.add(
                    ProblemKind.PACK_TOKEN_MISMATCH,
                    "the token's message imprint is not this manifest's SHA-256 (a token of "
                    "another manifest, or not a token)",
                    key=token_rel,
                    expected=msha,
                )
                continue
            for fault in verifier(token, msha) if verifier is not None else []:
                result.add(ProblemKind.PACK_TOKEN_MISMATCH, fault, key=token_rel)
