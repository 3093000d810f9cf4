"""Shared pieces of the CLI: exit codes, error mapping, output helpers, logging setup, the
options every command of a kind shares, and the configuration they resolve to."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from archiver.common.redact import RedactingFormatter, register_secret
from archiver.config import (
    DEFAULT_PROFILE,
    ArchiverConfig,
    config_file_path,
    layered_env,
    read_config_file,
)

if TYPE_CHECKING:
    from archiver.catalog.db import Catalog
    from archiver.retention.registry import PolicyRegistry
    from archiver.store.objects import ObjectStore

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
    "GETBILL_WEBHOOK_SECRET",
    "GETBILL_WEBHOOK_SECRET_PREVIOUS",
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
    default=None,
    help="SQLite catalog file [env ARCHIVER_CATALOG; default: the bucket's own, "
    "$XDG_DATA_HOME/getbill-archiver/BUCKET.db].",
)


# --------------------------------------------------------------------------- settings of a run
# Options that only steer how the command reaches things (profile, endpoint, region) or how it
# talks (quiet, progress) are not passed to the command function: they are kept in the click
# context, where load_config() and the progress display find them.

_SETTINGS = "archiver.cli.settings"


def cli_settings() -> dict[str, Any]:
    """The run settings given on the command line so far (empty outside a command)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    settings: dict[str, Any] = ctx.meta.setdefault(_SETTINGS, {})
    return settings


def remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that keeps a given value in :func:`cli_settings` under ``name``."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            ctx.meta.setdefault(_SETTINGS, {})[name] = value
        return value

    return callback


profile_option = click.option(
    "--profile",
    expose_value=False,
    callback=remember("profile"),
    help="AWS named profile for S3 credentials; also picks the config file section of that "
    "name [env AWS_PROFILE].",
)

_s3_options = (
    profile_option,
    click.option(
        "--endpoint-url",
        expose_value=False,
        callback=remember("endpoint_url"),
        help="S3 endpoint, for a server that is not AWS [env AWS_ENDPOINT_URL_S3, "
        "AWS_ENDPOINT_URL].",
    ),
    click.option(
        "--region",
        expose_value=False,
        callback=remember("region"),
        help="S3 region [env AWS_REGION, AWS_DEFAULT_REGION].",
    ),
)


def s3_options(fn: F) -> F:
    """--profile, --endpoint-url and --region (the AWS CLI's names) on an S3 command."""
    for option in reversed(_s3_options):
        fn = option(fn)
    return fn


class ConfigProblem(click.ClickException):
    """Settings that cannot be read: reported like other usage errors (exit 2)."""

    exit_code = ExitCode.USAGE


def cli_env() -> dict[str, str]:
    """The environment over the config file's section of the profile in effect
    (``--profile``, else ``AWS_PROFILE``, else ``default``)."""
    settings = cli_settings()
    env = os.environ
    profile = settings.get("profile") or env.get("AWS_PROFILE") or DEFAULT_PROFILE
    given = settings.get("config_file")
    path = Path(given) if given else config_file_path(env)
    try:
        values = read_config_file(path, profile, required=bool(given or env.get("ARCHIVER_CONFIG")))
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    return layered_env(env, values)


def load_config(**flags: Any) -> ArchiverConfig:
    """The configuration of this command: each flag given (not None), else the environment,
    else the config file, else the default; --profile, --endpoint-url and --region included."""
    try:
        base = ArchiverConfig.from_env(cli_env())
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    settings = cli_settings()
    given = {k: v for k, v in flags.items() if v is not None}
    for name in ("profile", "endpoint_url", "region"):
        if settings.get(name):
            given.setdefault(name, settings[name])
    return dataclasses.replace(base, **given)


def open_cli_store(bucket: str | None) -> ObjectStore:
    """The object store of this command (bucket flag, else the configuration)."""
    from archiver.wiring import open_configured_store

    return open_configured_store(load_config(bucket=bucket))


def open_cli_catalog(
    catalog: Path | None,
    bucket: str | None,
    *,
    write: bool,
    switch_bucket: bool = False,
    replace_corrupt: bool = False,
) -> Catalog:
    """The catalog of this command: --catalog, else the bucket's own (created only by
    commands that ``write``); see :func:`archiver.wiring.open_catalog`."""
    from archiver.wiring import open_catalog

    cfg = load_config(bucket=bucket, catalog=catalog)
    return open_catalog(
        cfg, write=write, switch_bucket=switch_bucket, replace_corrupt=replace_corrupt
    )


def policy_registry() -> PolicyRegistry:
    """Where this command finds policies by name: the configuration's registry
    (``ARCHIVER_POLICY_DIR`` folders, then the shipped policies)."""
    return load_config().policy_registry()


def progress_wanted(default: bool) -> bool:
    """Whether to draw progress: ``default`` (a terminal) unless -q or --no-progress."""
    settings = cli_settings()
    return default and not settings.get("quiet") and not settings.get("no_progress")


# --------------------------------------------------------------------------- naming debts


def read_debt_ids(debt_ids: tuple[str, ...], debts_file: str | None) -> list[str]:
    """Ids from the arguments and the file (one per line, '#' comments, blank lines skipped),
    in order, without duplicates."""
    ids = list(debt_ids)
    if debts_file:
        try:
            if debts_file == "-":
                text = sys.stdin.read()
            else:
                with open(debts_file, encoding="utf-8") as fh:
                    text = fh.read()
        except UnicodeDecodeError as exc:
            raise click.BadParameter(
                f"{debts_file} is not UTF-8 text (byte {exc.start})", param_hint="--debts-file"
            ) from None
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {debts_file}: {exc.strerror}", param_hint="--debts-file"
            ) from None
        for line in text.splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                ids.append(entry)
    return list(dict.fromkeys(ids))


def debt_ids_arguments(fn: F) -> F:
    """DEBT_ID... and --debts-file, the one way every command names debts; the command gets
    ``debt_ids``: the arguments then the file's ids, in order, without duplicates."""

    @functools.wraps(fn)
    def wrapper(*args: Any, debt_ids: tuple[str, ...], debts_file: str | None, **kw: Any) -> Any:
        return fn(*args, debt_ids=tuple(read_debt_ids(debt_ids, debts_file)), **kw)

    decorated: Any = click.option(
        "--debts-file",
        metavar="FILE",
        help="File with one debt id per line ('#' comments; '-' for stdin), with or "
        "instead of DEBT_ID arguments.",
    )(wrapper)
    decorated = click.argument("debt_ids", nargs=-1, metavar="[DEBT_ID]...")(decorated)
    return decorated
