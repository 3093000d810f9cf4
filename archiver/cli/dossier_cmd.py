"""``archiver dossier``: render the PDF audit dossier of a debt from its archive."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from ..errors import IntegrityError
from ._common import (
    ExitCode,
    bucket_option,
    emit_json,
    handle_errors,
    json_option,
)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(dossier)


@click.command()
@click.argument("debt_id")
@click.option(
    "--sequence",
    type=click.IntRange(min=1),
    help="Manifest sequence to render (default: the latest).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="PDF file to write (replaced atomically).",
)
@bucket_option
@json_option
def dossier(
    debt_id: str, sequence: int | None, output: Path, bucket: str | None, as_json: bool
) -> None:
    """Render the PDF/A audit dossier of DEBT_ID from what is archived.

    Reads the manifest (the latest, or --sequence N) and every record it names from S3,
    checking each SHA-256, and renders the dossier: cover, summary, timeline, every followup
    in detail, media inventory, chain of custody and how to verify. Never calls the getbill
    API: rendering the same manifest again gives the same bytes. Exit 1 if a stored object
    does not match its manifest (nothing is written then). An archived object whose key a
    delete marker hides is named in a warning (the dossier still shows the stored version).

    \b
    Example:
      archiver dossier xyz789ghi012 -o dossier.pdf
      archiver dossier xyz789ghi012 --sequence 2 -o dossier-2.pdf --bucket evidence
    """
    from archiver.manifest.document import all_objects
    from archiver.manifest.hidden import hidden_problems

    from ..dossier import load_dossier_input, render_dossier
    from ..wiring import open_store

    with handle_errors():
        store = open_store(bucket)
        try:
            inp = load_dossier_input(store, debt_id, sequence)
        except IntegrityError as exc:
            click.echo(f"Error: {exc}", err=True)
            for p in exc.problems:
                click.echo(f"  {p.get('type')}: {p.get('message')} [{p.get('key')}]", err=True)
            sys.exit(ExitCode.FAILURE)
        # The dossier shows the archived versions; say so when their keys look deleted.
        warnings = hidden_problems(store, debt_id, all_objects(inp.manifest))
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target and rename: never a half-written PDF under its name.
            fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
        except OSError as exc:
            raise click.BadParameter(
                f"cannot write {output}: {exc.strerror}", param_hint="--output"
            ) from None
        try:
            with os.fdopen(fd, "wb") as f:
                info = render_dossier(inp, f)
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    result = {
        "debt_id": debt_id,
        "sequence": inp.manifest.get("sequence"),
        "manifest_key": inp.manifest_key,
        "manifest_sha256": inp.manifest_sha256,
        "file": str(output),
        "pages": info.pages,
        "sha256": info.sha256,
        "size": info.size,
        "renderer_version": info.renderer_version,
        "warnings": [w.to_dict() for w in warnings],
    }
    for w in warnings:
        click.echo(f"warning: {w.kind}: {w.message} [{w.key}]", err=True)
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"{output}: {info.pages} pages, {info.size:,} bytes, SHA-256 {info.sha256}\n"
            f"  from manifest #{result['sequence']} {inp.manifest_key} "
            f"(SHA-256 {inp.manifest_sha256[:12]}…), renderer {info.renderer_version}"
        )
