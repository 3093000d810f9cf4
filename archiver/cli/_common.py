"""Shared pieces of the CLI: exit codes, error mapping, output helpers, logging setup."""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from archiver.common.redact import RedactingFormatter, register_secret
from archiver.config import ArchiverConfig
from archiver.retention.registry import PolicyRegistry

from ..errors import ArchiverError, ConfigError, PolicyError

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(enum.IntEnum):
    """Exit codes are a contract with scripts and schedulers."""

    OK = 0  # everything archived / unchanged / verified clean
    FAILURE = 1  # nothing usable done, or verify found problems
    USAGE = 2  # bad command line (click's own code)
    PARTIAL = 3  # some items failed after retries, everything else stored
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn our errors into a one-line message on stderr and exit code 1 (2 for config)."""
    try:
        yield
    except (ConfigError, PolicyError) as exc:
        # Settings to fix before anything can run: a usage/configuration error.
        click.echo(f"Error: {exc}", err=True)
        sys.exit(ExitCode.USAGE)
    except ArchiverError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(ExitCode.FAILURE)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The loggers of the libraries we use: set explicitly, whatever level they were given before.
LIBRARY_LOGGERS = ("httpx", "httpcore", "botocore", "boto3", "urllib3", "s3transfer")
# Environment variables whose values are secrets of this process.
SECRET_ENV_VARS = (
    "GETBILL_CLIENT_SECRET",
    "GETBILL_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record (a test runner may
    swap it), always through a :class:`RedactingFormatter`."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        super().setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802 - stdlib name
        # Every line must pass the redaction: a formatter without it is refused.
        if not isinstance(fmt, RedactingFormatter):
            raise TypeError("the CLI's log handler only takes a RedactingFormatter")
        super().setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str) -> None:
    """Log at ``level`` to stderr, redacted: the root logger, ours and the libraries' loggers.

    The only handler is on the root logger, so every record of every logger passes the same
    redaction (secrets registered from the environment, signatures, tokens, query strings).
    Calling it again replaces the handler of the previous call.
    """
    register_secret(*(os.environ.get(name) for name in SECRET_ENV_VARS))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    root.addHandler(_StderrHandler())
    root.setLevel(level)
    for name in ("archiver", *LIBRARY_LOGGERS):
        logging.getLogger(name).setLevel(level)


def printable(value: object, limit: int = 80) -> str:
    """A value from outside (an id, a path) made safe for a terminal: control characters
    escaped, very long values cut."""
    text = str(value)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def emit_json(obj: Any) -> None:
    """One JSON object per line on stdout."""
    click.echo(json.dumps(obj, sort_keys=True, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON lines.")

bucket_option = click.option(
    "--bucket", envvar="ARCHIVER_BUCKET", help="S3 bucket with Object Lock [env ARCHIVER_BUCKET]."
)

catalog_option = click.option(
    "--catalog",
    envvar="ARCHIVER_CATALOG",
    type=click.Path(dir_okay=False, path_type=Path),
    default="archiver-catalog.db",
    show_default=True,
    help="SQLite catalog file [env ARCHIVER_CATALOG].",
)


def policy_registry() -> PolicyRegistry:
    """Where this command finds policies by name: the configuration's registry
    (``ARCHIVER_POLICY_DIR`` folders, then the shipped policies)."""
    return ArchiverConfig.from_env(os.environ).policy_registry()
