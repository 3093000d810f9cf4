"""The ``archiver`` command line: a thin adapter over the library.

Each command parses its options, builds library objects, calls one core function and maps
:class:`archiver.errors.ArchiverError` to an exit code. Commands live one module per area.
"""

from __future__ import annotations

import gc
import importlib
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .. import __version__
from ._common import LOG_LEVELS, ExitCode, configure_logging, remember

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ArchiverGroup(click.Group):
    """The command group; Ctrl-C in any command exits 130 (128 + SIGINT, as shells report
    it) with one line on stderr instead of click's "Aborted!" and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted (Ctrl-C)", err=True)
            raise click.exceptions.Exit(ExitCode.INTERRUPTED) from None


@click.group(cls=ArchiverGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="archiver")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="WARNING",
    show_default=True,
    envvar="ARCHIVER_LOG_LEVEL",
    help="Log level of every logger, the HTTP and S3 libraries' included; log lines go to "
    "stderr with secrets, signatures and query strings redacted [env ARCHIVER_LOG_LEVEL].",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log lines: -v for INFO, -vv for DEBUG (an explicit --log-level wins).",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    callback=remember("quiet"),
    help="No progress display and only errors logged; results and exit codes are the same.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    callback=remember("no_progress"),
    help="No progress display, even on a terminal.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=remember("config_file"),
    help="Config file with a [section] per profile [env ARCHIVER_CONFIG; default: "
    "$XDG_CONFIG_HOME/getbill-archiver/config.toml].",
)
@click.pass_context
def main(
    ctx: click.Context,
    log_level: str,
    verbose: int,
    quiet: bool,
    no_progress: bool,
    config_file: Path | None,
) -> None:
    """Keep provable, WORM-locked evidence of getbill.io collection followups.

    Pulls every followup of a debt from the getbill API, downloads call recordings and letters
    before their signed links expire, stores everything in S3 under Object Lock with a
    hash-chained manifest, and renders a PDF audit dossier.

    Settings come from a flag, else the environment, else the config file's section of the
    profile in effect, else the default.

    \b
    Example (everything local, nothing to configure):
      archiver demo
    """
    if verbose and quiet:
        raise click.UsageError("-q/--quiet and -v/--verbose do not go together")
    level = log_level.upper()
    if ctx.get_parameter_source("log_level") is not ParameterSource.COMMANDLINE:
        if quiet:
            level = "ERROR"
        elif verbose:
            level = "DEBUG" if verbose > 1 else "INFO"
    configure_logging(level)


# One module per area; each exposes ``register(group)``.
_COMMAND_MODULES = (
    "archive_cmds",
    "demo_cmd",
    "dossier_cmd",
    "listen_cmd",
    "pack_cmd",
    "policy_cmds",
    "retention_cmds",
    "simulate_cmd",
    "storage_cmds",
    "sync_cmd",
    "version_cmd",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(main)


_register()

__all__ = ["GC_THRESHOLDS", "ArchiverGroup", "ExitCode", "main", "run"]


# The collector's first threshold: with the default (a collection every 700 net new objects),
# an archive of 2,000 followups spent 0.84-0.88 s of 18 s in 931 collections, 0.28-0.35 s in 161
# with these (measured with gc.callbacks). A collection then looks at more young objects at a
# time, far fewer times; cyclic garbage waits a little longer, which suits the long-running
# `archiver listen` too (its peak RSS goal is measured with these thresholds).
GC_THRESHOLDS = (10_000, 10, 10)


def run() -> None:
    """The ``archiver`` program (its console script and ``python -m archiver``): :func:`main`,
    with the collector's thresholds above.

    As the command ends, everything still alive is frozen (:func:`gc.freeze`) before the
    interpreter shuts down: its final collections would otherwise walk every object once more
    only to free memory the process returns anyway, a quarter of a second after an archive
    run's last byte was stored. Exit handlers still run and modules are still torn down;
    objects left in reference cycles are not finalized then (every file, temporary file and
    SQLite connection of the program is closed by its own ``with``, callback or exit handler
    before that)."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        main()
    finally:
        gc.freeze()
