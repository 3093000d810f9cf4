"""Canonical JSON (RFC 8785) and hashing helpers. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON bytes (UTF-8, sorted keys, no spaces)."""
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(value: Any) -> tuple[bytes, str]:
    """Return ``(canonical bytes, their SHA-256 hex)``."""
    data = canonical_json(value)
    return data, sha256_hex(data)
