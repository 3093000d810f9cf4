"""The hash chain of a debt's manifests, checked: one pure function for every caller.

Manifest N+1 names the key and the SHA-256 of manifest N's stored bytes in ``previous``;
manifest 1 names none. :func:`chain_faults` walks the manifests of one debt in sequence order
and says, per manifest, what breaks the chain. Reading S3 and wording the problems are the
callers' business (``archiver reindex --verify-chain``, ``archiver verify``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["UNREAD", "ChainFault", "ChainFaultKind", "ChainLink", "chain_faults"]


class _Unread:
    def __repr__(self) -> str:
        return "UNREAD"


UNREAD: Any = _Unread()
"""``ChainLink.previous`` of a manifest whose bytes are known but not its content (not JSON,
not a manifest): the link itself cannot be checked, the next one still can."""


@dataclass(frozen=True)
class ChainLink:
    """One stored manifest as the chain sees it.

    ``sha256`` is of the stored bytes (None: the bytes could not be read, so the next
    manifest cannot be checked against them); ``previous`` is what the manifest names
    (``{"key", "sha256"}``, None, or :data:`UNREAD`).
    """

    sequence: int
    key: str
    sha256: str | None
    previous: Any


class ChainFaultKind(StrEnum):
    """What is wrong with one link."""

    SEQUENCE_GAP = "sequence_gap"  # sequences missing right before this manifest
    FIRST_NAMES_PREVIOUS = "first_names_previous"  # sequence 1 names a previous manifest
    NAMES_NO_PREVIOUS = "names_no_previous"  # sequence > 1 names none
    PREVIOUS_UNKNOWN = "previous_unknown"  # the manifest before is missing or unreadable
    KEY_MISMATCH = "key_mismatch"  # names another key than the manifest before
    SHA256_MISMATCH = "sha256_mismatch"  # names other bytes than those stored before


@dataclass(frozen=True)
class ChainFault:
    """One break of the chain at ``link``; ``before`` is the manifest it was checked against,
    ``expected`` / ``found`` say what differed (sequences for a gap, keys or hashes)."""

    kind: ChainFaultKind
    link: ChainLink
    before: ChainLink | None = None
    expected_sequence: int | None = None  # for a gap

    @property
    def key(self) -> str:
        return self.link.key

    @property
    def named(self) -> dict[str, Any]:
        """What the manifest names as its previous one (empty when nothing)."""
        return self.link.previous if isinstance(self.link.previous, dict) else {}

    @property
    def expected(self) -> str | None:
        if self.kind is ChainFaultKind.SEQUENCE_GAP:
            return str(self.expected_sequence)
        if self.before is not None and self.kind is ChainFaultKind.KEY_MISMATCH:
            return self.before.key
        if self.before is not None and self.kind is ChainFaultKind.SHA256_MISMATCH:
            return self.before.sha256
        return None

    @property
    def found(self) -> str | None:
        if self.kind is ChainFaultKind.SEQUENCE_GAP:
            return str(self.link.sequence)
        if self.kind is ChainFaultKind.KEY_MISMATCH:
            return str(self.named.get("key"))
        if self.kind is ChainFaultKind.SHA256_MISMATCH:
            return str(self.named.get("sha256"))
        return None

    @property
    def message(self) -> str:
        """A sentence for people."""
        match self.kind:
            case ChainFaultKind.SEQUENCE_GAP:
                return f"expected sequence {self.expected_sequence}, found {self.link.sequence}"
            case ChainFaultKind.FIRST_NAMES_PREVIOUS:
                return "sequence 1 names a previous manifest"
            case ChainFaultKind.NAMES_NO_PREVIOUS:
                return "names no previous manifest"
            case ChainFaultKind.PREVIOUS_UNKNOWN:
                return "previous manifest missing or unreadable"
        before = self.before or ChainLink(0, "?", None, None)
        return (
            f"names previous {self.named.get('key')} sha256 {self.named.get('sha256')}, "
            f"but {before.key} has sha256 {before.sha256}"
        )


def chain_faults(links: Iterable[ChainLink]) -> list[ChainFault]:
    """Every break of the chain of one debt's manifests, ``links`` in sequence order.

    A missing sequence is one :attr:`~ChainFaultKind.SEQUENCE_GAP` on the manifest after the
    gap, which is then checked against the last manifest before the gap. A manifest after
    one whose bytes are unknown gets :attr:`~ChainFaultKind.PREVIOUS_UNKNOWN`; a manifest
    whose own ``previous`` is :data:`UNREAD` is not checked itself.
    """
    faults: list[ChainFault] = []
    expected_seq = 1
    before: ChainLink | None = None
    for link in links:
        if link.sequence != expected_seq:
            faults.append(ChainFault(ChainFaultKind.SEQUENCE_GAP, link, before, expected_seq))
        expected_seq = link.sequence + 1
        kind = _break(link, before)
        if kind is not None:
            faults.append(ChainFault(kind, link, before))
        before = link
    return faults


def _break(link: ChainLink, before: ChainLink | None) -> ChainFaultKind | None:
    named = link.previous
    if named is UNREAD:
        return None
    if link.sequence == 1:
        return ChainFaultKind.FIRST_NAMES_PREVIOUS if named is not None else None
    if not isinstance(named, dict):
        return ChainFaultKind.NAMES_NO_PREVIOUS
    if before is None or before.sha256 is None:
        return ChainFaultKind.PREVIOUS_UNKNOWN
    if named.get("key") != before.key:
        return ChainFaultKind.KEY_MISMATCH
    if named.get("sha256") != before.sha256:
        return ChainFaultKind.SHA256_MISMATCH
    return None
