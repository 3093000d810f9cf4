"""Evidence hidden by a delete marker: a key a manifest names whose current version is a
delete marker.

Under Object Lock a plain ``DELETE`` (no version id) is allowed: it removes nothing, it adds a
delete marker that hides the key (a GET without a version id says 404), while the locked
version stays stored. Whoever reads the archive by key (a person with the S3 console, a
script) sees the evidence gone. Deleting the marker itself (a versioned DELETE of the marker's
version id) shows the key again; the archive's own version is untouched either way.

The archive run (for what it reuses) and the ``dossier`` command (for what a dossier shows)
report such keys with :func:`hidden_problems`; ``verify`` has its own check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from archiver.common.problems import Problem, ProblemKind
from archiver.store import keys
from archiver.store.types import VersionInfo

__all__ = ["hidden_keys", "hidden_problems", "restore_command"]


class VersionLister(Protocol):
    """What is needed of :class:`archiver.store.objects.ObjectStore`."""

    bucket: str

    def list_versions(self, prefix: str) -> Iterable[VersionInfo]: ...


def hidden_keys(store: VersionLister, debt_id: str) -> dict[str, str | None]:
    """Every key of ``debt_id`` whose current version is a delete marker: key -> the marker's
    version id (one LIST of the debt's versions)."""
    return {
        v.key: v.version_id
        for v in store.list_versions(keys.debt_prefix(debt_id))
        if v.is_delete_marker and v.is_latest
    }


def restore_command(bucket: str, key: str, marker_version_id: str | None) -> str:
    """The command that removes the delete marker hiding ``key`` (and only the marker)."""
    return (
        f"aws s3api delete-object --bucket {bucket} --key {key} "
        f"--version-id {marker_version_id or '<the delete marker version id>'}"
    )


def hidden_problems(
    store: VersionLister, debt_id: str, objects: Iterable[Mapping[str, Any]]
) -> list[Problem]:
    """A problem for each of ``objects`` (``{key, version_id?, kind?, followup_id?}``, as
    :func:`archiver.manifest.document.all_objects` gives them) hidden by a delete marker,
    saying how to show it again. Objects marked ``purged`` are left out (deleted on purpose)."""
    wanted = [o for o in objects if not o.get("purged")]
    if not wanted:
        return []
    hidden = hidden_keys(store, debt_id)
    found: list[Problem] = []
    seen: set[str] = set()
    for obj in wanted:
        key = str(obj.get("key"))
        if key not in hidden or key in seen:
            continue
        seen.add(key)
        marker = hidden[key]
        what = obj.get("kind") or "object"
        restore = restore_command(store.bucket, key, marker)
        details: dict[str, Any] = {"delete_marker_version_id": marker, "restore": restore}
        for name in ("followup_id", "kind"):
            if obj.get(name):
                details[name] = obj[name]
        found.append(
            Problem(
                ProblemKind.DELETE_MARKER,
                f"the archived {what} is hidden by a delete marker: its key looks deleted, "
                f"though version {obj.get('version_id')} is still stored under its lock. "
                f"Show it again by deleting the marker (only the marker): {restore}",
                debt_id=debt_id,
                key=key,
                details=details,
            )
        )
    return found
