"""``archiver pack``: the dispute evidence pack of a debt, and ``archiver pack verify``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ._common import (
    ExitCode,
    bucket_option,
    emit_json,
    handle_errors,
    json_option,
    load_config,
    open_cli_store,
    printable,
    s3_options,
)
from .retention_cmds import actor_option


def register(group: click.Group) -> None:
    """Add ``pack`` (with ``pack create`` and ``pack verify``) to ``group``."""
    group.add_command(pack)


class PackGroup(click.Group):
    """``archiver pack DEBT_ID ...`` is ``archiver pack create DEBT_ID ...``: a first argument
    that is not a subcommand (nor --help) goes to ``create``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group(cls=PackGroup)
def pack() -> None:
    """Make or check the dispute evidence pack of a debt.

    A pack is a BagIt 1.0 bag (RFC 8493) of everything the archive holds for one debt: the
    stored dossier, the whole manifest chain, the records, recordings and letters, the debt
    record, the events (holds, releases, purges, exports), the timestamp tokens, a page to
    read it (data/index.html) and how to check it with standard tools (data/VERIFY.txt).
    `archiver pack DEBT_ID -o PATH` is `archiver pack create DEBT_ID -o PATH`.

    \b
    Examples:
      archiver pack aoqawrflg37x -o pack-aoqawrflg37x
      archiver pack aoqawrflg37x -o pack-aoqawrflg37x.zip --zip --reason "Court order 2026-118"
      archiver pack verify pack-aoqawrflg37x
    """


@pack.command()
@click.argument("debt_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="The pack to write: a folder (or, with --zip, a .zip file) that must not exist yet.",
)
@click.option(
    "--sequence",
    type=click.IntRange(min=1),
    help="Manifest the pack is made from (default: the latest); the chain 1..N goes in.",
)
@click.option("--zip", "as_zip", is_flag=True, help="Write one ZIP64 file holding the bag folder.")
@actor_option
@click.option("--reason", help="Why the pack is handed over, to whom (recorded in the event).")
@click.option(
    "--organization",
    help="Who hands the pack over: its Source-Organization [env ARCHIVER_ORGANIZATION].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Objects copied from S3 at once.",
)
@bucket_option
@s3_options
@json_option
def create(
    debt_id: str,
    output: Path,
    sequence: int | None,
    as_zip: bool,
    actor: str,
    reason: str | None,
    organization: str | None,
    concurrency: int,
    bucket: str | None,
    as_json: bool,
) -> None:
    """Write the evidence pack of DEBT_ID to OUTPUT, from S3 alone.

    Every file is the stored object's exact bytes (the version the manifest names),
    re-hashed while copied: a mismatch with the manifest, a missing object or a broken
    manifest chain stops the pack and nothing is left (exit 1). Purged objects appear as
    their deletion records. The pack is checked with bagit-python before it is put in
    place, and handing it over is recorded: an export event (who, when, which manifest, the
    SHA-256 of the pack's tagmanifest-sha256.txt) that later dossiers show in their chain of
    custody. Never calls the getbill API. Exit 2 for a usage or settings error (OUTPUT
    exists, no organization, no such manifest).

    \b
    Examples:
      archiver pack aoqawrflg37x -o pack-aoqawrflg37x
      archiver pack create aoqawrflg37x --sequence 2 -o pack-2 --bucket evidence
      archiver pack aoqawrflg37x -o pack.zip --zip --actor j.doe --reason "Request of FOS"
    """
    from archiver.pack import PackSettings, build_pack

    with handle_errors():
        cfg = load_config(bucket=bucket, organization=organization)
        store = open_cli_store(bucket)
        settings = PackSettings(
            organization=cfg.organization,
            actor=actor or "",
            reason=reason,
            sequence=sequence,
            zip=as_zip,
            concurrency=concurrency,
            tsa_ca_pem=cfg.tsa_ca_pem(),
        )
        result = build_pack(store, debt_id, output, settings)
    if as_json:
        emit_json(result.to_json())
        return
    kind = "ZIP64 file holding a BagIt 1.0 bag" if as_zip else "BagIt 1.0 bag"
    click.echo(
        f"{printable(output)}: {kind}, {result.files} files, {result.bytes:,} bytes, from "
        f"manifest #{result.sequence} {result.manifest_key}"
    )
    dossier = "included" if result.dossier else "NOT STORED (see VERIFY.txt)"
    click.echo(
        f"  {result.manifests} manifest(s), {result.events} event(s), {result.tokens} "
        f"timestamp token(s), dossier {dossier}"
    )
    if result.purged:
        click.echo(f"  {len(result.purged)} purged object(s), shown by their deletion records")
    click.echo(f"  tagmanifest-sha256.txt SHA-256 {result.tagmanifest_sha256}")
    click.echo(f"  handover recorded: {result.event_key}")
    where = f"{output.stem}/data/index.html in the zip" if as_zip else f"{output}/data/index.html"
    click.echo(f"  read it: open {printable(where, 200)} in a browser")
    click.echo(f"  check it: archiver pack verify {printable(output, 200)}")


@pack.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
def verify_cmd(path: Path, as_json: bool) -> None:
    """Check the evidence pack at PATH (its folder or its .zip) offline, from the pack alone.

    Checks the bag with bagit-python (every file present, nothing added, both digests of
    each), its tags against the packs' BagIt profile, the manifest chain inside it, every
    record, medium and debt record against the manifest, the dossier against its receipt,
    and each timestamp token's imprint against its manifest. Every problem is listed, each
    naming the file. Exit 0 when clean, 1 when there are problems, 2 for a usage error.

    \b
    Examples:
      archiver pack verify pack-aoqawrflg37x
      archiver pack verify pack-aoqawrflg37x.zip --json
    """
    from archiver.pack import verify_pack

    with handle_errors():
        result = verify_pack(path)
    if as_json:
        emit_json(result.to_json())
    else:
        _print(result)
    sys.exit(ExitCode.OK if result.ok else ExitCode.FAILURE)


def _print(r: Any) -> None:
    click.echo(
        f"{printable(r.path, 200)}: {'OK' if r.ok else 'PROBLEMS'} — debt {r.debt_id}, "
        f"{r.files} file(s), {r.manifests} manifest(s), {r.tokens} timestamp token(s)"
    )
    for p in r.notices:
        click.echo(f"  note: {p.kind}: {p.message}" + (f" [{p.key}]" if p.key else ""))
    for p in r.problems:
        click.echo(
            f"  {p.kind}: {p.message}"
            + (f" [{p.key}]" if p.key else "")
            + (f" expected {p.expected}, found {p.found}" if p.expected else "")
        )
