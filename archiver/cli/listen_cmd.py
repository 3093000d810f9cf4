"""``archiver listen``: real-time capture from getbill's signed webhooks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import bucket_option, catalog_option, cli_env, handle_errors, load_config, s3_options
from .archive_cmds import _api_event_logger


def register(group: click.Group) -> None:
    """Add ``listen`` to the ``archiver`` group."""
    group.add_command(listen)


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface (behind a TLS-terminating proxy).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="TCP port."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="Debts archived at once (HTTP is served by one event loop whatever this is).",
)
@bucket_option
@s3_options
@catalog_option
@click.option(
    "--queue",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The delivery queue file (SQLite) [default: beside the catalog, CATALOG.listen.db]. "
    "Keep it on a disk that outlives the process: what it holds is archived after a restart.",
)
@click.option(
    "--policy",
    help="Retention policy for debts archived for the first time (else $ARCHIVER_POLICY, else "
    "'default'); a debt archived before keeps its own.",
)
@click.option(
    "--dossiers/--no-dossiers",
    default=False,
    show_default=True,
    help="Render each new manifest's PDF dossier. Off by default, as for sync: `archiver "
    "dossier DEBT` renders one when it is needed.",
)
def listen(
    host: str,
    port: int,
    workers: int,
    bucket: str | None,
    catalog: Path | None,
    queue: Path | None,
    policy: str | None,
    dossiers: bool,
) -> None:
    """Receive getbill's webhooks and archive each followup's debt as soon as it is reported.

    POST /webhooks/getbill takes getbill's signed deliveries: the signature
    (X-GetBill-Signature, HMAC-SHA256 of the body) is checked against GETBILL_WEBHOOK_SECRET
    (and GETBILL_WEBHOOK_SECRET_PREVIOUS while the secret is rotated), the raw body and its
    headers are stored in the bucket (webhooks/SHA256.json, locked) and only then answered
    200. A worker then fetches the followup again from the API and archives its debt, as
    `archive` does; deliveries of one debt are archived together, duplicates and replays
    store nothing new. GET /healthz answers 200 while the worker runs; GET /metrics serves
    Prometheus metrics.

    Deliveries stored but not yet archived (a crash, a restart, the request budget spent
    for the hour) are archived when the listener runs again. Serve it behind a reverse
    proxy that terminates TLS; the hourly `archiver sync` stays the safety net for
    deliveries getbill never made.

    \b
    Example:
      export GETBILL_WEBHOOK_SECRET=...     # from getbill's webhook settings
      archiver -v listen --host 0.0.0.0 --port 8080 --workers 4
    """
    from archiver.getbill.settings import ApiSettings
    from archiver.listen.settings import ListenSettings

    from ..wiring import listen_queue_path, open_listener

    cfg = load_config(bucket=bucket, policy=policy, catalog=catalog)
    with handle_errors():
        env = cli_env()
        settings = ListenSettings.from_env(env, workers=workers, render_dossiers=dossiers)
        api_settings = ApiSettings.from_env(env)
        queue_file = queue or listen_queue_path(cfg)
        from archiver.listen.server import ListenServer

        with open_listener(
            cfg,
            api_settings,
            settings,
            queue=queue_file,
            on_api_event=_api_event_logger,
            policy_asked=policy is not None,
        ) as listener:
            try:
                server = ListenServer(listener, host, port)
            except OSError as exc:
                raise click.ClickException(
                    f"cannot listen on {host}:{port}: {exc.strerror}"
                ) from None
            click.echo(
                f"archiver listen: POST {server.url}/webhooks/getbill, GET /healthz, GET "
                f"/metrics; {workers} worker(s), queue {queue_file}",
                err=True,
            )
            server.run()
            if listener.worker.error is not None:
                click.echo(f"Error: the archive worker stopped: {listener.worker.error}", err=True)
                sys.exit(1)
