"""``archiver archive``, ``verify``, ``status`` and ``reindex``."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..config import ArchiverConfig
from ._common import (
    ExitCode,
    bucket_option,
    catalog_option,
    emit_json,
    handle_errors,
    json_option,
    printable,
)
from .progress import progress_display

log = logging.getLogger("archiver")


def _config(**overrides: Any) -> ArchiverConfig:
    base = ArchiverConfig.from_env(os.environ)
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _read_debt_ids(debt_ids: tuple[str, ...], debts_file: str | None) -> list[str]:
    """Ids from the arguments and the file (one per line, '#' comments, blank lines skipped),
    in order, without duplicates."""
    ids = list(debt_ids)
    if debts_file:
        try:
            if debts_file == "-":
                text = sys.stdin.read()
            else:
                with open(debts_file, encoding="utf-8") as fh:
                    text = fh.read()
        except UnicodeDecodeError as exc:
            raise click.BadParameter(
                f"{debts_file} is not UTF-8 text (byte {exc.start})", param_hint="--debts-file"
            ) from None
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {debts_file}: {exc.strerror}", param_hint="--debts-file"
            ) from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                ids.append(line)
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def _api_event_logger(event: Any) -> None:
    # Rate-limit waits, retries and token renewals are visible on stderr (never the token);
    # page-by-page events are too chatty for a person.
    if getattr(event, "kind", None) == "page":
        return
    from archiver.getbill.settings import format_event

    click.echo(f"[api] {format_event(event)}", err=True)


def register(group: click.Group) -> None:
    """Add archive, verify, status and reindex to ``group``."""
    group.add_command(archive)
    group.add_command(verify)
    group.add_command(status)
    group.add_command(reindex)


@click.command()
@click.argument("debt_ids", nargs=-1)
@click.option("--debts-file", help="File with one debt id per line ('-' for stdin).")
@bucket_option
@click.option(
    "--policy",
    envvar="ARCHIVER_POLICY",
    help="Retention policy name or TOML file [env ARCHIVER_POLICY, default 'default'].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Media downloads/uploads in flight at once.",
)
@catalog_option
@click.option(
    "--dry-run", is_flag=True, help="List what would be archived; download and write nothing."
)
@click.option("--no-dossier", is_flag=True, help="Do not render/store the PDF dossier.")
@json_option
def archive(
    debt_ids: tuple[str, ...],
    debts_file: str | None,
    bucket: str | None,
    policy: str | None,
    concurrency: int,
    catalog: Path,
    dry_run: bool,
    no_dossier: bool,
    as_json: bool,
) -> None:
    """Archive every followup and media file of the given debts into S3 under Object Lock.

    Writes records, media, the debt record, a hash-chained manifest per debt and its PDF
    dossier; all PUTs are conditional, checksummed and locked. A rerun stores only what is new.

    Exit codes: 0 archived or unchanged, 3 partial (some media failed; listed), 1 failure,
    2 usage or configuration error, 130 interrupted (Ctrl-C; the debts done are listed and
    the summary says so).

    \b
    Example:
      export ARCHIVER_BUCKET=evidence AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333
      export GETBILL_CLIENT_ID=... GETBILL_CLIENT_SECRET=...
      archiver archive xyz789ghi012 abc123def456 --policy us-cfpb-reg-f --json
      archiver archive --debts-file debts.txt --concurrency 8
    """
    from archiver.archive.results import DebtResult, RunResult
    from archiver.getbill.settings import ApiSettings

    from ..wiring import open_archiver

    ids = _read_debt_ids(debt_ids, debts_file)
    if not ids:
        raise click.UsageError("give at least one DEBT_ID or --debts-file")
    cfg = _config(bucket=bucket, policy=policy, concurrency=concurrency, catalog=catalog)
    done: list[DebtResult] = []

    def on_result(debt: DebtResult) -> None:
        # Each debt's line as soon as it is done: a long run shows its progress, and an
        # interrupted one keeps what it finished.
        done.append(debt)
        if as_json:
            emit_json(debt.to_json())
        else:
            _print_debt(debt)

    run_id = None
    interrupted = False
    with handle_errors():
        api_settings = ApiSettings.from_env(os.environ)
        show_progress = sys.stderr.isatty() and not as_json
        try:
            with (
                progress_display(show_progress) as on_event,
                open_archiver(
                    cfg,
                    api_settings,
                    dry_run=dry_run,
                    render_dossiers=not no_dossier,
                    on_event=on_event,
                    on_api_event=_api_event_logger,
                ) as session,
            ):
                run_id = session.archiver.run_id
                session.archiver.run(ids, on_result=on_result)
        except KeyboardInterrupt:
            interrupted = True
            click.echo(
                f"\ninterrupted (Ctrl-C) after {len(done)} of {len(ids)} debt(s); "
                "a rerun continues where this one stopped",
                err=True,
            )
    run = RunResult(run_id or "", done)
    summary = run.summary()
    if interrupted:
        summary.update(status="interrupted", interrupted=True, not_done=len(ids) - len(done))
    if as_json:
        emit_json({"summary": summary})
    else:
        click.echo(
            f"{summary['debts']} debt(s): "
            + ", ".join(f"{n} {s}" for s, n in sorted(summary["by_status"].items()))
            + f"; {summary['media_stored']} media stored, {summary['media_reused']} reused, "
            f"{summary['problems']} problem(s)"
            + (
                f"; interrupted, {summary['not_done']} debt(s) not done (a rerun continues)"
                if interrupted
                else ""
            )
        )
    if interrupted:
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(
        {"ok": ExitCode.OK, "partial": ExitCode.PARTIAL}.get(run.exit_status, ExitCode.FAILURE)
    )


def _print_debt(debt: Any) -> None:
    head = f"{printable(debt.debt_id)}: {debt.status}"
    if debt.sequence:
        head += f" (manifest {debt.sequence}, {debt.manifest_key}, sha256 {debt.manifest_sha256})"
    click.echo(head)
    click.echo(
        f"  {debt.followups} followups, {debt.media_stored} media stored, "
        f"{debt.media_reused} reused"
    )
    for p in debt.problems:
        where = " ".join(printable(p[k]) for k in ("followup_id", "kind", "source") if p.get(k))
        click.echo(f"  problem: {p['type']}: {p['message']}" + (f" [{where}]" if where else ""))


@click.command()
@click.argument("debt_ids", nargs=-1)
@click.option("--all", "all_debts", is_flag=True, help="Verify every debt in the bucket.")
@bucket_option
@click.option("--no-dossier", is_flag=True, help="Skip re-rendering stored dossiers.")
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Hours after which an incomplete multipart upload counts as stale.",
)
@click.option("--repair", is_flag=True, help="Abort the stale multipart uploads found.")
@json_option
def verify(
    debt_ids: tuple[str, ...],
    all_debts: bool,
    bucket: str | None,
    no_dossier: bool,
    stale_after: float,
    repair: bool,
    as_json: bool,
) -> None:
    """Prove that what is archived is complete and unaltered.

    Checks the manifest chain (contiguous sequences, each ``previous`` equal to the SHA-256 of
    the stored bytes), that every object exists with its size and SHA-256 (re-hashed by
    streaming) under a lock at least as strong as the manifest says, and that each stored
    dossier equals a re-render. Multipart uploads an interrupted run left behind (older than
    --stale-after) are reported too; --repair aborts them. Every problem is reported, typed;
    the last line (a {"summary": ...} line with --json) counts debts and problems, "0 debts in
    bucket NAME" when there is nothing to verify. Exit 0 clean (or clean once repaired),
    1 problems, 2 configuration error (no such bucket, no Object Lock, credentials).

    \b
    Example:
      archiver verify xyz789ghi012
      archiver verify --all --json
      archiver verify --all --repair
    """
    from datetime import timedelta

    from archiver.audit.uploads import debts_with_stale_uploads, repair_stale_uploads
    from archiver.audit.verify import verify_debt
    from archiver.manifest.reader import debts_in_bucket

    from ..wiring import open_store

    if not debt_ids and not all_debts:
        raise click.UsageError("give DEBT_ID... or --all")
    with handle_errors():
        store = open_store(_config(bucket=bucket).bucket)
        bucket = store.bucket
        store.check_bucket()
        age = timedelta(hours=stale_after)
        ids = list(debt_ids) or sorted(
            set(debts_in_bucket(store)) | debts_with_stale_uploads(store, age)
        )
        rerender = None
        if not no_dossier:
            from ..wiring import rerender_stored

            rerender = rerender_stored
        results = [verify_debt(store, d, rerender=rerender, stale_after=age) for d in ids]
        if repair:
            for r in results:
                repair_stale_uploads(store, r)
    bad = 0
    for r in results:
        bad += not r.ok
        if as_json:
            emit_json(r.to_json())
            continue
        click.echo(
            f"{r.debt_id}: {'OK' if r.ok else 'PROBLEMS'} — {r.manifests} manifest(s), "
            f"{r.objects} object(s), {r.bytes_hashed:,} bytes re-hashed, "
            f"{r.dossiers} dossier(s)"
        )
        for p in r.notices:
            click.echo(f"  note: {p.kind}: {p.message}" + (f" [{p.key}]" if p.key else ""))
        for p in r.repaired:
            click.echo(f"  repaired: aborted the stale upload {p.details['upload_id']} [{p.key}]")
        for p in r.problems:
            click.echo(
                f"  {p.kind}: {p.message}"
                + (f" [{p.key}]" if p.key else "")
                + (f" expected {p.expected}, found {p.found}" if p.expected else "")
            )
    summary = {
        "bucket": bucket,
        "debts": len(results),
        "with_problems": bad,
        "problems": sum(len(r.problems) for r in results),
        "repaired": sum(len(r.repaired) for r in results),
    }
    if as_json:
        emit_json({"summary": summary})
    else:
        click.echo(_verify_summary_line(summary))
    sys.exit(ExitCode.FAILURE if bad else ExitCode.OK)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _verify_summary_line(summary: dict[str, Any]) -> str:
    """The last line of a human verify: how many debts, how many clean, how many problems."""
    head = f"{_plural(summary['debts'], 'debt')} in bucket {printable(summary['bucket'])}"
    if not summary["debts"]:
        return head
    line = (
        f"{head}: {summary['debts'] - summary['with_problems']} OK, "
        f"{summary['with_problems']} with problems ({_plural(summary['problems'], 'problem')})"
    )
    if summary["repaired"]:
        line += f"; {_plural(summary['repaired'], 'stale upload')} aborted"
    return line


@click.command()
@click.argument("debt_id", required=False)
@catalog_option
@json_option
def status(debt_id: str | None, catalog: Path, as_json: bool) -> None:
    """Show what the catalog knows: per debt, the latest manifest, counts, problems, holds.

    With --json: one line per debt, then a {"summary": {"debts": N, "on_hold": N}} line (also
    when the catalog is empty).

    \b
    Example:
      archiver status
      archiver status xyz789ghi012 --json
    """
    from archiver.catalog.db import Catalog

    with handle_errors():
        rows = Catalog.open(_config(catalog=catalog).catalog).status(debt_id)
    if as_json:
        for row in rows:
            emit_json(row)
        # Always a last line, so an empty catalog is an answer and not silence.
        emit_json(
            {"summary": {"debts": len(rows), "on_hold": sum(1 for r in rows if r.get("on_hold"))}}
        )
        return
    if not rows:
        click.echo("nothing archived yet" + (f" for {debt_id}" if debt_id else ""))
        return
    for row in rows:
        click.echo(
            f"{row.get('debt_id')}: manifest {row.get('sequence')} "
            f"({row.get('manifest_key')}), {row.get('followups')} followups, "
            f"{row.get('media')} media, {row.get('problems')} problem(s)"
            + (", ON HOLD" if row.get("on_hold") else "")
        )


@click.command()
@bucket_option
@catalog_option
@json_option
def reindex(bucket: str | None, catalog: Path, as_json: bool) -> None:
    """Rebuild the local catalog from the manifests in S3 (S3 is the source of truth).

    \b
    Example:
      ARCHIVER_BUCKET=evidence archiver reindex --catalog archiver-catalog.db
    """
    from archiver.catalog.db import Catalog
    from archiver.catalog.reindex import reindex as do_reindex

    from ..wiring import open_store

    with handle_errors():
        cfg = _config(bucket=bucket, catalog=catalog)
        store = open_store(cfg.bucket)
        store.check_bucket()
        result = do_reindex(Catalog.open(cfg.catalog), store)
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in data.items() if k != "problems"))
        for p in data.get("problems", []):
            click.echo(f"  problem: {p}")
