"""``archiver demo``: the whole job locally, nothing to configure."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import ExitCode, handle_errors


def register(group: click.Group) -> None:
    """Add ``demo`` to ``group``."""
    group.add_command(demo)


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the dossiers and the demo catalog are written.",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Seed of the simulated getbill data."
)
def demo(workdir: Path, seed: int) -> None:
    """Run the whole job locally: simulator + SeaweedFS + archive + verify + dossier.

    Starts a getbill API simulator and a SeaweedFS S3 server on 127.0.0.1, creates an
    Object-Lock bucket, archives the sample debts (recordings, letters, records, manifests,
    dossiers), records new activity and archives again, verifies everything from S3, writes
    the PDF dossiers to WORKDIR and stops the servers. Exit 0 when all is archived and clean.

    \b
    Example:
      archiver demo
      archiver demo --workdir /tmp/archiver-demo --seed 7
    """
    from archiver.devkit.demo import describe, run_demo

    from .progress import progress_display

    def step(text: str) -> None:
        click.secho(f"==> {text}", bold=True, err=True)

    with handle_errors(), progress_display(sys.stderr.isatty()) as on_event:
        report = run_demo(workdir, seed=seed, on_step=step, on_event=on_event)
    for line in describe(report):
        click.echo(line)
    if report.ok:
        click.secho("demo: everything archived and verified", fg="green", bold=True)
    else:
        click.secho("demo: finished with problems (see above)", fg="red", bold=True)
    sys.exit(ExitCode.OK if report.ok else ExitCode.FAILURE)
