"""Storage commands: ``archiver init-bucket``."""

from __future__ import annotations

from typing import cast

import click

from archiver.errors import StorageError
from archiver.store.types import MODES, Mode

from ._common import emit_json, handle_errors, json_option, load_config, s3_options


@click.command("init-bucket")
@click.argument("name", required=False, envvar="ARCHIVER_BUCKET")
@s3_options
@click.option(
    "--mode",
    type=click.Choice(MODES, case_sensitive=False),
    help="Default retention mode for new objects (needs --days).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    help="Default retention in days for new objects (needs --mode).",
)
@click.option(
    "--abort-uploads-after",
    "abort_after",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="Days after which the server aborts a multipart upload never completed.",
)
@json_option
def init_bucket(
    name: str | None, mode: str | None, days: int | None, abort_after: int, as_json: bool
) -> None:
    """Create the S3 bucket NAME with Object Lock (WORM) enabled (default: $ARCHIVER_BUCKET,
    else the config file's bucket).

    Object Lock can only be switched on when a bucket is created, so an existing bucket
    without it is refused (exit 1): archives need a new bucket. Running it again on a bucket
    that has Object Lock is fine (the default retention changes only if given).

    A lifecycle rule has the server abort multipart uploads left incomplete (a killed run)
    after --abort-uploads-after days; the bucket's other lifecycle rules are kept. A server
    without lifecycle support gets a warning, not an error: `archiver verify --repair`
    aborts such uploads then.

    The S3 endpoint and credentials come from --endpoint-url, --profile and --region, else
    the usual AWS environment: AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_PROFILE or
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION.

    \b
    Example (with `archiver s3-server` running in another shell, its variables exported):
      archiver init-bucket evidence-2026 --mode COMPLIANCE --days 2190
      ARCHIVER_BUCKET=evidence archiver init-bucket --endpoint-url http://127.0.0.1:8333
    """
    if (mode is None) != (days is None):
        raise click.UsageError("--mode and --days go together (or leave both out)")
    lock_mode = cast(Mode, mode.upper()) if mode else None
    # Imported here: the command line starts without boto3.
    from archiver.wiring import open_configured_store

    cfg = load_config(bucket=name)
    if not cfg.bucket:
        raise click.UsageError("give the bucket NAME (or set ARCHIVER_BUCKET)")
    name = cfg.bucket
    with handle_errors():
        store = open_configured_store(cfg)
        store.create_bucket(mode=lock_mode, days=days)
        store.check_bucket()
        default = store.default_retention()
        warnings = []
        instead = "run `archiver verify --all --repair` now and then instead"
        try:
            if not store.put_abort_multipart_lifecycle(abort_after):
                warnings.append(
                    "a lifecycle rule to abort incomplete multipart uploads is not supported "
                    f"by this server; {instead}"
                )
        except StorageError as exc:
            # The bucket holds evidence without the rule: a refusal is worth a warning only.
            warnings.append(f"the lifecycle rule was not set ({exc}); {instead}")
    if as_json:
        emit_json(
            {
                "bucket": name,
                "object_lock": True,
                "default_mode": default[0] if default else None,
                "default_days": default[1] if default else None,
                "abort_incomplete_uploads_days": None if warnings else abort_after,
                "warnings": warnings,
            }
        )
        return
    retention = f"default retention {default[0]} {default[1]} days" if default else "no default"
    click.echo(f"Bucket {name} is ready: Object Lock enabled, {retention}.")
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not warnings:
        click.echo(f"Incomplete multipart uploads are aborted after {abort_after} days.")


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(init_bucket)
