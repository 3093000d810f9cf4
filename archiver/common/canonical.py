"""Canonical JSON (RFC 8785) and hashing helpers. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

# RFC 8785 numbers are IEEE doubles: integers beyond this are refused (rfc8785 says why).
_SAFE_INT = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON bytes (UTF-8, sorted keys, no spaces).

    Records, manifests and receipts are strings, whole numbers, booleans and nulls under
    ASCII keys. For those, the standard library's C encoder writes the very bytes RFC 8785
    asks for (the same escapes, keys in the same order: for ASCII keys, code points and
    UTF-16 units sort alike) at a quarter of the CPU of rfc8785's pure-Python encoder.
    Anything else (a float, a larger integer, a non-ASCII key, a subclass, a lone surrogate,
    another type) goes to rfc8785, which serialises it or says why it cannot. One difference
    at the edge: a structure nested nearly as deep as Python's recursion limit, which
    rfc8785 gives up on, is written here (with the same bytes it would have had).
    """
    try:
        if _plain(value):
            return json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), sort_keys=True
            ).encode("utf-8")
    except (RecursionError, UnicodeEncodeError):
        pass  # a structure too deep or circular, a lone surrogate: rfc8785 says what is wrong
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what :func:`json.dumps` writes exactly as RFC 8785 does
    (exact types: an ``Enum`` or other subclass is left to rfc8785)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and item is not None and not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    return False


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(value: Any) -> tuple[bytes, str]:
    """Return ``(canonical bytes, their SHA-256 hex)``."""
    data = canonical_json(value)
    return data, sha256_hex(data)
