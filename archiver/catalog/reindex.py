"""Rebuild the catalog from S3 (the source of truth): manifests, events and dossiers.

``archiver reindex`` calls :func:`reindex`; a manifest that cannot be read or does not fit its
schema is reported as a problem, never a crash, and the others are still indexed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from archiver.catalog.db import Catalog
from archiver.common.canonical import sha256_hex
from archiver.common.problems import Problem, ProblemKind
from archiver.common.schemas import validate
from archiver.errors import ArchiverError
from archiver.manifest.chain import UNREAD, ChainFaultKind, ChainLink, chain_faults
from archiver.manifest.document import SCHEMA_ID
from archiver.store.keys import DOSSIER_KEY_RE, EVENT_KEY_RE, parse_manifest_key

__all__ = ["ObjectSource", "ReindexResult", "reindex"]


class _HasVersion(Protocol):
    @property
    def version_id(self) -> str | None: ...


class ObjectSource(Protocol):
    """What :func:`reindex` needs from :class:`archiver.store.objects.ObjectStore`."""

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def read_bytes(self, key: str, version_id: str | None = None) -> bytes: ...

    def head(self, key: str, version_id: str | None = None) -> _HasVersion | None: ...


@dataclass
class ReindexResult:
    """What :func:`reindex` put into the catalog, and what it could not."""

    debts: int = 0
    manifests: int = 0
    followups: int = 0
    media: int = 0
    events: int = 0
    dossiers: int = 0
    problems: list[Problem] = field(default_factory=list)  # each names its ``key``

    def to_dict(self) -> dict[str, Any]:
        return {
            "debts": self.debts,
            "manifests": self.manifests,
            "followups": self.followups,
            "media": self.media,
            "events": self.events,
            "dossiers": self.dossiers,
            "problems": [p.to_dict() for p in self.problems],
        }


def _validate_manifest(manifest: Any) -> list[str]:
    """Schema errors of ``manifest`` (empty when it fits ``manifest.schema.json``)."""
    return [e.message for e in validate("manifest", manifest)]


def _shape_errors(manifest: Any) -> list[str]:
    """Cheap checks of what the catalog reads from a manifest (full schema checks are slow)."""
    if not isinstance(manifest, dict):
        return ["<root>: not a JSON object"]
    errors = []
    if manifest.get("schema") != SCHEMA_ID:
        errors.append(f"schema: {manifest.get('schema')!r:.60} is not {SCHEMA_ID}")
    if not isinstance(manifest.get("debt_id"), str):
        errors.append("debt_id: not a string")
    seq = manifest.get("sequence")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        errors.append("sequence: not an integer >= 1")
    for name in ("policy", "summary", "tool"):
        if not isinstance(manifest.get(name), dict):
            errors.append(f"{name}: not an object")
    for name in ("previous", "debt"):
        if not isinstance(manifest.get(name, 0), dict | None):
            errors.append(f"{name}: not an object or null")
    problems = manifest.get("problems")
    if not isinstance(problems, list) or not all(isinstance(p, dict) for p in problems):
        errors.append("problems: not a list of objects")
    followups = manifest.get("followups")
    if not isinstance(followups, list):
        return [*errors, "followups: not a list"]
    for i, f in enumerate(followups):
        if not isinstance(f, dict) or not all(
            isinstance(f.get(n), str) for n in ("id", "record_key", "record_sha256")
        ):
            errors.append(f"followups/{i}: needs id, record_key, record_sha256")
            continue
        media = f.get("media")
        if not isinstance(media, list) or not all(
            isinstance(m, dict) and isinstance(m.get("key"), str) for m in media
        ):
            errors.append(f"followups/{i}/media: not a list of objects with a key")
    return errors


def reindex(
    catalog: Catalog,
    store: ObjectSource,
    *,
    verify_chain: bool = False,
    validate_schema: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> ReindexResult:
    """Rebuild the catalog from the manifests, events and dossiers stored in S3.

    Lists ``debts/`` once, clears the derived tables, then records every manifest of every
    debt in sequence order. A manifest that cannot be read, parsed or validated becomes a
    :class:`~archiver.common.problems.Problem` (naming its ``key``) and the others are still
    indexed. With ``verify_chain``, each manifest's ``previous`` must name the key and SHA-256
    of the one before it (:func:`archiver.manifest.chain.chain_faults`). With
    ``validate_schema``, every manifest is checked against ``manifest.schema.json`` (thorough
    but slow: ~30 ms per manifest of 20 media); otherwise only the fields the catalog reads.

    The rebuild is one transaction: if it fails half-way the previous catalog is kept.
    """
    progress = on_progress or (lambda _msg: None)
    result = ReindexResult()

    manifest_keys: dict[str, list[tuple[int, str]]] = {}
    event_keys: list[str] = []
    dossier_keys: list[tuple[str, int, str]] = []
    for key in store.list_keys("debts/"):
        parsed = parse_manifest_key(key)
        if parsed is not None:
            manifest_keys.setdefault(parsed[0], []).append((parsed[1], key))
        elif EVENT_KEY_RE.match(key):
            event_keys.append(key)
        elif m := DOSSIER_KEY_RE.match(key):
            dossier_keys.append((m.group(1), int(m.group(2)), key))
    progress(
        f"found {sum(map(len, manifest_keys.values()))} manifests of {len(manifest_keys)} debts, "
        f"{len(event_keys)} events, {len(dossier_keys)} dossiers"
    )

    with catalog.db.atomic():
        catalog.clear()

        for debt_id in sorted(manifest_keys):
            links: list[ChainLink] = []
            unloaded: dict[str, Problem] = {}
            for seq, key in sorted(manifest_keys[debt_id]):
                loaded = _load_manifest(store, key, debt_id, seq, validate_schema)
                if isinstance(loaded, Problem):
                    unloaded[key] = loaded
                    links.append(ChainLink(seq, key, None, UNREAD))
                    continue
                manifest, sha, version_id = loaded
                links.append(ChainLink(seq, key, sha, manifest.get("previous")))
                catalog.record_manifest(manifest, key=key, sha256=sha, version_id=version_id)
                result.manifests += 1
                progress(f"indexed {key}")
            result.debts += int(len(unloaded) < len(links))
            result.problems += _debt_problems(links, unloaded, verify_chain)

        for key in sorted(event_keys):
            try:
                data = store.read_bytes(key)
                event = json.loads(data)
                if not isinstance(event, dict):
                    raise ValueError("not a JSON object")
            except ArchiverError as exc:
                result.problems.append(_problem(ProblemKind.UNREADABLE_EVENT, key, str(exc)))
                continue
            except ValueError as exc:
                result.problems.append(_problem(ProblemKind.UNPARSEABLE_EVENT, key, str(exc)))
                continue
            catalog.record_event(event, key=key, sha256=sha256_hex(data))
            result.events += 1

        for debt_id, seq, key in sorted(dossier_keys):
            try:
                data = store.read_bytes(key)
                info = store.head(key)
            except ArchiverError as exc:
                result.problems.append(_problem(ProblemKind.UNREADABLE_DOSSIER, key, str(exc)))
                continue
            catalog.record_dossier(
                debt_id=debt_id,
                sequence=seq,
                key=key,
                sha256=sha256_hex(data),
                version_id=info.version_id if info is not None else None,
                renderer_version=None,  # only known to the renderer; not stored in the key
            )
            result.dossiers += 1

    result.followups = catalog.db.table("followups").count
    result.media = catalog.db.table("media").count
    progress(
        f"reindexed {result.manifests} manifests of {result.debts} debts, "
        f"{len(result.problems)} problems"
    )
    return result


def _problem(kind: ProblemKind, key: str, message: str) -> Problem:
    return Problem(kind, message, key=key)


def _debt_problems(
    links: list[ChainLink], unloaded: dict[str, Problem], verify_chain: bool
) -> list[Problem]:
    """The problems of one debt's manifests, per manifest: a gap before it, why it could not
    be indexed, how it breaks the chain (chain checks only with ``verify_chain``)."""
    faults = chain_faults(links) if verify_chain else []
    out: list[Problem] = []
    for link in links:
        mine = [f for f in faults if f.link is link]
        for fault in mine:
            if fault.kind is ChainFaultKind.SEQUENCE_GAP:
                out.append(_problem(ProblemKind.SEQUENCE_GAP, link.key, fault.message))
        if link.key in unloaded:
            out.append(unloaded[link.key])
        for fault in mine:
            if fault.kind is not ChainFaultKind.SEQUENCE_GAP:
                out.append(_problem(ProblemKind.REINDEX_CHAIN_BROKEN, link.key, fault.message))
    return out


def _load_manifest(
    store: ObjectSource, key: str, debt_id: str, seq: int, validate_schema: bool
) -> tuple[dict[str, Any], str, str | None] | Problem:
    """The manifest at ``key``, its SHA-256 and version id; or why it cannot be indexed."""
    try:
        data = store.read_bytes(key)
        info = store.head(key)
    except ArchiverError as exc:
        return _problem(ProblemKind.UNREADABLE_MANIFEST, key, str(exc))
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        return _problem(ProblemKind.UNPARSEABLE_MANIFEST, key, f"not JSON: {exc}")
    errors = _shape_errors(manifest)
    if not errors and validate_schema:
        errors = _validate_manifest(manifest)
    if errors:
        return _problem(ProblemKind.INVALID_MANIFEST, key, "; ".join(errors[:5]))
    if manifest["debt_id"] != debt_id or manifest["sequence"] != seq:
        return _problem(
            ProblemKind.MANIFEST_KEY_MISMATCH,
            key,
            f"manifest says debt {manifest['debt_id']!r} sequence {manifest['sequence']}",
        )
    return manifest, sha256_hex(data), info.version_id if info is not None else None
