"""Redaction: signed query strings, secrets and secret-looking fields never leave the process.

One home for every rule that keeps tokens, client secrets and signed URLs out of logs, errors,
the catalog and stored files. Pure functions, the registry of this process's secret values and
the logging formatter that applies them to every log line.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, overload
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit


@overload
def strip_query(url: str) -> str: ...
@overload
def strip_query(url: None) -> None: ...
def strip_query(url: str | None) -> str | None:
    """Return ``url`` without its query string, fragment and user:password (signed URLs carry
    secrets there)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    netloc = (f"[{host}]" if ":" in host else host) + port
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_URL_WITH_QUERY = re.compile(r"""https?://[^\s"'<>?#]*[?#][^\s"'<>]*""", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """Strip the query string of every URL inside free text (API messages, library errors)."""
    return _URL_WITH_QUERY.sub(lambda m: strip_query(m.group(0)) or "", text)


# Query parameters that make a URL a signed (secret-bearing) link.
_SIGNING_PARAMS = (
    "x-amz-signature",
    "x-amz-credential",
    "signature=",
    "sig=",
    "token=",
    "expires=",
)


def strip_signed_urls(value: Any) -> Any:
    """``value`` with the query string removed from every string that is a signed URL, at any
    depth (``audio_url``, ``pdf_url``, but also fields the API adds later)."""
    if isinstance(value, str):
        low = value.lower()
        if low.startswith(("http://", "https://")) and any(p in low for p in _SIGNING_PARAMS):
            return strip_query(value)
        return value
    if isinstance(value, dict):
        return {k: strip_signed_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_signed_urls(v) for v in value]
    return value


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***`` in each spelling it can take (as is,
    URL-encoded, form-encoded), and every URL's query string removed."""
    for secret in secrets:
        if secret:
            for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(spelling, "***")
    return redact_urls(text)


_SECRET_WORDS = ("token", "secret", "password", "credential", "authorization", "api_key")


def redact_mapping(value: Any) -> Any:
    """Drop secret-looking keys at any depth and strip query strings from URL-looking strings
    (run options and summaries before they are written to the catalog)."""
    if isinstance(value, dict):
        return {
            k: redact_mapping(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS)
        }
    if isinstance(value, list | tuple):
        return [redact_mapping(v) for v in value]
    if isinstance(value, str) and "://" in value and ("?" in value or "#" in value):
        return strip_query(value)
    return value


# -- log lines --------------------------------------------------------------------------------

_MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words of every log line
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Remember secret values of this process (client secret, tokens, AWS keys): every log
    line the :class:`RedactingFormatter` writes has them replaced by ``***``."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LENGTH)


def registered_secrets() -> tuple[str, ...]:
    """The registered secret values, longest first (so no part of one survives another)."""
    with _secrets_lock:
        return tuple(sorted(_secrets, key=len, reverse=True))


_SECRET_HEADERS = "authorization|x-amz-security-token|proxy-authorization|cookie|set-cookie"
_SECRET_FIELDS = (
    "client_secret|access_token|refresh_token|id_token|password|secretaccesskey|sessiontoken"
    "|aws_secret_access_key|aws_session_token"
)
# (pattern, replacement): each keeps the name and drops the value.
_LOG_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a header in a dict or bytes repr ('Authorization': b'...') or on its own line (name: value)
    (re.compile(rf"""((?:{_SECRET_HEADERS})['"]?\s*:\s*b?['"]?)[^'"\r\n]+""", re.I), r"\1***"),
    # signed query parameters and the parts of a SigV4 Authorization value, wherever they are
    (re.compile(r"""((?:signature|credential|security-token)=)[^&,\s'"<>]+""", re.I), r"\1***"),
    (re.compile(r"(\bsignature:\s*)[0-9a-f]{16,}", re.I), r"\1***"),  # botocore.auth
    (re.compile(r"""(\bbearer\s+)[^\s'",]+""", re.I), r"\1***"),
    # form, JSON and XML fields (token requests and answers, STS credentials)
    (re.compile(rf"""((?:{_SECRET_FIELDS})['"]?\s*[=:]\s*b?['"]?)[^'"&\s,}}<]+""", re.I), r"\1***"),
    (re.compile(r"(<(?:SecretAccessKey|SessionToken)>)[^<]*", re.I), r"\1***"),
)


def redact_log_text(text: str) -> str:
    """``text`` fit for a log: registered secrets, secret headers and fields, signatures and
    every URL's query string replaced."""
    text = scrub_secrets(text, registered_secrets())
    for pattern, replacement in _LOG_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output passed :func:`redact_log_text`: the whole formatted line
    (message, arguments, traceback and stack), whichever logger the record came from.

    Filters on a logger do not run for records of its child loggers (``botocore.endpoint``,
    ``httpcore.http11``); a handler's formatter sees every record the handler writes.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact_log_text(super().format(record))
