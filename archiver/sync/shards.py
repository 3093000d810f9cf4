"""Shards of a sync: ``--shard I/N`` (0-based), ``ARCHIVER_SHARD``, or ``--shards N`` with the
``JOB_COMPLETION_INDEX`` a Kubernetes Indexed Job sets in each pod. Pure functions.

- Window mode: shard I lists the I-th slice of the window's days (contiguous, disjoint, so
  no listing page is paid twice); with fewer days than shards, some shards have no day.
- Full mode: shard I takes the debts whose id hashes (SHA-256) to I modulo N, which spreads
  debts evenly and never depends on the listing's order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from archiver.errors import ConfigError

__all__ = ["Shard", "day_slice", "owns_debt", "parse_shard"]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int = 0
    count: int = 1

    @property
    def whole(self) -> bool:
        return self.count == 1

    def label(self) -> str:
        """``2/4``: as ``--shard`` takes it."""
        return f"{self.index}/{self.count}"

    def to_json(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def parse_shard(
    shard: str | None, shards: int | None, completion_index: str | None = None
) -> Shard:
    """The shard from ``--shard I/N`` (or ``ARCHIVER_SHARD``), else ``--shards N`` with
    ``JOB_COMPLETION_INDEX``; neither: the whole world (``0/1``)."""
    if shard:
        head, sep, tail = shard.partition("/")
        try:
            index, count = int(head), int(tail)
        except ValueError:
            raise ConfigError(
                f"--shard must be I/N with whole numbers, like 0/4, not {shard!r}"
            ) from None
        if not sep or count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {shard}: I/N needs N >= 1 and 0 <= I < N")
        if shards is not None and shards != count:
            raise ConfigError(f"--shard {shard} and --shards {shards} disagree")
        return Shard(index, count)
    if shards is None:
        return Shard()
    if shards < 1:
        raise ConfigError("--shards must be at least 1")
    if completion_index is None:
        if shards == 1:
            return Shard()
        raise ConfigError(
            f"--shards {shards} needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job) "
            "or --shard I/N to say which shard this process is"
        )
    try:
        index = int(completion_index)
    except ValueError:
        raise ConfigError(
            f"JOB_COMPLETION_INDEX must be a whole number, not {completion_index!r}"
        ) from None
    if not 0 <= index < shards:
        raise ConfigError(f"JOB_COMPLETION_INDEX={index} is outside 0..{shards - 1}")
    return Shard(index, shards)


def owns_debt(shard: Shard, debt_id: str) -> bool:
    """Whether ``debt_id`` belongs to ``shard`` (full mode)."""
    if shard.whole:
        return True
    digest = hashlib.sha256(debt_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard.count == shard.index


def day_slice(shard: Shard, first: date, last: date) -> tuple[date, date] | None:
    """The days ``shard`` lists of the window ``first``..``last`` (inclusive), or None when
    the window has fewer days than shards and this one gets none."""
    days = (last - first).days + 1
    if days < 1:
        return None
    start = days * shard.index // shard.count
    end = days * (shard.index + 1) // shard.count
    if end <= start:
        return None
    return first + timedelta(days=start), first + timedelta(days=end - 1)
