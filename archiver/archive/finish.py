"""Finishing one stored debt: manifest N+1 (written last, after everything it names) unless
nothing changed, the retention of earlier manifests and dossiers, then the dossier.

A crash before the manifest leaves the stored objects for a rerun to reuse; a crash after it
leaves a complete snapshot (the rerun only renders a missing dossier).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from archiver.archive.plan import DebtPlan
from archiver.archive.results import DebtResult, DossierStored, ManifestStored, RunRecord
from archiver.archive.storing import LockedWriter, StoreOutcome
from archiver.common.canonical import canonical_json, sha256_hex
from archiver.common.time import iso
from archiver.errors import ObjectConflictError, StorageError
from archiver.manifest.document import build_manifest, fingerprint, manifest_bytes
from archiver.manifest.entries import Extension
from archiver.retention.locks import falls_short, follows_activity
from archiver.retention.policies import ObjectKind, retain_until
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["DossierRenderer", "Finisher"]

# (manifest, manifest key, manifest sha256, records, debt record, store) -> (pdf, renderer version)
DossierRenderer = Callable[
    [dict[str, Any], str, str, dict[str, dict[str, Any]], dict[str, Any] | None, ObjectStore],
    tuple[bytes, str],
]


class Finisher:
    """Writes the manifest and the dossier of each stored debt; tells subscribers of both."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        run_id: str,
        api_base_url: str | None,
        render: DossierRenderer | None,
        publish: Callable[[RunRecord], None],
    ) -> None:
        self.store = store
        self.writer = LockedWriter(store)
        self.run_id = run_id
        self.api_base_url = api_base_url
        self._render = render
        self._publish = publish

    def finish(self, plan: DebtPlan, outcome: StoreOutcome) -> DebtResult:
        """Write manifest N+1 unless the snapshot equals the previous one; the debt's result."""
        facts, prev = plan.facts, plan.facts.previous
        problems = [p.to_dict() for p in plan.problems]
        blocking = any(p.blocking for p in plan.problems)
        manifest = build_manifest(
            debt_id=plan.debt_id,
            sequence=prev.sequence + 1 if prev else 1,
            created_at=facts.now,
            run_id=self.run_id,
            previous={"key": prev.key, "sha256": prev.sha256} if prev else None,
            policy=plan.policy.manifest_ref(),
            debt=outcome.debt_entry.to_json() if outcome.debt_entry is not None else None,
            debt_unavailable=plan.debt_unavailable,
            followups=[entry.to_json() for entry in plan.entries.values()],
            problems=problems,
            retention_extensions=[e.to_json() for e in plan.extensions],
            media_stored=outcome.stored,
            media_reused=plan.reused,
            last_activity=facts.activity,
            api_base_url=self.api_base_url,
        )
        if plan.policy_change is not None:
            manifest["policy_change"] = plan.policy_change.to_json()
        result = DebtResult(
            debt_id=plan.debt_id,
            status="partial" if blocking else "archived",
            followups=len(facts.followups),
            media_stored=outcome.stored,
            media_reused=plan.reused,
            media_bytes_stored=outcome.stored_bytes,
            problems=problems,
        )
        if prev is not None and fingerprint(manifest) == fingerprint(prev.manifest):
            # Nothing new: write nothing (but finish a dossier an earlier crash left undone).
            result.status = "partial" if blocking else "unchanged"
            result.sequence = prev.sequence
            result.manifest_key, result.manifest_sha256 = prev.key, prev.sha256
            result.dossier_key = self._ensure_dossier(plan, prev.key, prev.data, prev.manifest)
            return result

        if prev is not None:
            self._extend_history(plan)  # earlier manifests and dossiers
        # Extending the history belongs to this manifest too.
        manifest["retention_extensions"] = [e.to_json() for e in plan.extensions]
        result.retention_extended = len(plan.extensions)
        data, sha = manifest_bytes(manifest)
        mkey = keys.manifest_key(plan.debt_id, manifest["sequence"])
        try:
            stored = self.writer.put_bytes(
                mkey,
                data,
                lock=facts.lock(plan.policy, "manifest", None),
                content_type="application/json",
                metadata={"kind": "manifest"},
            )
        except ObjectConflictError as exc:
            # Another run wrote this sequence between our read and our write: its manifest
            # stands (nothing is overwritten); a rerun chains onto it.
            raise StorageError(
                f"another archive run wrote manifest {manifest['sequence']} of this debt at "
                "the same time; nothing was overwritten, rerun to add what it missed",
                key=mkey,
                debt_id=plan.debt_id,
            ) from exc
        self._publish(ManifestStored(self.run_id, manifest, mkey, sha, stored.version_id))
        result.sequence, result.manifest_key, result.manifest_sha256 = (
            manifest["sequence"],
            mkey,
            sha,
        )
        result.dossier_key = self._ensure_dossier(plan, mkey, data, manifest)
        return result

    def _extend_history(self, plan: DebtPlan) -> None:
        """Earlier manifests and dossiers follow the last activity too, when the policy says so."""
        history: tuple[tuple[ObjectKind, str], ...] = (
            ("manifest", "manifests/"),
            ("dossier", "dossiers/"),
        )
        policy = plan.policy
        for kind, sub in history:
            if not follows_activity(policy, kind):
                continue
            wanted = retain_until(policy, kind, plan.facts.dates())
            for key in self.store.list_keys(f"{keys.debt_prefix(plan.debt_id)}{sub}"):
                info = self.store.head(key)
                if info is None or not falls_short(info.retain_until, wanted):
                    continue
                if self.store.extend_retention(
                    key, info.version_id, mode=policy.mode, retain_until=wanted
                ):
                    before = iso(info.retain_until) if info.retain_until else None
                    plan.extensions.append(Extension(key, info.version_id, before, wanted))

    def _ensure_dossier(
        self, plan: DebtPlan, manifest_key: str, manifest_data: bytes, manifest: dict[str, Any]
    ) -> str | None:
        """Render and store the dossier of a manifest unless it is already stored."""
        if self._render is None:
            return None
        key = keys.dossier_key(plan.debt_id, manifest["sequence"])
        if self.store.head(key) is not None:
            return key
        debt = plan.facts.debt
        record = json.loads(canonical_json(debt.sanitized_record())) if debt else None
        pdf, version = self._render(
            manifest, manifest_key, sha256_hex(manifest_data), plan.records, record, self.store
        )
        stored = self.writer.put_bytes(
            key,
            pdf,
            lock=plan.facts.lock(plan.policy, "dossier", None),
            content_type="application/pdf",
            metadata={"kind": "dossier", "renderer-version": version},
        )
        self._publish(
            DossierStored(
                debt_id=plan.debt_id,
                sequence=manifest["sequence"],
                key=key,
                sha256=sha256_hex(pdf),
                version_id=stored.version_id,
                renderer_version=version,
            )
        )
        return key
