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
from .retention_cmds import default_actor

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
    help="Retention policy name or TOML file for debts archived for the first time (else "
    "$ARCHIVER_POLICY, else 'default'). A debt archived before keeps the policy of its "
    "latest manifest: naming another one here is refused without --change-policy.",
)
@click.option(
    "--change-policy",
    is_flag=True,
    help="Move debts archived under another policy to --policy (needs --reason; recorded in "
    "the next manifest, even when the change shortens or weakens retention).",
)
@click.option("--reason", help="Why the policy changes (with --change-policy).")
@click.option(
    "--actor",
    default=default_actor,
    show_default="$USER",
    help="Who changes the policy (recorded with --change-policy).",
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
    "--dry-run",
    is_flag=True,
    help="Say what would be archived, and what the real run would refuse (bucket, policy, "
    "media hosts off the allowlist); download and write nothing.",
)
@click.option("--no-dossier", is_flag=True, help="Do not render/store the PDF dossier.")
@json_option
def archive(
    debt_ids: tuple[str, ...],
    debts_file: str | None,
    bucket: str | None,
    policy: str | None,
    change_policy: bool,
    reason: str | None,
    actor: str,
    concurrency: int,
    catalog: Path,
    dry_run: bool,
    no_dossier: bool,
    as_json: bool,
) -> None:
    """Archive every followup and media file of the given debts into S3 under Object Lock.

    Writes records, media, the debt record, a hash-chained manifest per debt and its PDF
    dossier; all PUTs are conditional, checksummed and locked. A rerun stores only what is new.
    Each debt keeps the retention policy its latest manifest names; --policy NEW
    --change-policy --reason TEXT moves it, recorded in the manifest. Something this run would
    reuse that a delete marker hides is a problem, with the command that shows it again.

    Exit codes: 0 archived or unchanged, 3 partial (some media failed, something hidden;
    listed), 1 failure, 2 usage or configuration error (a debt's policy unclear or changed
    without --change-policy). A dry run exits as the real run would (3 when it would be
    partial).

    \b
    Example:
      export ARCHIVER_BUCKET=evidence AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333
      export GETBILL_CLIENT_ID=... GETBILL_CLIENT_SECRET=...
      archiver archive xyz789ghi012 abc123def456 --policy us-cfpb-reg-f --json
      archiver archive --debts-file debts.txt --concurrency 8
      archiver archive xyz789ghi012 --policy uk-fca --change-policy \\
        --reason "Debt sold to the UK entity" --dry-run
    """
    from archiver.getbill.settings import ApiSettings

    from ..wiring import open_archiver

    ids = _read_debt_ids(debt_ids, debts_file)
    if not ids:
        raise click.UsageError("give at least one DEBT_ID or --debts-file")
    change_reason = _change_reason(policy, change_policy, reason)
    cfg = _config(bucket=bucket, policy=policy, concurrency=concurrency, catalog=catalog)
    with handle_errors():
        api_settings = ApiSettings.from_env(os.environ)
        show_progress = sys.stderr.isatty() and not as_json
        with (
            progress_display(show_progress) as on_event,
            open_archiver(
                cfg,
                api_settings,
                dry_run=dry_run,
                render_dossiers=not no_dossier,
                on_event=on_event,
                on_api_event=_api_event_logger,
                policy_asked=policy is not None,
                change_reason=change_reason,
                actor=actor.strip() or None,
            ) as session,
        ):
            run = session.archiver.run(ids)
    for debt in run.debts:
        if as_json:
            emit_json(debt.to_json())
        else:
            _print_debt(debt)
    summary = run.summary()
    if as_json:
        emit_json({"summary": summary})
    else:
        click.echo(
            f"{summary['debts']} debt(s): "
            + ", ".join(f"{n} {s}" for s, n in sorted(summary["by_status"].items()))
            + f"; {_media_counts(summary['media_stored'], summary['media_reused'], dry_run)}, "
            f"{summary['problems']} problem(s)"
        )
    sys.exit(_exit_code(run, dry_run))


def _media_counts(stored: int, reused: int, planned: bool) -> str:
    """``4 media stored, 2 reused``; in a dry run ``would store 4 media, reuse 2``."""
    if planned:
        return f"would store {stored} media, reuse {reused}"
    return f"{stored} media stored, {reused} reused"


def _change_reason(policy: str | None, change_policy: bool, reason: str | None) -> str | None:
    """The reason of a policy change asked for on the command line (usage errors otherwise)."""
    if not change_policy:
        if reason is not None:
            raise click.UsageError("--reason goes with --change-policy")
        return None
    if policy is None:
        raise click.UsageError("--change-policy needs --policy NAME (the policy to move to)")
    if reason is None or not reason.strip():
        raise click.UsageError("--change-policy needs --reason TEXT (recorded in the manifest)")
    return reason.strip()


# Failures that are the operator's to settle (a debt's policy): exit 2, as for a bad option.
_CONFIG_ERRORS = {"ConfigError", "PolicyError"}


def _exit_code(run: Any, dry_run: bool) -> int:
    if any((d.error or {}).get("type") in _CONFIG_ERRORS for d in run.debts):
        return ExitCode.USAGE
    status = run.exit_status
    if dry_run and status == "ok":
        # The real run would be partial where a problem blocks (a host off the allowlist...).
        blocked = any(p.get("severity", "error") == "error" for d in run.debts for p in d.problems)
        status = "partial" if blocked else "ok"
    return {"ok": ExitCode.OK, "partial": ExitCode.PARTIAL}.get(status, ExitCode.FAILURE)


def _print_debt(debt: Any) -> None:
    head = f"{printable(debt.debt_id)}: {debt.status}"
    if debt.sequence:
        head += f" (manifest {debt.sequence}, {debt.manifest_key}, sha256 {debt.manifest_sha256})"
    click.echo(head)
    counts = _media_counts(debt.media_stored, debt.media_reused, debt.status == "planned")
    click.echo(f"  {debt.followups} followups, {counts}")
    if debt.policy:
        kept = f" (kept from manifest {debt.policy_kept_from})" if debt.policy_kept_from else ""
        click.echo(f"  policy: {printable(debt.policy)}{kept}")
    change = debt.policy_change
    if change:
        weaker = change.get("weaker") or []
        click.echo(
            f"  policy change: {printable(change['from'].get('name'))} -> "
            f"{printable(change['to']['name'])}, reason: {printable(change['reason'], 200)}"
            + (f"; shortens or weakens: {', '.join(weaker)}" if weaker else "")
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
    --stale-after) are reported too; --repair aborts them. Every problem is reported, typed.
    Exit 0 clean (or clean once repaired), 1 problems.

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
    if as_json:
        emit_json(
            {
                "summary": {
                    "debts": len(results),
                    "with_problems": bad,
                    "problems": sum(len(r.problems) for r in results),
                    "repaired": sum(len(r.repaired) for r in results),
                }
            }
        )
    sys.exit(ExitCode.FAILURE if bad else ExitCode.OK)


@click.command()
@click.argument("debt_id", required=False)
@catalog_option
@json_option
def status(debt_id: str | None, catalog: Path, as_json: bool) -> None:
    """Show what the catalog knows: per debt, the latest manifest, counts, problems, holds.

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
