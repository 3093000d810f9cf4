"""Finishing one stored debt: manifest N+1 (written last, after everything it names) unless
nothing changed, the retention of earlier manifests and dossiers, then the dossier and its
receipt (:mod:`archiver.manifest.receipt`).

Right after manifest N+1 is stored, the configured TSAs are asked for its trusted timestamp
(:mod:`archiver.archive.stamping`), before its dossier, which shows it; every run of the debt
also asks for the tokens earlier manifests still lack.

Manifest N+1 names dossier N by the SHA-256 and size of its stored bytes
(``previous_dossier``), when dossier N is stored and matches its receipt.

A crash before the manifest leaves the stored objects for a rerun to reuse; a crash after it
leaves a complete snapshot: the dossier only presents it, so a dossier or receipt that cannot
be stored is a problem of the debt (partial), and the next run stores what is missing. A
dossier purged at its maximum retention is never stored again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol, runtime_checkable

from archiver.archive.plan import DebtPlan, PreviousManifest
from archiver.archive.results import (
    ArchiveEvent,
    ArchiveEventKind,
    DebtResult,
    DossierStored,
    ManifestStored,
    RunRecord,
)
from archiver.archive.stamping import TokenKeeper
from archiver.archive.storing import LockedWriter, StoreOutcome
from archiver.common.canonical import canonical_json, sha256_hex
from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import iso
from archiver.errors import ArchiverError, ManifestRaceError, ObjectConflictError
from archiver.manifest.document import build_manifest, fingerprint, manifest_bytes
from archiver.manifest.entries import DossierRef, Extension
from archiver.manifest.receipt import build_receipt, read_receipt, receipt_bytes
from archiver.retention.events import purged_versions, read_events
from archiver.retention.locks import falls_short, follows_activity
from archiver.retention.policies import ObjectKind, retain_until
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.types import ObjectInfo, StoredObject

__all__ = [
    "DossierRenderer",
    "DossierRequest",
    "Finisher",
    "PreparedRenderer",
    "RenderedDossier",
]


@dataclass(frozen=True)
class DossierRequest:
    """What a dossier is rendered from at archive time: the manifest (key, SHA-256 of its
    bytes), the records and debt record in memory, the store (for the hold events).

    ``stored_metadata`` is the S3 metadata of a dossier already stored, when the request is to
    render it again with the same inputs (bucket, endpoint); None renders for this run."""

    manifest: dict[str, Any]
    manifest_key: str
    manifest_sha256: str
    records: dict[str, dict[str, Any]]
    debt: dict[str, Any] | None
    store: ObjectStore
    stored_metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class RenderedDossier:
    """A rendered dossier; ``metadata`` is what a later re-render needs besides the archive
    (bucket, endpoint), stored as the dossier object's S3 metadata."""

    pdf: bytes
    renderer_version: str
    metadata: dict[str, str] = field(default_factory=dict)


DossierRenderer = Callable[[DossierRequest], RenderedDossier]


@runtime_checkable
class PreparedRenderer(Protocol):
    """A renderer that can load what it needs ahead of its first render (in the background):
    :class:`archiver.wiring.DossierStack`."""

    def __call__(self, request: DossierRequest) -> RenderedDossier: ...

    def prepare(self) -> None: ...


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
        emit: Callable[[ArchiveEvent], None] = lambda event: None,
        tokens: TokenKeeper | None = None,
    ) -> None:
        self.store = store
        self._tokens = tokens
        self.writer = LockedWriter(store)
        self.run_id = run_id
        self.api_base_url = api_base_url
        self._render = render
        self._publish = publish
        self._emit = emit

    def prepare(self) -> None:
        """Let the renderer get ready (load what it needs in the background) when it can:
        called as a debt's downloads start (:class:`PreparedRenderer`)."""
        if isinstance(self._render, PreparedRenderer):
            self._render.prepare()

    def finish(self, plan: DebtPlan, outcome: StoreOutcome) -> DebtResult:
        """Write manifest N+1 unless the snapshot equals the previous one, then its dossier;
        the debt's result."""
        result, dossier = self.finish_parts(plan, outcome)
        if dossier is not None:
            dossier()
        return result

    def finish_parts(
        self, plan: DebtPlan, outcome: StoreOutcome
    ) -> tuple[DebtResult, Callable[[], None] | None]:
        """:meth:`finish` in two steps: the manifest is written now; the dossier (rendered,
        stored, its receipt; the result's ``dossier_key`` and problems) when the returned step
        is called, on another thread if the caller likes, while the next debt downloads."""
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
            legal_hold=outcome.legal_hold,  # as the hold check after storing found it
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
        if prev is not None:
            # The catalog learns of the manifest this run builds on even when no run could
            # tell it before (its PUT answer lost, the catalog unusable then).
            run_id = str(prev.manifest.get("run_id") or self.run_id)
            self._publish(
                ManifestStored(run_id, prev.manifest, prev.key, prev.sha256, prev.version_id)
            )
        if prev is not None and fingerprint(manifest) == fingerprint(prev.manifest):
            # Nothing new: write nothing (but finish a dossier an earlier crash left undone).
            result.status = "partial" if blocking else "unchanged"
            result.sequence = prev.sequence
            result.manifest_key, result.manifest_sha256 = prev.key, prev.sha256
            if self._tokens is not None:
                self._tokens.keep(plan, result, None)
            return result, self._dossier_step(
                result,
                partial(
                    self._ensure_dossier,
                    plan,
                    prev.key,
                    prev.data,
                    prev.manifest,
                    result,
                    fresh=False,
                ),
            )

        if prev is not None:
            self._extend_history(plan)  # earlier manifests and dossiers
        # Extending the history belongs to this manifest too.
        manifest["retention_extensions"] = [e.to_json() for e in plan.extensions]
        if prev is not None:
            ref = self._previous_dossier(plan.debt_id, prev, result)
            if ref is not None:
                manifest["previous_dossier"] = ref.to_json()
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
            # stands (nothing is overwritten); the pipeline merges onto it and tries again.
            raise ManifestRaceError(
                f"another archive run wrote manifest {manifest['sequence']} of this debt at "
                "the same time; nothing was overwritten",
                key=mkey,
                debt_id=plan.debt_id,
            ) from exc
        self._publish(ManifestStored(self.run_id, manifest, mkey, sha, stored.version_id))
        result.sequence, result.manifest_key, result.manifest_sha256 = (
            manifest["sequence"],
            mkey,
            sha,
        )
        if self._tokens is not None:
            # The manifest (and so its dossier) holds the problems it was stored with: what
            # stamping adds belongs to this run's result alone.
            result.problems = list(result.problems)
            self._tokens.keep(plan, result, (manifest["sequence"], data))
        return result, self._dossier_step(
            result,
            partial(self._ensure_dossier, plan, mkey, data, manifest, result, fresh=True),
        )

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

    def _previous_dossier(
        self, debt_id: str, prev: PreviousManifest, result: DebtResult
    ) -> DossierRef | None:
        """Dossier N as stored, for manifest N+1 to name: only when its receipt vouches for
        exactly these bytes (a dossier without one, or differing from it, is not certified
        by a later manifest; the difference is reported)."""
        dkey = keys.dossier_key(debt_id, prev.sequence)
        rkey = keys.dossier_receipt_key(debt_id, prev.sequence)
        if self.store.head(rkey) is None:
            return None  # never stored, purged, or stored before dossiers had receipts
        info = self.store.head(dkey)
        if info is None:
            return None
        _, ref, faults = read_receipt(
            self.store.read_bytes(rkey),
            debt_id=debt_id,
            sequence=prev.sequence,
            dossier_key=dkey,
            manifest_key=prev.key,
            manifest_sha256=prev.sha256,
        )
        sha, size = self.store.sha256_of(dkey, info.version_id)
        if ref is not None and ref.names(dkey, sha, size):
            return DossierRef(dkey, sha, size)
        why = "; ".join(faults) if ref is None else f"its receipt names SHA-256 {ref.sha256}"
        result.problems.append(
            Problem(
                ProblemKind.DOSSIER_MISMATCH,
                f"the stored dossier of manifest {prev.sequence} does not match its receipt "
                f"({why}), so the new manifest does not name it; run `archiver verify`",
                debt_id=debt_id,
                key=dkey,
                found=sha,
                severity="warning",
            ).to_dict()
        )
        return None

    def _dossier_step(
        self, result: DebtResult, ensure: Callable[[], str | None]
    ) -> Callable[[], None] | None:
        """The step that runs ``ensure`` (:meth:`_ensure_dossier` with its arguments) and
        puts the key in ``result``; None when this run renders no dossiers."""
        if self._render is None:
            return None

        def step() -> None:
            result.dossier_key = ensure()

        return step

    def _ensure_dossier(
        self,
        plan: DebtPlan,
        manifest_key: str,
        manifest_data: bytes,
        manifest: dict[str, Any],
        result: DebtResult,
        *,
        fresh: bool,
    ) -> str | None:
        """Render and store the dossier of a stored manifest, then its receipt, unless they
        are stored already or the dossier was purged (``fresh``: the manifest was just
        written, so nothing of it can have been purged). A failure is a problem of the debt:
        the manifest is stored, so the next run stores what is missing."""
        if self._render is None:
            return None
        key = keys.dossier_key(plan.debt_id, manifest["sequence"])
        debt = plan.facts.debt
        request = DossierRequest(
            manifest=manifest,
            manifest_key=manifest_key,
            manifest_sha256=sha256_hex(manifest_data),
            records=plan.records,
            debt=json.loads(canonical_json(debt.sanitized_record())) if debt else None,
            store=self.store,
        )
        stored: StoredObject | None = None
        try:
            info = self.store.head(key)
            if info is not None:
                # Stored by an earlier run, which may never have told the catalog.
                self._publish(
                    DossierStored(
                        debt_id=plan.debt_id,
                        sequence=manifest["sequence"],
                        key=key,
                        sha256=info.sha256 or self.store.sha256_of(key, info.version_id)[0],
                        version_id=info.version_id,
                        renderer_version=info.metadata.get("renderer-version", ""),
                    )
                )
                self._prove_stored(plan, info, request)
                return key
            if not fresh and self._purged(plan.debt_id, key):
                return None  # deleted at its maximum retention: never re-created
            self._emit(
                ArchiveEvent(
                    ArchiveEventKind.DOSSIER_STARTED,
                    debt_id=plan.debt_id,
                    count=manifest["sequence"],
                )
            )
            rendered = self._render(request)
            stored = self.writer.put_bytes(
                key,
                rendered.pdf,
                lock=plan.facts.lock(plan.policy, "dossier", None),
                content_type="application/pdf",
                metadata={
                    **rendered.metadata,
                    "kind": "dossier",
                    "renderer-version": rendered.renderer_version,
                    "receipt-key": keys.dossier_receipt_key(plan.debt_id, manifest["sequence"]),
                },
            )
            self._publish(
                DossierStored(
                    debt_id=plan.debt_id,
                    sequence=manifest["sequence"],
                    key=key,
                    sha256=stored.sha256,
                    version_id=stored.version_id,
                    renderer_version=rendered.renderer_version,
                )
            )
            self._write_receipt(plan, stored, rendered.renderer_version, request)
        except ArchiverError as exc:
            where = exc.context.get("key", key)
            result.problems.append(
                Problem.from_exception(exc, debt_id=plan.debt_id, key=where).to_dict()
            )
            result.status = "partial"
            return key if stored is not None else None
        return key

    def _write_receipt(
        self, plan: DebtPlan, stored: StoredObject, renderer_version: str, request: DossierRequest
    ) -> None:
        """The receipt of a stored dossier, locked like it (conditional: never replaced)."""
        sequence = request.manifest["sequence"]
        receipt = build_receipt(
            debt_id=plan.debt_id,
            sequence=sequence,
            dossier=DossierRef(stored.key, stored.sha256, stored.size, stored.version_id),
            renderer_version=renderer_version,
            manifest_key=request.manifest_key,
            manifest_sha256=request.manifest_sha256,
            created_at=plan.facts.now,
        )
        data, _ = receipt_bytes(receipt)
        self.writer.put_bytes(
            keys.dossier_receipt_key(plan.debt_id, sequence),
            data,
            lock=plan.facts.lock(plan.policy, "dossier", None),
            content_type="application/json",
            metadata={"kind": "dossier-receipt"},
        )

    def _prove_stored(self, plan: DebtPlan, info: ObjectInfo, request: DossierRequest) -> None:
        """Write the receipt a stored dossier lacks because a run stopped between the two.

        Only for a dossier stored with a receipt to follow (its metadata names the receipt;
        older dossiers never had one), and only when rendering its manifest again with the
        same inputs gives exactly its bytes: a receipt never vouches for bytes this tool
        cannot reproduce."""
        if "receipt-key" not in info.metadata:
            return
        rkey = keys.dossier_receipt_key(plan.debt_id, request.manifest["sequence"])
        if self.store.head(rkey) is not None:
            return
        assert self._render is not None  # the caller renders dossiers
        sha, size = self.store.sha256_of(info.key, info.version_id)
        rendered = self._render(replace(request, stored_metadata=info.metadata))
        if sha256_hex(rendered.pdf) != sha or len(rendered.pdf) != size:
            return  # verify reports it (no receipt, differs from a re-render)
        again = StoredObject(info.key, info.version_id, sha, size, created=False)
        self._write_receipt(plan, again, rendered.renderer_version, request)

    def _purged(self, debt_id: str, key: str) -> bool:
        """Whether a deletion record names a version of ``key``."""
        return any(k == key for k, _ in purged_versions(read_events(self.store, debt_id)))
