"""The ``archiver`` command line: a thin adapter over the library.

Each command parses its options, builds library objects, calls one core function and maps
:class:`archiver.errors.ArchiverError` to an exit code. Commands live one module per area.
"""

from __future__ import annotations

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


def _register() -> None:
    # Imported here so that each area keeps its own module; importing registers the commands.
    from . import (
        archive_cmds,
        demo_cmd,
        dossier_cmd,
        policy_cmds,
        retention_cmds,
        simulate_cmd,
        storage_cmds,
    )

    for module in (
        archive_cmds,
        demo_cmd,
        dossier_cmd,
        policy_cmds,
        retention_cmds,
        simulate_cmd,
        storage_cmds,
    ):
        module.register(main)


_register()

__all__ = ["ExitCode", "main"]
