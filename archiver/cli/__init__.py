"""The ``archiver`` command line: a thin adapter over the library.

Each command parses its options, builds library objects, calls one core function and maps
:class:`archiver.errors.ArchiverError` to an exit code. Commands live one module per area.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from .. import __version__
from ._common import LOG_LEVELS, ExitCode, configure_logging

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
def main(log_level: str) -> None:
    """Keep provable, WORM-locked evidence of getbill.io collection followups.

    Pulls every followup of a debt from the getbill API, downloads call recordings and letters
    before their signed links expire, stores everything in S3 under Object Lock with a
    hash-chained manifest, and renders a PDF audit dossier.

    \b
    Example (everything local, nothing to configure):
      archiver demo
    """
    configure_logging(log_level.upper())


# One module per area; each exposes ``register(group)``.
_COMMAND_MODULES = (
    "archive_cmds",
    "demo_cmd",
    "dossier_cmd",
    "policy_cmds",
    "retention_cmds",
    "simulate_cmd",
    "storage_cmds",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(main)


_register()

__all__ = ["ArchiverGroup", "ExitCode", "main"]
