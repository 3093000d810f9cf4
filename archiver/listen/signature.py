"""The signature of a getbill webhook: ``X-GetBill-Signature`` is the hex HMAC-SHA256 of the
raw request body, keyed with the webhook secret. Checked on the bytes as received (never a
re-serialised body), in constant time, against each configured secret (the current one and,
while it is rotated, the previous one)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = ["SIGNATURE_HEADER", "sign", "signed_with"]

SIGNATURE_HEADER = "X-GetBill-Signature"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def sign(body: bytes, secret: str) -> str:
    """The signature getbill sends with ``body``: lower-case hex HMAC-SHA256."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed_with(body: bytes, given: str | None, secrets: Sequence[tuple[str, str]]) -> str | None:
    """The name of the secret (of ``(name, secret)`` pairs) whose signature of ``body`` is
    ``given``; None when none is (or no signature was given).

    Every secret is compared, whatever the first comparison says, each in constant time: the
    answer's timing tells nothing about which secret, or how much of a signature, matched.
    """
    if not given:
        return None
    candidate = given.strip().lower()
    if not _HEX_SHA256.fullmatch(candidate):
        return None
    found = None
    for name, secret in secrets:
        if hmac.compare_digest(sign(body, secret), candidate) and found is None:
            found = name
    return found
