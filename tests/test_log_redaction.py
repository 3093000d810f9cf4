"""`archiver --log-level`: every logger at that level, every log line redacted.

The end-to-end runs are real processes (``python -m archiver``) against the simulator on a
socket and SeaweedFS, so logging starts from scratch as it does for an operator.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures_archive import Env

from archiver.common.redact import (
    RedactingFormatter,
    redact_log_text,
    register_secret,
    registered_secrets,
)

ROOT = Path(__file__).resolve().parents[1]

# Any signature value left in a log line (SigV4 header, presigned query, botocore.auth output).
LEAKED_SIGNATURE = re.compile(r"signature(?:=|:\s*)(?!\*\*\*)[0-9a-z%]{8,}", re.IGNORECASE)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m archiver ARGS`` from the worktree root, with only ``env`` (plus PATH)."""
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


class Issued:
    """What the simulator hands out during a run: access tokens and signed media URLs."""

    def __init__(self, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tokens: list[str] = []
        self.signatures: list[str] = []
        issue, sign = env.sim.issue_token, env.sim.signed_url

        def issue_token(*args: Any, **kw: Any) -> str:
            token = issue(*args, **kw)
            self.tokens.append(token)
            return token

        def signed_url(*args: Any, **kw: Any) -> str:
            url = sign(*args, **kw)
            self.signatures.append(url.rsplit("X-Amz-Signature=", 1)[1].split("&")[0])
            return url

        monkeypatch.setattr(env.sim, "issue_token", issue_token)
        monkeypatch.setattr(env.sim, "signed_url", signed_url)


def assert_no_secret(log: str, secret_values: list[str]) -> None:
    for value in secret_values:
        assert value not in log, f"a secret ({value[:4]}…) reached the log"
    leaked = LEAKED_SIGNATURE.search(log)
    assert leaked is None, f"a signature reached the log: {leaked.group(0)[:30]}"


@pytest.mark.integration
def test_debug_archive_run_logs_libraries_without_secrets(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = Issued(env, monkeypatch)
    cli_env = env.cli_env()
    debt_id = env.debts()[0]
    r = run_cli(["--log-level", "DEBUG", "archive", debt_id, "--json"], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stderr
    # Logging was on, the libraries' included: requests, their headers, their signing.
    for logger in ("botocore.endpoint", "botocore.auth", "httpcore.http11", "httpx"):
        assert f" {logger}: " in log, f"no log line of {logger}"
    assert "Authorization" in log and "/media/" in log  # S3 headers, signed media links
    assert issued.tokens and issued.signatures  # the run did get a token and signed links
    assert_no_secret(
        log,
        [
            cli_env["GETBILL_CLIENT_SECRET"],
            cli_env["AWS_SECRET_ACCESS_KEY"],
            *issued.tokens,
            *issued.signatures,
        ],
    )


@pytest.mark.integration
def test_debug_run_with_a_session_token_keeps_it_out_of_the_log(env: Env) -> None:
    # SeaweedFS refuses a session token it did not issue (InvalidAccessKeyId, 403): the run
    # fails at its first S3 request, which still carries and logs the token's header.
    token = "FwoGZXIvYXdzE" + secrets.token_urlsafe(48)
    cli_env = {**env.cli_env(), "AWS_SESSION_TOKEN": token, "ARCHIVER_LOG_LEVEL": "DEBUG"}
    r = run_cli(["archive", env.debts()[0]], cli_env)
    assert r.returncode == 2, r.stderr[-3000:]  # refused credentials: a configuration error
    assert "InvalidAccessKeyId" in r.stderr
    log = r.stderr
    assert "'X-Amz-Security-Token': b'***'" in log  # botocore.endpoint logged the header
    assert "x-amz-security-token:***" in log  # botocore.auth logged the canonical request
    assert_no_secret(log, [token, cli_env["AWS_SECRET_ACCESS_KEY"]])


@pytest.mark.integration
def test_default_level_is_quiet(env: Env) -> None:
    r = run_cli(["archive", env.debts()[0], "--json"], env.cli_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert " DEBUG " not in r.stderr and " botocore" not in r.stderr


def test_log_level_option_is_checked() -> None:
    r = run_cli(["--log-level", "LOUD", "status"], {})
    assert r.returncode == 2
    assert "LOUD" in r.stderr


# -- the formatter on its own -------------------------------------------------------------


def test_child_logger_records_pass_the_redaction(caplog: pytest.LogCaptureFixture) -> None:
    # A filter on "botocore" would not run for "botocore.endpoint"; the formatter does.
    caplog.handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    logger = logging.getLogger("botocore.endpoint")
    headers = {
        "Authorization": b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/"
        b"aws4_request, SignedHeaders=host, Signature=" + b"ab" * 32,
        "X-Amz-Security-Token": b"SESSIONTOKENVALUE",
    }
    with caplog.at_level(logging.DEBUG, logger="botocore.endpoint"):
        logger.debug("Sending http request: %s", headers)
    assert caplog.records
    assert "AKIDEXAMPLE" not in caplog.text and "SESSIONTOKENVALUE" not in caplog.text
    assert "ab" * 32 not in caplog.text


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Signature:\n" + "0f" * 32, "0f" * 32),  # botocore.auth
        ("CanonicalRequest:\nGET\n/\n\nx-amz-security-token:TOKVALUE123\n", "TOKVALUE123"),
        ("GET /m/a.mp3?X-Amz-Credential=SIM%2F1&X-Amz-Signature=deadbeef01", "deadbeef01"),
        ('"GET /m/a.mp3?X-Amz-Security-Token=TOKVALUE123 HTTP/1.1" 200', "TOKVALUE123"),
        ("headers: [(b'authorization', b'Bearer abc.def.ghi')]", "abc.def.ghi"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("<Credentials><SessionToken>TOKVALUE123</SessionToken>", "TOKVALUE123"),
        ("<SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>", "wJalrXUtnFEMI"),
        ('{"access_token": "tok-123456", "expires_in": 3600}', "tok-123456"),
        ("grant_type=client_credentials&client_secret=s3cr3t-value&scope=x", "s3cr3t-value"),
        ("redirect to https://h.io/a?sig=abcdef123456", "abcdef123456"),
    ],
)
def test_log_text_patterns(line: str, secret: str) -> None:
    out = redact_log_text(line)
    assert secret not in out
    assert "***" in out or "?" not in out


def test_registered_secrets_in_every_spelling() -> None:
    value = "p@ss word/with+chars"
    register_secret(value, None, "", "short")
    assert value in registered_secrets() and "short" not in registered_secrets()
    for spelling in (value, "p%40ss%20word%2Fwith%2Bchars", "p%40ss+word%2Fwith%2Bchars"):
        assert spelling not in redact_log_text(f"sent {spelling} once")
