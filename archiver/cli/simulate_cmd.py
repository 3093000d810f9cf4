"""``archiver simulate``: run the local getbill API simulator on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import click

# Mirrors of the simulator's defaults (archiver.devkit.simulator.config), kept here so that the
# command line starts without importing the simulator.
DEFAULT_AUDIO_SIZE = (100_000, 1_000_000)
SMALL_AUDIO_SIZE = (10_000, 50_000)
DEFAULT_LARGE_AUDIO_SHARE = 0.12
# Banner lines list at most this many debt ids (a company-scale world has thousands).
BANNER_IDS = 12


class SizeRange(click.ParamType):
    """``LO:HI`` (or ``LO-HI``): a range of byte sizes, 0 < LO <= HI."""

    name = "LO:HI"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        text = str(value).replace("-", ":")
        lo, sep, hi = text.partition(":")
        try:
            low, high = int(lo), int(hi)
        except ValueError:
            self.fail(f"{value!r} is not LO:HI (two byte sizes)", param, ctx)
        if not sep or not 0 < low <= high:
            self.fail(f"{value!r} is not LO:HI with 0 < LO <= HI", param, ctx)
        return (low, high)


def _share(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise click.BadParameter("must be between 0 and 1")
    return value


def _ids(ids: list[str]) -> str:
    if len(ids) <= BANNER_IDS:
        return " ".join(ids)
    return f"{' '.join(ids[:BANNER_IDS])} ... ({len(ids)} in all)"


@click.command("simulate")
@click.option("--port", default=8765, show_default=True, help="TCP port on 127.0.0.1 (0: any).")
@click.option("--seed", default=1, show_default=True, help="Dataset seed (same seed, same data).")
@click.option("--debts", default=8, show_default=True, help="Number of debts.")
@click.option(
    "--followups-per-debt", default=12, show_default=True, help="Followups of ordinary debts."
)
@click.option(
    "--big-debt-followups", default=130, show_default=True, help="Followups of the first debt."
)
@click.option(
    "--other-company-debts",
    default=2,
    show_default=True,
    help="The last N debts belong to company B (403 for the printed client).",
)
@click.option(
    "--media-share",
    type=float,
    callback=_share,
    help="Share of followups carrying a medium (a recording for calls and voicemails, a PDF"
    " for postmails), from the seed. Default: as type and status imply.",
)
@click.option(
    "--audio-size",
    type=SizeRange(),
    help=f"Byte sizes of most recordings [default: {DEFAULT_AUDIO_SIZE[0]}:"
    f"{DEFAULT_AUDIO_SIZE[1]}].",
)
@click.option(
    "--large-audio-share",
    type=float,
    callback=_share,
    help=f"Share of recordings of 3-6 MB [default: {DEFAULT_LARGE_AUDIO_SHARE}].",
)
@click.option(
    "--small-media",
    is_flag=True,
    help=f"Small recordings only: --audio-size {SMALL_AUDIO_SIZE[0]}:{SMALL_AUDIO_SIZE[1]}"
    " --large-audio-share 0.",
)
@click.option(
    "--followups-order",
    type=click.Choice(["debt", "date"]),
    default="debt",
    show_default=True,
    help="Order of GET /followups: debt by debt, or the whole company by date (oldest first,"
    " ties by id). The real API documents none.",
)
@click.option("--url-ttl", default=3600, show_default=True, help="Signed media URL lifetime (s).")
@click.option("--token-ttl", default=3600, show_default=True, help="Access token lifetime (s).")
@click.option("--rate-limit", default=1000, show_default=True, help="Requests per client per hour.")
@click.option("--error-rate", default=0.0, show_default=True, help="Share of API answers 5xx.")
@click.option("--media-error-rate", default=0.0, show_default=True, help="Share of media 500s.")
@click.option("--slow", default=0.0, show_default=True, help="Delay every answer this many s.")
@click.option("--burst-429", default=0, show_default=True, help="The next N API requests get 429.")
@click.option(
    "--truncate-media-first", default=0, show_default=True, help="First K fetches cut short."
)
@click.option("--html-media-first", default=0, show_default=True, help="First K fetches are HTML.")
@click.option("--unstable-total", is_flag=True, help="pagination.total grows between pages.")
@click.option("--duplicate-ids", is_flag=True, help="Each page repeats the previous last item.")
@click.option(
    "--insert-during-listing",
    default=0,
    show_default=True,
    help="Followups to insert at the top of a debt while its listing is paged (3 per listing).",
)
@click.option(
    "--webhook-url",
    help="Post signed followup events here when followups are created or change (e.g. to "
    "`archiver listen`: http://127.0.0.1:8080/webhooks/getbill).",
)
@click.option(
    "--webhook-secret",
    envvar="GETBILL_WEBHOOK_SECRET",
    help="Key of the webhooks' X-GetBill-Signature [env GETBILL_WEBHOOK_SECRET].",
)
@click.option(
    "--webhook-duplicates", default=0, show_default=True, help="Send each webhook N extra times."
)
@click.option(
    "--webhook-bad-signatures",
    type=float,
    default=0.0,
    show_default=True,
    callback=_share,
    help="Share of webhooks signed with a wrong key.",
)
@click.option(
    "--activity",
    type=float,
    default=0.0,
    show_default=True,
    help="Every N seconds, a new call with a recording on a debt, then its status changes "
    "(something for the webhooks to report); 0: none.",
)
def simulate(
    port: int,
    seed: int,
    debts: int,
    followups_per_debt: int,
    big_debt_followups: int,
    other_company_debts: int,
    media_share: float | None,
    audio_size: tuple[int, int] | None,
    large_audio_share: float | None,
    small_media: bool,
    followups_order: str,
    url_ttl: int,
    token_ttl: int,
    rate_limit: int,
    error_rate: float,
    media_error_rate: float,
    slow: float,
    burst_429: int,
    truncate_media_first: int,
    html_media_first: int,
    unstable_total: bool,
    duplicate_ids: bool,
    insert_during_listing: int,
    webhook_url: str | None,
    webhook_secret: str | None,
    webhook_duplicates: int,
    webhook_bad_signatures: float,
    activity: float,
) -> None:
    """Serve a local imitation of the getbill external API until Ctrl-C.

    Tokens, scopes, pagination, rate limits, expiring signed media URLs and real WAV/MP3/PDF
    files, all from a seed, with optional faults. Binds to 127.0.0.1 only.

    GET /followups takes from/to (YYYY-MM-DD). Here they filter on the UTC day of call_date,
    else scheduled_at, both bounds inclusive; a followup with neither is left out once a
    bound is given. The real API does not document this: the archiver must not rely on it.

    \b
    Example:
      archiver simulate --port 8765 --seed 1
      archiver simulate --port 8765 --url-ttl 3 --error-rate 0.1 --slow 0.2
      archiver simulate --port 8765 --debts 2000 --followups-per-debt 5 \\
        --big-debt-followups 10 --other-company-debts 0 --media-share 0.1 --small-media
      archiver simulate --port 8765 --activity 10 --webhook-secret "$GETBILL_WEBHOOK_SECRET" \\
        --webhook-url http://127.0.0.1:8080/webhooks/getbill
    """
    # Imported here: the command line starts without the simulator (and httpx).
    from archiver.devkit.shell import export_lines
    from archiver.devkit.simulator import SimulatorConfig, SimulatorServer

    if small_media and (audio_size is not None or large_audio_share is not None):
        raise click.UsageError(
            "--small-media sets the audio sizes: drop --audio-size and"
            " --large-audio-share, or --small-media"
        )
    if small_media:
        audio_size, large_audio_share = SMALL_AUDIO_SIZE, 0.0
    if webhook_url and not webhook_secret:
        raise click.UsageError("--webhook-url needs --webhook-secret (or GETBILL_WEBHOOK_SECRET)")
    config = SimulatorConfig(
        seed=seed,
        debts=debts,
        other_company_debts=other_company_debts,
        followups_per_debt=followups_per_debt,
        big_debt_followups=big_debt_followups,
        audio_size_range=audio_size or DEFAULT_AUDIO_SIZE,
        large_audio_share=(
            DEFAULT_LARGE_AUDIO_SHARE if large_audio_share is None else large_audio_share
        ),
        media_share=media_share,
        followups_order=followups_order,
        url_ttl_s=url_ttl,
        token_ttl_s=token_ttl,
        rate_limit=rate_limit,
        error_rate=error_rate,
        media_error_rate=media_error_rate,
        delay_s=slow,
        burst_429=burst_429,
        truncate_media_first=truncate_media_first,
        html_media_first=html_media_first,
        unstable_total=unstable_total,
        duplicate_across_pages=duplicate_ids,
        insert_during_listing=insert_during_listing,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_duplicates=webhook_duplicates,
        webhook_bad_signature_rate=webhook_bad_signatures,
    )
    try:
        server = SimulatorServer(config, host="127.0.0.1", port=port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sim = server.simulator
    # These are the simulator's own fictitious credentials, printed on purpose.
    client = config.clients[0]
    static = next(iter(config.static_tokens), None)
    click.echo(f"getbill simulator listening on {server.base_url}")
    click.echo(f"  token URL      {server.base_url}/token")
    click.echo(f"  API base       {server.base_url}/external-api/v1")
    click.echo(f"  client         {client.client_id} / {client.client_secret}")
    for other in config.clients[1:]:
        click.echo(f"  other client   {other.client_id} / {other.client_secret} ({other.company})")
    if static:
        click.echo(f"  static token   {static}")
    ids = sim.debt_ids("A")
    click.echo(f"  debts (A)      {_ids(ids)}")
    click.echo(f"  debts (B, 403) {_ids(sim.debt_ids('B'))}")
    click.echo("In the shell that runs archiver (with an S3 such as `archiver s3-server`):")
    for line in export_lines(server.archiver_env()):
        click.echo(f"  {line}")
    if ids:
        click.echo(f"  archiver archive {' '.join(ids[:2])}")
        click.echo("Or talk to the API directly:")
        click.echo(
            f"  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={client.client_id}"
            f" -d client_secret={client.client_secret} {server.base_url}/token"
            " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
        )
        click.echo(
            f'  curl -H "Authorization: Bearer $TOKEN" '
            f"'{server.base_url}/external-api/v1/followups/debt/{ids[0]}?limit=100'"
        )
    if webhook_url:
        click.echo(f"  webhooks to    {webhook_url}")
    if activity > 0:
        from archiver.devkit.simulator.webhooks import start_activity

        start_activity(sim, activity)
        click.echo(f"  activity       a new call every {activity:g} s")
    click.echo("Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped.")
    finally:
        server.stop()


def register(group: click.Group) -> None:
    """Add ``simulate`` to the ``archiver`` group."""
    group.add_command(simulate)
