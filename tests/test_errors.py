"""The error tree keeps secrets out of messages; logs of HTTP libraries are redacted."""

from __future__ import annotations

import logging

import pytest

from archiver.common.redact import RedactingFormatter, redact_urls, strip_query
from archiver.errors import ArchiverError, MediaExpiredError

SIGNED = "https://b.s3.amazonaws.com/r/x.mp3?X-Amz-Signature=SECRETSIG"


def test_context_urls_lose_their_query() -> None:
    exc = MediaExpiredError("expired", url=SIGNED, debt_id="d1")
    assert "SECRETSIG" not in str(exc) and "SECRETSIG" not in repr(exc.to_dict())
    assert exc.to_dict()["url"] == "https://b.s3.amazonaws.com/r/x.mp3"
    assert isinstance(exc, ArchiverError)


def test_strip_query_drops_credentials_and_fragment() -> None:
    assert strip_query("https://u:p@h.io:8443/a/b?x=1#f") == "https://h.io:8443/a/b"
    assert strip_query(None) is None


def test_redact_urls_in_free_text() -> None:
    text = f"GET {SIGNED} failed; see https://docs.getbill.io/errors"
    assert redact_urls(text) == (
        "GET https://b.s3.amazonaws.com/r/x.mp3 failed; see https://docs.getbill.io/errors"
    )


def test_httpx_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.setFormatter(RedactingFormatter())
    logger = logging.getLogger("httpx")
    with caplog.at_level(logging.INFO, logger="httpx"):
        logger.info('HTTP Request: %s %s "%s"', "GET", SIGNED, "HTTP/1.1 200 OK")
    assert caplog.records and "SECRETSIG" not in caplog.text
    assert "x.mp3" in caplog.text
