"""Verification of the trusted timestamps of one debt's manifests.

Each token stored at ``manifests/{sequence:08d}.tsr`` must stamp the SHA-256 of the stored
bytes of its manifest and be signed by a TSA the trusted roots certify
(:func:`archiver.timestamps.tokens.verify_token`): another manifest's token, a token of an
unknown TSA, a garbled one, or a token with no manifest is a problem. A manifest without a
token is a notice (its TSA was down and no run has stamped it since, or timestamps were not
configured then), when timestamps are expected or the debt has any.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from archiver.common.problems import Problem, ProblemKind
from archiver.errors import ArchiverError
from archiver.manifest.chain import ChainLink
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["TimestampFindings", "TimestampTrust", "check_timestamps"]


@dataclass(frozen=True)
class TimestampTrust:
    """How tokens are judged: ``ca_pem``, the PEM roots of trusted TSAs (``ARCHIVER_TSA_CA``;
    None: signatures are not checked, a notice says so once); ``expected``: timestamps are
    configured, so a manifest without a token is worth a notice even if the debt has none."""

    ca_pem: bytes | None = None
    expected: bool = False


@dataclass
class TimestampFindings:
    """What :func:`check_timestamps` found: tokens checked, problems, notices."""

    tokens: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)


def check_timestamps(
    store: ObjectStore,
    debt_id: str,
    links: Iterable[ChainLink],
    token_keys: dict[int, str],
    trust: TimestampTrust,
) -> TimestampFindings:
    """Check the token of each manifest (``links``: the stored manifests, with the SHA-256 of
    their bytes) among ``token_keys`` (sequence -> key of the stored tokens)."""
    found = TimestampFindings()
    by_seq = {link.sequence: link for link in links}
    unchecked = 0
    for seq, tkey in sorted(token_keys.items()):
        link = by_seq.get(seq)
        if link is None:
            found.problems.append(
                Problem(
                    ProblemKind.TIMESTAMP_INVALID,
                    f"a timestamp token is stored for manifest {seq}, which is not stored",
                    debt_id=debt_id,
                    key=tkey,
                )
            )
            continue
        if link.sha256 is None:
            continue  # the manifest's bytes could not be read: reported with the chain
        try:
            token = store.read_bytes(tkey)
        except ArchiverError as exc:
            found.problems.append(Problem.from_exception(exc, debt_id=debt_id, key=tkey))
            continue
        found.tokens += 1
        # cryptography and rfc3161-client load only when there is a token to check.
        from archiver.timestamps.tokens import verify_token

        check = verify_token(token, link.sha256, trust.ca_pem)
        for problem in check.located(debt_id=debt_id, key=tkey):
            if problem.blocking:
                found.problems.append(problem)
            elif problem.kind is ProblemKind.TIMESTAMP_UNTRUSTED:
                unchecked += 1  # signatures not checked: said once below
            else:
                found.notices.append(problem)
    if unchecked:
        found.notices.append(
            Problem(
                ProblemKind.TIMESTAMP_UNTRUSTED,
                f"the signatures of {unchecked} timestamp token(s) were not checked: no "
                "trusted TSA certificates are configured (ARCHIVER_TSA_CA)",
                debt_id=debt_id,
                severity="notice",
            )
        )
    if trust.expected or token_keys:
        for seq, link in sorted(by_seq.items()):
            if seq not in token_keys:
                found.notices.append(
                    Problem(
                        ProblemKind.TIMESTAMP_MISSING,
                        f"manifest {seq} has no timestamp token (the next archive run of "
                        "the debt asks the configured TSAs for it)",
                        debt_id=debt_id,
                        key=keys.manifest_token_key(debt_id, seq),
                        severity="notice",
                        details={"manifest_key": link.key},
                    )
                )
    return found
