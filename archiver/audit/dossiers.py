"""Verification of the stored dossiers of one debt: by proof first, by re-rendering on request.

A dossier is proven when its exact stored bytes (re-hashed by streaming) have the SHA-256 and
size its receipt names (:mod:`archiver.manifest.receipt`), and those the next manifest names
in ``previous_dossier`` when there is one. Any difference from either is
``DossierMismatch``: the stored metadata (renderer version, ...) is never trusted.

Re-rendering (``verify --rerender``) is an extra check of the renderer: for a proven dossier
a difference is a notice (``DossierRendererChanged``: a newer renderer, reportlab or pikepdf
draws the same manifest differently); for a dossier without a receipt it is
``DossierMismatch``, and identical bytes prove it. Without a re-render, a dossier that has no
receipt and that no later manifest names is ``DossierUnproven`` (a notice: stored before
dossiers had receipts) - unless an earlier dossier of the debt is proven, in which case its
receipt should be there and ``DossierReceiptMissing`` is a problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archiver.common.canonical import sha256_hex
from archiver.common.problems import Problem, ProblemKind
from archiver.errors import ArchiverError
from archiver.manifest.entries import DossierRef
from archiver.manifest.receipt import read_receipt
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["DossierFindings", "DossierRerender", "check_dossiers"]

# (manifest, manifest_key, manifest_sha256, store) -> (pdf bytes, renderer version)
DossierRerender = Callable[[dict[str, Any], str, str, ObjectStore], tuple[bytes, str]]

Manifests = list[tuple[str, str, dict[str, Any]]]  # (key, sha256 of the bytes, manifest)


@dataclass
class DossierFindings:
    """What :func:`check_dossiers` found: stored dossiers examined, problems, notices."""

    dossiers: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)


@dataclass
class _Stored:
    """One stored dossier and what vouches for its bytes."""

    sequence: int
    key: str
    manifest_key: str
    manifest_sha256: str
    manifest: dict[str, Any]
    sha256: str
    size: int
    receipt: dict[str, Any] | None = None
    has_receipt: bool = False
    proven: bool = False
    mismatch: bool = False


def check_dossiers(
    store: ObjectStore,
    debt_id: str,
    manifests: Manifests,
    purged: dict[tuple[str, str | None], dict[str, Any]],
    rerender: DossierRerender | None,
) -> DossierFindings:
    """Check the dossier of each readable manifest (``manifests`` in sequence order); see the
    module docstring. ``purged`` is what the deletion records name (a dossier deleted at its
    maximum retention is fine)."""
    found = DossierFindings()
    named = _named_by_next(manifests)
    stored: list[_Stored] = []
    for mkey, msha, manifest in manifests:
        seq = manifest.get("sequence")
        if not isinstance(seq, int):
            continue
        dkey = keys.dossier_key(debt_id, seq)
        if store.head(dkey) is None:
            if not any(k == dkey for k, _ in purged):
                found.problems.append(
                    Problem(
                        ProblemKind.DOSSIER_MISSING,
                        "no dossier stored for this manifest",
                        debt_id=debt_id,
                        key=dkey,
                    )
                )
            continue
        found.dossiers += 1
        sha, size = store.sha256_of(dkey)
        one = _Stored(seq, dkey, mkey, msha, manifest, sha, size)
        _check_receipt(store, debt_id, one, found)
        if seq in named:
            _check_named(debt_id, one, *named[seq], found)
        stored.append(one)

    # Receipts are written for every dossier from some sequence on: once one is proven, a
    # later dossier without a receipt lost it (or a run stopped before writing it).
    first_proven = min((s.sequence for s in stored if s.proven or s.has_receipt), default=None)
    for one in stored:
        if one.mismatch:
            continue  # already a problem; a re-render cannot make it right
        if one.proven:
            if rerender is not None:
                _rerender_proven(store, debt_id, one, rerender, found)
            continue
        receipt_due = first_proven is not None and one.sequence > first_proven
        if rerender is not None and not _record_purged(one.manifest):
            _rerender_unproven(store, debt_id, one, rerender, receipt_due, found)
        elif receipt_due:
            found.problems.append(_receipt_missing(debt_id, one))
        else:
            found.notices.append(
                Problem(
                    ProblemKind.DOSSIER_UNPROVEN,
                    "this dossier has no receipt and no later manifest names it (stored "
                    "before dossiers had receipts): run verify --rerender to compare it with "
                    "a re-render of its manifest",
                    debt_id=debt_id,
                    key=one.key,
                    found=one.sha256,
                )
            )
    return found


def _named_by_next(manifests: Manifests) -> dict[int, tuple[str, dict[str, Any]]]:
    """``sequence N -> (key of manifest N+1, its previous_dossier)`` where N+1 names one."""
    named: dict[int, tuple[str, dict[str, Any]]] = {}
    for mkey, _, manifest in manifests:
        ref, seq = manifest.get("previous_dossier"), manifest.get("sequence")
        if isinstance(ref, dict) and isinstance(seq, int):
            named[seq - 1] = (mkey, ref)
    return named


def _check_receipt(store: ObjectStore, debt_id: str, one: _Stored, found: DossierFindings) -> None:
    rkey = keys.dossier_receipt_key(debt_id, one.sequence)
    if store.head(rkey) is None:
        return
    one.has_receipt = True
    receipt, ref, faults = read_receipt(
        store.read_bytes(rkey),
        debt_id=debt_id,
        sequence=one.sequence,
        dossier_key=one.key,
        manifest_key=one.manifest_key,
        manifest_sha256=one.manifest_sha256,
    )
    one.receipt = receipt
    if ref is None:
        one.mismatch = True
        found.problems.append(
            Problem(
                ProblemKind.DOSSIER_RECEIPT_INVALID,
                "; ".join(faults),
                debt_id=debt_id,
                key=rkey,
            )
        )
        return
    if not ref.names(one.key, one.sha256, one.size):
        one.mismatch = True
        found.problems.append(_differs(debt_id, one, ref, f"its receipt {rkey}"))
        return
    one.proven = True


def _check_named(
    debt_id: str, one: _Stored, next_key: str, named: dict[str, Any], found: DossierFindings
) -> None:
    ref = DossierRef.from_json(named)
    if not ref.names(one.key, one.sha256, one.size):
        one.mismatch, one.proven = True, False
        found.problems.append(_differs(debt_id, one, ref, f"{next_key} (previous_dossier)"))
    elif not one.mismatch:
        one.proven = True


def _differs(debt_id: str, one: _Stored, ref: DossierRef, where: str) -> Problem:
    detail = f" (it names {ref.key})" if ref.key != one.key else ""
    return Problem(
        ProblemKind.DOSSIER_MISMATCH,
        f"the stored dossier is not the one {where} names{detail}: "
        f"{one.size:,} bytes stored, {ref.size:,} named",
        debt_id=debt_id,
        key=one.key,
        expected=ref.sha256,
        found=one.sha256,
    )


def _receipt_missing(debt_id: str, one: _Stored) -> Problem:
    return Problem(
        ProblemKind.DOSSIER_RECEIPT_MISSING,
        "an earlier dossier of this debt is proven by its receipt but this one has none and "
        "no later manifest names it (deleted, or a run stopped before writing it: the next "
        "archive run writes it for the latest manifest when a re-render gives these bytes)",
        debt_id=debt_id,
        key=keys.dossier_receipt_key(debt_id, one.sequence),
        found=one.sha256,
    )


def _record_purged(manifest: dict[str, Any]) -> bool:
    return any(f.get("record_purged") for f in manifest.get("followups", []))


def _render(
    store: ObjectStore, debt_id: str, one: _Stored, rerender: DossierRerender
) -> tuple[bytes, str] | Problem:
    try:
        return rerender(one.manifest, one.manifest_key, one.manifest_sha256, store)
    except ArchiverError as exc:
        return Problem(
            ProblemKind.DOSSIER_MISMATCH,
            f"re-render failed: {exc}",
            debt_id=debt_id,
            key=one.key,
        )


def _rerender_proven(
    store: ObjectStore,
    debt_id: str,
    one: _Stored,
    rerender: DossierRerender,
    found: DossierFindings,
) -> None:
    if _record_purged(one.manifest):
        found.notices.append(
            Problem(
                ProblemKind.DOSSIER_NOT_RERENDERED,
                "some records of this manifest were "
                "purged at their maximum retention, so it cannot be rendered again",
                debt_id=debt_id,
                key=one.key,
            )
        )
        return
    rendered = _render(store, debt_id, one, rerender)
    if isinstance(rendered, Problem):
        found.problems.append(rendered)
        return
    pdf, version = rendered
    if sha256_hex(pdf) == one.sha256:
        return
    stored_version = (one.receipt or {}).get("renderer_version")
    found.notices.append(
        Problem(
            ProblemKind.DOSSIER_RENDERER_CHANGED,
            "a re-render differs from the stored dossier, whose bytes are proven by their "
            "receipt: the renderer or its libraries (reportlab, pikepdf) draw the same "
            "manifest differently now, which is not tampering",
            debt_id=debt_id,
            key=one.key,
            expected=stored_version,
            found=version,
        )
    )


def _rerender_unproven(
    store: ObjectStore,
    debt_id: str,
    one: _Stored,
    rerender: DossierRerender,
    receipt_due: bool,
    found: DossierFindings,
) -> None:
    rendered = _render(store, debt_id, one, rerender)
    if isinstance(rendered, Problem):
        found.problems.append(rendered)
        return
    pdf, _ = rendered
    if sha256_hex(pdf) != one.sha256:
        found.problems.append(
            Problem(
                ProblemKind.DOSSIER_MISMATCH,
                "the stored dossier has no receipt and differs from a re-render of its manifest",
                debt_id=debt_id,
                key=one.key,
                expected=sha256_hex(pdf),
                found=one.sha256,
            )
        )
    elif receipt_due:
        found.problems.append(_receipt_missing(debt_id, one))
