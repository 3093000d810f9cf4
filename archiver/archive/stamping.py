"""Trusted timestamps of a debt's manifests: a token from a TSA over each manifest's SHA-256,
stored beside it (``manifests/{sequence:08d}.tsr``) like the manifest: conditional,
checksummed, locked under the manifest's retention.

A TSA that is down or refuses never stops archiving: the debt's result gets a warning
(``TimestampMissing``) and every later run of the debt (archived, unchanged or partial)
asks again for the tokens its stored manifests still lack, oldest first, until a TSA fails
again. A token another run stored first (two runs stamping the same manifest) stands.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from archiver.archive.plan import DebtPlan
from archiver.archive.results import DebtResult
from archiver.archive.storing import LockedWriter
from archiver.common.problems import Problem, ProblemKind
from archiver.errors import ArchiverError, ObjectConflictError
from archiver.store import keys
from archiver.store.objects import ObjectStore

if TYPE_CHECKING:
    from archiver.timestamps.client import Timestamper

__all__ = ["TokenKeeper"]

TOKEN_TYPE = "application/timestamp-reply"


class TokenKeeper:
    """Asks the configured TSAs for the tokens of a debt's manifests and stores them."""

    def __init__(self, store: ObjectStore, timestamper: Timestamper) -> None:
        self.store = store
        self.writer = LockedWriter(store)
        self.timestamper = timestamper

    def keep(self, plan: DebtPlan, result: DebtResult, new: tuple[int, bytes] | None) -> None:
        """Stamp manifest ``new`` (its sequence and bytes, just stored) and then every earlier
        manifest of the debt without a token; the keys stored go to
        ``result.timestamp_keys``, what could not be stamped to ``result.problems``."""
        missing: list[tuple[int, bytes | None]] = [new] if new is not None else []
        missing += [(seq, None) for seq in self._unstamped(plan.debt_id, new)]
        for done, (sequence, data) in enumerate(missing, start=1):
            if not self._stamp(plan, result, sequence, data):
                # No TSA answers now: the others are left for the next run, not asked in vain.
                if done < len(missing):
                    result.problems[-1]["manifests_left_unstamped"] = len(missing) - done
                return

    def _unstamped(self, debt_id: str, new: tuple[int, bytes] | None) -> list[int]:
        """The sequences of the stored manifests without a token (one LIST), oldest first."""
        manifests, tokens = set(), set()
        for key in self.store.list_keys(f"{keys.debt_prefix(debt_id)}manifests/"):
            if (parsed := keys.parse_manifest_key(key)) and parsed[0] == debt_id:
                manifests.add(parsed[1])
            elif (parsed := keys.parse_manifest_token_key(key)) and parsed[0] == debt_id:
                tokens.add(parsed[1])
        skip = {new[0]} if new is not None else set()
        return sorted(manifests - tokens - skip)

    def _stamp(self, plan: DebtPlan, result: DebtResult, sequence: int, data: bytes | None) -> bool:
        """Stamp one manifest (its bytes read from S3 when not given); False when no TSA gave
        a token (noted in ``result``)."""
        mkey = keys.manifest_key(plan.debt_id, sequence)
        tkey = keys.manifest_token_key(plan.debt_id, sequence)
        if data is None:
            try:
                data = self.store.read_bytes(mkey)
            except ArchiverError as exc:
                problem = Problem.from_exception(exc, debt_id=plan.debt_id, key=mkey)
                result.problems.append(replace(problem, severity="warning").to_dict())
                return False
        stamp = self.timestamper.stamp(data)
        if stamp.token is None:
            result.problems.append(
                Problem(
                    ProblemKind.TIMESTAMP_MISSING,
                    f"no timestamp token for manifest {sequence}: "
                    + "; ".join(stamp.failures)
                    + "; the next run of this debt asks again",
                    debt_id=plan.debt_id,
                    key=tkey,
                    severity="warning",
                    details={"manifest_key": mkey},
                ).to_dict()
            )
            return False
        try:
            self.writer.put_bytes(
                tkey,
                stamp.token,
                lock=plan.facts.lock(plan.policy, "manifest", None),
                content_type=TOKEN_TYPE,
                metadata={"kind": "manifest-timestamp"},
            )
        except ObjectConflictError:
            pass  # another run stamped this manifest first: its token stands
        except ArchiverError as exc:
            problem = Problem.from_exception(exc, debt_id=plan.debt_id, key=tkey)
            result.problems.append(replace(problem, severity="warning").to_dict())
            return False
        result.timestamp_keys.append(tkey)
        return True
