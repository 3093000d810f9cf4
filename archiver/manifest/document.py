"""Manifests: the immutable, hash-chained snapshot of what is archived for one debt.

Pure functions only: building, serialising, fingerprinting and checking manifests.
The format is ``schemas/manifest.schema.json`` (``getbill-archiver/manifest/v1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from archiver import TOOL_NAME, __version__
from archiver.common.canonical import canonical_sha256
from archiver.common.time import iso
from archiver.manifest.entries import DebtEntry, FollowupEntry

SCHEMA_ID = "getbill-archiver/manifest/v1"


def build_manifest(
    *,
    debt_id: str,
    sequence: int,
    created_at: datetime,
    run_id: str,
    previous: dict[str, str] | None,
    policy: dict[str, Any],
    debt: dict[str, Any] | None,
    debt_unavailable: dict[str, Any] | None,
    followups: list[dict[str, Any]],
    problems: list[dict[str, Any]],
    retention_extensions: list[dict[str, Any]],
    media_stored: int,
    media_reused: int,
    last_activity: datetime | None,
    api_base_url: str | None = None,
    legal_hold: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a manifest dict. Followups are sorted by id and media by kind for stability.

    ``legal_hold``: the hold state the snapshot was taken under, ``{"open_matters": [ids in
    the order they were opened], "last_event": key of the last event it accounts for, or
    None}`` (left out when None)."""
    ordered = sorted(followups, key=lambda f: f["id"])
    for f in ordered:
        f["media"] = sorted(f["media"], key=lambda m: (m["kind"], m["key"]))
    media = [m for f in ordered for m in f["media"]]
    manifest: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "debt_id": debt_id,
        "sequence": sequence,
        "created_at": iso(created_at),
        "run_id": run_id,
        "tool": {"name": TOOL_NAME, "version": __version__},
        "source": {"api_base_url": api_base_url} if api_base_url else {},
        "previous": previous,
        "policy": policy,
        "debt": debt,
        "debt_unavailable": debt_unavailable,
        "followups": ordered,
        "problems": problems,
        "retention_extensions": retention_extensions,
        "summary": {
            "followups": len(ordered),
            "media": len(media),
            "media_bytes": sum(int(m["size"]) for m in media),
            "media_stored": media_stored,
            "media_reused": media_reused,
            "problems": len(problems),
            "last_activity": iso(last_activity),
        },
    }
    if legal_hold is not None:
        manifest["legal_hold"] = legal_hold
    return manifest


def manifest_bytes(manifest: dict[str, Any]) -> tuple[bytes, str]:
    """Canonical bytes of a manifest and their SHA-256 (what ``previous.sha256`` names)."""
    return canonical_sha256(manifest)


def fingerprint(manifest: dict[str, Any]) -> Any:
    """What makes two snapshots "the same archive": records, media, debt record, policy,
    open problems, the legal-hold matters open (a hold or a release is a change of the
    evidence; a manifest without ``legal_hold`` counts as none open). Run bookkeeping (time,
    run id, counters of reuse) is left out, so a rerun with nothing new compares equal and
    writes nothing."""
    debt = manifest.get("debt") or {}
    return {
        "followups": [
            {
                "id": f["id"],
                "record_sha256": f["record_sha256"],
                "record_purged": bool(f.get("record_purged")),
                "upstream_missing": bool(f.get("upstream_missing_since")),
                "media": sorted(
                    (m["kind"], m["sha256"], bool(m.get("purged"))) for m in f.get("media", [])
                ),
            }
            for f in sorted(manifest.get("followups", []), key=lambda f: f["id"])
        ],
        "debt": (debt.get("sha256"), bool(debt.get("purged"))),
        "debt_unavailable": (manifest.get("debt_unavailable") or {}).get("reason"),
        "policy": (manifest.get("policy") or {}).get("sha256"),
        "problems": sorted(
            (p.get("type", ""), p.get("followup_id", ""), p.get("kind", ""))
            for p in manifest.get("problems", [])
            if p.get("severity") != "warning"  # a passing warning is no change of the archive
        ),
        "legal_hold": list((manifest.get("legal_hold") or {}).get("open_matters") or []),
    }


def all_objects(manifest: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every object a manifest names, as ``{key, version_id, sha256, size?, retain_until,
    retention_mode, legal_hold, kind, purged?}``: debt record, followup records, media.
    ``purged`` (the deletion record's key and time) marks a version deleted at its maximum."""
    mode = (manifest.get("policy") or {}).get("mode")
    debt = manifest.get("debt")
    if debt:
        yield {"kind": "debt", "retention_mode": mode, **DebtEntry.from_json(debt).to_json()}
    for f in manifest.get("followups", []):
        entry = FollowupEntry.from_json(f)
        yield {
            "kind": "record",
            "key": entry.record_key,
            "sha256": entry.record_sha256,
            "size": entry.record_size,
            "version_id": entry.record_version_id,
            "retain_until": entry.record_retain_until,
            "retention_mode": mode,
            "legal_hold": False,
            "followup_id": entry.id,
            "purged": entry.record_purged,
        }
        for m in entry.media or []:
            yield {"retention_mode": mode, **m.to_json(), "followup_id": entry.id}
