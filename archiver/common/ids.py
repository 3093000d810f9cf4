"""The id rule: which getbill ids may become one S3 key segment. Defined once, used by the
API client (records it accepts), the key builders and record labels."""

from __future__ import annotations

import re

from archiver.errors import UnsafeIdError

MAX_ID_LENGTH = 128
# Opaque getbill ids are alphanumeric; we accept the usual URL-safe punctuation too,
# but never "/", "\\", "..", whitespace or control characters.
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")


def is_safe_id(value: object) -> bool:
    """True when ``value`` is a string usable as one S3 key segment."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and ".." not in value
        and SAFE_ID_RE.match(value) is not None
    )


def check_id(value: object, *, what: str = "id", **context: object) -> str:
    """Return ``value`` if it is safe as one S3 key segment, else raise :class:`UnsafeIdError`."""
    if not isinstance(value, str) or not value:
        raise UnsafeIdError(f"{what} must be a non-empty string, got {value!r:.40}", **context)
    if len(value) > MAX_ID_LENGTH:
        raise UnsafeIdError(
            f"{what} is {len(value)} characters long (at most {MAX_ID_LENGTH})", **context
        )
    if not is_safe_id(value):
        raise UnsafeIdError(
            f"{what} {value[:40]!r} is not a safe key segment "
            "(letters, digits, '.', '_', '~', '-' only; no '/', '..' or control characters)",
            **context,
        )
    return value
