"""Reading the manifests of a debt from S3: which exist, whether the chain history is intact,
and the latest one.

S3 is the source of truth: the archive run builds on :func:`latest_manifest`, the retention,
audit and dossier code list manifests with :func:`manifest_keys` / :func:`debts_in_bucket`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from archiver.common.schemas import validate
from archiver.errors import IntegrityError
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = [
    "KeyLister",
    "debts_in_bucket",
    "latest_manifest",
    "manifest_history_problems",
    "manifest_keys",
]


class KeyLister(Protocol):
    def list_keys(self, prefix: str) -> Iterator[str]: ...


def manifest_keys(store: KeyLister, debt_id: str) -> list[tuple[int, str]]:
    """``(sequence, key)`` of every manifest stored for a debt, oldest first."""
    found = []
    for key in store.list_keys(f"{keys.debt_prefix(debt_id)}manifests/"):
        parsed = keys.parse_manifest_key(key)
        if parsed and parsed[0] == debt_id:
            found.append((parsed[1], key))
    return sorted(found)


def debts_in_bucket(store: KeyLister) -> list[str]:
    """Every debt id that has at least one manifest."""
    found = set()
    for key in store.list_keys("debts/"):
        parsed = keys.parse_manifest_key(key)
        if parsed:
            found.add(parsed[0])
    return sorted(found)


def _history(
    store: ObjectStore, debt_id: str
) -> tuple[list[str], list[tuple[int, str, str | None]]]:
    """One LIST of every version under ``manifests/``: what is wrong with the history (see
    :func:`manifest_history_problems`), and ``(sequence, key, version id)`` of the manifests
    in place."""
    versions: dict[str, list[tuple[bool, str | None]]] = {}
    for v in store.list_versions(f"{keys.debt_prefix(debt_id)}manifests/"):
        versions.setdefault(v.key, []).append((v.is_delete_marker, v.version_id))
    problems, in_place = [], []
    for key, listed in sorted(versions.items()):
        markers = [marker for marker, _ in listed]
        if any(markers):
            problems.append(f"{key} has a delete marker (someone deleted the manifest)")
        if markers.count(False) > 1:
            problems.append(f"{key} has {markers.count(False)} versions (it was rewritten)")
        parsed = keys.parse_manifest_key(key)
        if parsed and parsed[0] == debt_id and not all(markers):
            version_id = next(vid for marker, vid in listed if not marker)
            in_place.append((parsed[1], key, version_id))
    return problems, sorted(in_place, key=lambda item: item[:2])


def manifest_history_problems(store: ObjectStore, debt_id: str) -> list[str]:
    """What makes a debt's manifest chain unsafe to extend: a manifest key whose current
    version is a delete marker, or that holds more than one version (it was rewritten).

    Object Lock keeps every version, but a plain DELETE adds a delete marker that hides the
    newest manifest; without this check the next run would write that sequence again.
    """
    return _history(store, debt_id)[0]


def latest_manifest(
    store: ObjectStore, debt_id: str
) -> tuple[str, bytes, dict[str, Any], str | None] | None:
    """The newest manifest of a debt in S3: ``(key, bytes, parsed, version id)`` or None.

    Raises :class:`IntegrityError` when the chain has been tampered with (see
    :func:`manifest_history_problems`): a run must never build on, or re-create, a hidden link.
    """
    problems, stored = _history(store, debt_id)
    if problems:
        raise IntegrityError(
            "the manifest chain of this debt was tampered with; nothing written. "
            "Run `archiver verify` and investigate: " + "; ".join(problems),
            problems=problems,
            debt_id=debt_id,
        )
    if not stored:
        return None
    _, key, version_id = stored[-1]
    data = store.read_bytes(key, version_id)
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(
            f"the latest manifest is not JSON ({exc}); run `archiver verify`",
            key=key,
            debt_id=debt_id,
        ) from None
    invalid = validate("manifest", manifest)
    if invalid:
        raise IntegrityError(
            "the latest manifest does not match its schema; nothing written. Run "
            f"`archiver verify`: {invalid[0]}",
            problems=[str(e) for e in invalid],
            key=key,
            debt_id=debt_id,
        )
    return key, data, manifest, version_id
