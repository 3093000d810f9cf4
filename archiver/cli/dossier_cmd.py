"""``archiver dossier``: render the PDF audit dossier of a debt from its archive."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import click

from ..errors import IntegrityError, StorageError
from ._common import (
    ExitCode,
    bucket_option,
    emit_json,
    handle_errors,
    json_option,
    open_cli_store,
    printable,
    s3_options,
)

if TYPE_CHECKING:
    from archiver.store.objects import ObjectStore

T = TypeVar("T")


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
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="PDF file to write (replaced atomically); '-' writes the PDF to standard output "
    "(the summary then goes to stderr).",
)
@click.option(
    "--as-archived",
    is_flag=True,
    help="Leave out the events recorded after the manifest: the dossier archive stored "
    "with it, byte for byte.",
)
@bucket_option
@s3_options
@json_option
def dossier(
    debt_id: str,
    sequence: int | None,
    output: Path,
    as_archived: bool,
    bucket: str | None,
    as_json: bool,
) -> None:
    """Render the PDF/A audit dossier of DEBT_ID from what is archived.

    Reads the manifest (the latest, or --sequence N) and every record it names from S3,
    checking each SHA-256, and renders the dossier: cover, summary, timeline, every followup
    in detail, media inventory, chain of custody and how to verify. Never calls the getbill
    API. Legal holds, releases and purges recorded after the manifest are shown in a part of
    their own ("Events recorded after this manifest"), and the hold state shown is the one
    after them; with --as-archived they are left out and the bytes are those of the dossier
    stored with the manifest. Exit 1 if a stored object does not match its manifest (nothing
    is written then), 2 if --sequence names a manifest that does not exist (the ones that do
    are listed). An archived object whose key a delete marker hides is named in a warning
    (the dossier still shows the stored version).

    \b
    Example:
      archiver dossier aoqawrflg37x -o dossier.pdf
      archiver dossier aoqawrflg37x --sequence 2 -o dossier-2.pdf --bucket evidence
      archiver dossier aoqawrflg37x -o - | lp
    """
    from archiver.manifest.document import all_objects
    from archiver.manifest.hidden import hidden_problems

    from ..dossier import render_dossier
    from ..wiring import stored_dossier_input

    to_stdout = str(output) == "-"
    with handle_errors():
        store = open_cli_store(bucket)
        _check_sequence(store, debt_id, sequence)
        try:
            inp = stored_dossier_input(store, debt_id, sequence, later_events=not as_archived)
        except IntegrityError as exc:
            click.echo(f"Error: {exc}", err=True)
            for p in exc.problems:
                click.echo(f"  {p.get('type')}: {p.get('message')} [{p.get('key')}]", err=True)
            sys.exit(ExitCode.FAILURE)
        # The dossier shows the archived versions; say so when their keys look deleted.
        warnings = hidden_problems(store, debt_id, all_objects(inp.manifest))
        if to_stdout:
            # Rendered whole first: a failure never leaves half a PDF in a pipe.
            buffer = io.BytesIO()
            info = render_dossier(inp, buffer)
            sys.stdout.flush()
            sys.stdout.buffer.write(buffer.getvalue())
            sys.stdout.buffer.flush()
        else:
            info = _write_atomically(output, lambda f: render_dossier(inp, f))
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
        "events_after_manifest": len(inp.later_events),
        "warnings": [w.to_dict() for w in warnings],
    }
    for w in warnings:
        click.echo(f"warning: {w.kind}: {w.message} [{w.key}]", err=True)
    if as_json:
        if to_stdout:
            click.echo(json.dumps(result, sort_keys=True, default=str), err=True)
        else:
            emit_json(result)
    else:
        click.echo(
            f"{'standard output' if to_stdout else output}: {info.pages} pages, "
            f"{info.size:,} bytes, SHA-256 {info.sha256}\n"
            f"  from manifest #{result['sequence']} {inp.manifest_key} "
            f"(SHA-256 {inp.manifest_sha256[:12]}…), renderer {info.renderer_version}",
            err=to_stdout,
        )
        if inp.later_events:
            n = len(inp.later_events)
            click.echo(
                f"  {n} event{'s' if n != 1 else ''} recorded after this manifest shown apart; "
                f"`archiver archive {debt_id}` records them in a new manifest and dossier",
                err=to_stdout,
            )


def _check_sequence(store: ObjectStore, debt_id: str, sequence: int | None) -> None:
    """Fail clearly when the debt has no manifest, or not the one asked for: say which exist."""
    from archiver.manifest.reader import manifest_keys

    existing = manifest_keys(store, debt_id)
    if not existing:
        raise StorageError(
            f"debt {printable(debt_id)} has no manifest in bucket {store.bucket!r}: "
            "archive it first (`archiver archive DEBT_ID`), or check --bucket / ARCHIVER_BUCKET",
            debt_id=debt_id,
            bucket=store.bucket,
        )
    if sequence is None or any(seq == sequence for seq, _ in existing):
        return
    raise click.BadParameter(
        f"debt {printable(debt_id)} has no manifest {sequence}; it has "
        f"{_sequences([seq for seq, _ in existing])} (latest: {existing[-1][1]})",
        param_hint="--sequence",
    )


def _sequences(found: list[int]) -> str:
    """``manifest 1``, ``manifests 1 to 12`` (contiguous) or ``manifests 1, 2, 5``."""
    if len(found) == 1:
        return f"manifest {found[0]}"
    if found == list(range(found[0], found[-1] + 1)):
        return f"manifests {found[0]} to {found[-1]}"
    shown = ", ".join(str(n) for n in found[:10])
    return f"manifests {shown}" + (f" and {len(found) - 10} more" if len(found) > 10 else "")


def _write_atomically(output: Path, write: Callable[[BinaryIO], T]) -> T:
    """Write beside the target and rename: never a half-written PDF under its name."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {output}: {exc.strerror}", param_hint="--output"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            result = write(f)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result
