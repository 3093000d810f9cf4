"""Redaction: signed query strings, secrets and secret-looking fields never leave the process.

One home for every rule that keeps tokens, client secrets and signed URLs out of logs, errors,
the catalog and stored files. Pure functions, plus the logging filter that applies them.
"""

from __future__ import annotations

import logging
import re
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


class _RedactUrlQueries(logging.Filter):
    """Logging filter: URLs in log records lose their query strings (httpx logs every request
    URL at INFO, signatures included, if an application turns that logger on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                redact_urls(str(a)) if ("?" in str(a) and "://" in str(a)) else a for a in args
            )
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_urls(record.msg)
        return True


def install_log_redaction() -> None:
    """Attach the URL-redacting filter to the loggers of the HTTP libraries we use (once)."""
    for name in ("httpx", "httpcore", "botocore", "urllib3"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactUrlQueries) for f in logger.filters):
            logger.addFilter(_RedactUrlQueries())


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
