"""Checking an RFC 3161 time-stamp response against the bytes it should stamp. Pure, no I/O.

A token (the TSA's ``TimeStampResp``, DER, as ``openssl ts -reply`` writes it and as it is
stored at ``debts/{id}/manifests/{sequence:08d}.tsr``) proves that a TSA saw a SHA-256 at the
time it states. :func:`verify_token` checks, in order: the response parses and was granted;
it stamps a SHA-256 equal to the expected one (else it is another document's token); and,
given trusted TSA roots (``ARCHIVER_TSA_CA``), that its signature is valid and its signer's
certificate chains up to one of them with the critical ``timeStamping`` usage (else an unknown
TSA signed it, or the signature is broken). The nonce is checked when a token is received
(:mod:`archiver.timestamps.client`); after the fact there is no request to compare it with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

import cryptography.x509
from cryptography.hazmat.primitives import hashes
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from archiver.common.problems import Problem, ProblemKind
from archiver.errors import ConfigError

__all__ = [
    "SHA256_OID",
    "TokenCheck",
    "TokenInfo",
    "ca_fingerprints",
    "decode_response",
    "load_ca",
    "read_token",
    "verify_token",
]

SHA256_OID = "2.16.840.1.101.3.4.2.1"


@dataclass(frozen=True)
class TokenInfo:
    """What a token says, unchecked: the TSA's name, its time, the stamped SHA-256 (hex, when
    the digest is a SHA-256), the TSA's policy OID and the token's serial number."""

    tsa: str
    gen_time: datetime
    sha256: str | None
    policy: str
    serial: int


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of :func:`verify_token`.

    ``ok``: no problem of severity error (with ``chain_checked`` False the signature and the
    TSA were not checked: no trusted roots were given; a notice in ``problems`` says so).
    ``tsa`` and ``gen_time`` are what the token states (None when it cannot be read).
    ``problems`` carry a kind and a message only: :meth:`located` names the debt and key.
    """

    ok: bool
    tsa: str | None
    gen_time: datetime | None
    problems: list[Problem] = field(default_factory=list)
    policy: str | None = None
    serial: int | None = None
    chain_checked: bool = False

    def located(self, *, debt_id: str | None = None, key: str | None = None) -> list[Problem]:
        """:attr:`problems`, each naming ``debt_id`` and ``key`` (the token's)."""
        return [replace(p, debt_id=debt_id, key=key) for p in self.problems]


def load_ca(ca_pem: bytes) -> list[cryptography.x509.Certificate]:
    """The certificates of a PEM bundle of trusted TSA roots; :class:`ConfigError` when it
    holds none or cannot be read."""
    try:
        certs = cryptography.x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise ConfigError(
            f"the trusted TSA certificates (ARCHIVER_TSA_CA) are not PEM: {exc}"
        ) from None
    if not certs:
        raise ConfigError("the trusted TSA certificates (ARCHIVER_TSA_CA) hold no certificate")
    return certs


def ca_fingerprints(ca_pem: bytes) -> list[tuple[str, str]]:
    """``(subject, SHA-256 fingerprint as openssl prints it: AB:CD:...)`` of each certificate of
    a PEM bundle: what a receiver compares with the TSA's published roots."""
    out = []
    for cert in load_ca(ca_pem):
        digest = cert.fingerprint(hashes.SHA256()).hex().upper()
        pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        out.append((_dn(cert.subject), pairs))
    return out


def decode_response(token: bytes) -> TimeStampResponse:
    """The parsed response; ValueError when it is not one."""
    try:
        return decode_timestamp_response(token)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser's own errors, whatever their class
        raise ValueError(str(exc)) from None


def _dn(name: cryptography.x509.Name) -> str:
    """A distinguished name in its certificate's order, as OpenSSL prints it:
    ``CN=Test TSA, O=Example``."""
    return ", ".join(rdn.rfc4514_string() for rdn in name.rdns)


def _tsa_name(resp: TimeStampResponse) -> str:
    """The token's TSA field, else the subject of the certificate that signed it."""
    name = resp.tst_info.name
    if isinstance(name, cryptography.x509.DirectoryName):
        return _dn(name.value)
    if name is not None:
        return str(name.value)
    signer = _signer(resp)
    return _dn(signer.subject) if signer is not None else "unnamed TSA"


def _signer(resp: TimeStampResponse) -> cryptography.x509.Certificate | None:
    """The embedded certificate the signer info names (issuer and serial), if embedded."""
    infos = list(resp.signed_data.signer_infos)
    if len(infos) != 1:
        return None
    for der in resp.signed_data.certificates:
        cert = cryptography.x509.load_der_x509_certificate(der)
        if cert.issuer == infos[0].issuer and cert.serial_number == infos[0].serial_number:
            return cert
    return None


def _info(resp: TimeStampResponse) -> TokenInfo:
    imprint = resp.tst_info.message_imprint
    sha = imprint.message.hex() if imprint.hash_algorithm.dotted_string == SHA256_OID else None
    return TokenInfo(
        tsa=_tsa_name(resp),
        gen_time=resp.tst_info.gen_time,
        sha256=sha,
        policy=resp.tst_info.policy.dotted_string,
        serial=resp.tst_info.serial_number,
    )


def read_token(token: bytes) -> TokenInfo | None:
    """What a granted token says, without checking it (the dossier shows it; ``verify``
    checks it); None when it is not a granted time-stamp response."""
    try:
        resp = decode_response(token)
        if resp.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
            return None
        return _info(resp)
    except (ValueError, AttributeError):
        return None


def _reason(exc: Exception) -> str:
    """A verification error in a line: OpenSSL's reasons, not its error stack."""
    text = str(exc)
    reasons = re.findall(r'(?:reason|data): "([^"]+)"', text)
    if reasons:
        return "; ".join(dict.fromkeys(r for r in reasons if r.strip(" :")))
    return text[:200]


def _chains_to(resp: TimeStampResponse, roots: list[cryptography.x509.Certificate]) -> bool:
    """Whether the signer's certificate, through the embedded ones, names one of ``roots`` as
    its issuer (by name): if not, the token comes from a TSA those roots do not know."""
    cert = _signer(resp)
    if cert is None:
        return False
    embedded = [
        cryptography.x509.load_der_x509_certificate(d) for d in resp.signed_data.certificates
    ]
    subjects = {root.subject for root in roots}
    for _ in range(len(embedded) + 1):
        if cert.issuer in subjects or cert in roots:
            return True
        parent = next((c for c in embedded if c.subject == cert.issuer and c != cert), None)
        if parent is None:
            return False
        cert = parent
    return False


def verify_token(
    token: bytes, data_sha256: str, ca_pem: bytes | None, *, policy: str | None = None
) -> TokenCheck:
    """Check that ``token`` (a DER ``TimeStampResp``) stamps ``data_sha256`` (hex) and, with
    ``ca_pem`` (PEM roots of trusted TSAs), that a TSA those roots certify signed it; with
    ``policy`` (an OID), that it was issued under that policy. See the module docstring.

    Problems: ``TimestampInvalid`` (not a response, not granted, not a SHA-256, bad signature,
    signer without the timeStamping usage, other policy), ``TimestampMismatch`` (stamps other
    bytes: another manifest's token), ``TimestampUntrusted`` (signed by a TSA the roots do not
    know); a notice when ``ca_pem`` is None (signature and TSA not checked). A CA that cannot
    be read raises :class:`ConfigError` (a setting, not the token, is wrong)."""
    roots = load_ca(ca_pem) if ca_pem is not None else None
    try:
        resp = decode_response(token)
    except ValueError as exc:
        return _failed(ProblemKind.TIMESTAMP_INVALID, f"not a time-stamp response: {_reason(exc)}")
    if resp.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        text = "; ".join(resp.status_string) or f"status {resp.status}"
        return _failed(ProblemKind.TIMESTAMP_INVALID, f"the TSA did not grant this token: {text}")
    try:
        info = _info(resp)
    except (ValueError, AttributeError) as exc:
        return _failed(ProblemKind.TIMESTAMP_INVALID, f"unreadable token: {_reason(exc)}")
    problems: list[Problem] = []
    if info.sha256 is None:
        problems.append(
            Problem(
                ProblemKind.TIMESTAMP_INVALID,
                "the token stamps a digest other than SHA-256 "
                f"({resp.tst_info.message_imprint.hash_algorithm.dotted_string})",
            )
        )
    elif info.sha256 != data_sha256.lower():
        problems.append(
            Problem(
                ProblemKind.TIMESTAMP_MISMATCH,
                "the token stamps other bytes than this manifest (another document's token)",
                expected=data_sha256.lower(),
                found=info.sha256,
            )
        )
    if policy is not None and info.policy != policy:
        problems.append(
            Problem(
                ProblemKind.TIMESTAMP_INVALID,
                "the token was issued under another TSA policy",
                expected=policy,
                found=info.policy,
            )
        )
    if roots is None:
        problems.append(
            Problem(
                ProblemKind.TIMESTAMP_UNTRUSTED,
                "the TSA's signature and certificate were not checked: no trusted TSA "
                "certificates are configured (ARCHIVER_TSA_CA)",
                severity="notice",
            )
        )
    else:
        problems += _signature_problems(resp, roots)
    return TokenCheck(
        ok=not any(p.blocking for p in problems),
        tsa=info.tsa,
        gen_time=info.gen_time,
        problems=problems,
        policy=info.policy,
        serial=info.serial,
        chain_checked=roots is not None,
    )


def _signature_problems(
    resp: TimeStampResponse, roots: list[cryptography.x509.Certificate]
) -> list[Problem]:
    """The signature, the signer's usage and its chain up to ``roots`` (the stamped digest
    itself is compared by the caller)."""
    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(resp, resp.tst_info.message_imprint.message)
    except (VerificationError, ValueError) as exc:
        if not _chains_to(resp, roots):
            signer = _signer(resp)
            issuer = _dn(signer.issuer) if signer is not None else "unknown issuer"
            return [
                Problem(
                    ProblemKind.TIMESTAMP_UNTRUSTED,
                    f"the token is signed by a TSA that the trusted TSA certificates "
                    f"(ARCHIVER_TSA_CA) do not certify (its issuer: {issuer})",
                    found=issuer,
                )
            ]
        return [
            Problem(
                ProblemKind.TIMESTAMP_INVALID,
                f"the token's signature or signer certificate does not verify: {_reason(exc)}",
            )
        ]
    return []


def _failed(kind: ProblemKind, message: str) -> TokenCheck:
    return TokenCheck(ok=False, tsa=None, gen_time=None, problems=[Problem(kind, message)])
