"""The ``archiver`` command line: a thin adapter over the library.

Each command parses its options, builds library objects, calls one core function and maps
:class:`archiver.errors.ArchiverError` to an exit code. Commands live one module per area.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from ._common import ExitCode

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="archiver")
def main() -> None:
    """Keep provable, WORM-locked evidence of getbill.io collection followups.

    Pulls every followup of a debt from the getbill API, downloads call recordings and letters
    before their signed links expire, stores everything in S3 under Object Lock with a
    hash-chained manifest, and renders a PDF audit dossier.

    \b
    Example (everything local, nothing to configure):
      archiver demo
    """


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

__all__ = ["ExitCode", "main"]
