"""``archiver archive``, ``verify``, ``status`` and ``reindex``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from ._common import (
    ExitCode,
    bucket_option,
    catalog_option,
    cli_env,
    debt_ids_arguments,
    emit_json,
    handle_errors,
    json_option,
    load_config,
    open_cli_catalog,
    open_cli_store,
    printable,
    profile_option,
    s3_options,
)
from .lazy_progress import run_progress
from .retention_cmds import default_actor

log = logging.getLogger("archiver")


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
@debt_ids_arguments
@bucket_option
@s3_options
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
    without --change-policy), 130 interrupted (Ctrl-C; the debts done are listed and the
    summary says so). A dry run exits as the real run would (3 when it would be partial).

    \b
    Example (with `archiver s3-server --bucket evidence` and `archiver simulate` running in
    other shells, and the variables they print exported here):
      archiver archive aoqawrflg37x skviuvd0ydec --policy us-cfpb-reg-f --json
      archiver archive --debts-file debts.txt --concurrency 8
      archiver archive xyz789ghi012 --policy uk-fca --change-policy \\
        --reason "Debt sold to the UK entity" --dry-run
    """
    from archiver.archive.results import DebtResult, RunResult
    from archiver.getbill.settings import ApiSettings

    from ..wiring import open_archiver

    ids = list(debt_ids)
    if not ids:
        raise click.UsageError("give at least one DEBT_ID or --debts-file")
    change_reason = _change_reason(policy, change_policy, reason)
    cfg = load_config(bucket=bucket, policy=policy, concurrency=concurrency, catalog=catalog)
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
        api_settings = ApiSettings.from_env(cli_env())
        show_progress = sys.stderr.isatty() and not as_json
        try:
            with (
                run_progress(show_progress) as on_event,
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
            + f"; {_media_counts(summary['media_stored'], summary['media_reused'], dry_run)}, "
            f"{summary['problems']} problem(s)"
            + (
                f"; interrupted, {summary['not_done']} debt(s) not done (a rerun continues)"
                if interrupted
                else ""
            )
        )
    if interrupted:
        sys.exit(ExitCode.INTERRUPTED)
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
@debt_ids_arguments
@click.option("--all", "all_debts", is_flag=True, help="Verify every debt in the bucket.")
@bucket_option
@s3_options
@click.option("--no-dossier", is_flag=True, help="Do not check the stored dossiers.")
@click.option(
    "--rerender",
    is_flag=True,
    help="Also render each dossier again and compare (a check of the renderer).",
)
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
    rerender: bool,
    stale_after: float,
    repair: bool,
    as_json: bool,
) -> None:
    """Prove that what is archived is complete and unaltered.

    Checks the manifest chain (contiguous sequences, each "previous" equal to the SHA-256 of
    the stored bytes), that every object exists with its size and SHA-256 (re-hashed by
    streaming) under a lock at least as strong as the manifest says, and that each stored
    dossier has exactly the bytes its receipt and the next manifest name, and that each
    manifest's timestamp token stamps its bytes, signed by a TSA of ARCHIVER_TSA_CA (a missing
    token is a note); with --all, the
    sync run records too (each lane's chain, the manifest SHA-256s each names). --rerender also
    renders each dossier again: a difference is a notice when the stored bytes are proven
    (a newer renderer or library), a problem when they are not. Multipart uploads an
    interrupted run left behind (older than --stale-after) are reported too; --repair aborts
    them. Every problem is reported, typed;
    the last line (a {"summary": ...} line with --json) counts debts and problems, "0 debts in
    bucket NAME" when there is nothing to verify. Exit 0 clean (or clean once repaired),
    1 problems, 2 configuration error (no such bucket, no Object Lock, credentials).

    \b
    Example:
      archiver verify aoqawrflg37x
      archiver verify aoqawrflg37x --rerender
      archiver verify --all --json
      archiver verify --all --repair
    """
    from datetime import timedelta

    from archiver.audit.runs import verify_runs
    from archiver.audit.uploads import debts_with_stale_uploads, repair_stale_uploads
    from archiver.audit.verify import verify_debt
    from archiver.manifest.reader import debts_in_bucket

    if not debt_ids and not all_debts:
        raise click.UsageError("give DEBT_ID... or --all")
    with handle_errors():
        store = open_cli_store(bucket)
        bucket = store.bucket
        store.check_bucket()
        age = timedelta(hours=stale_after)
        ids = list(debt_ids) or sorted(
            set(debts_in_bucket(store)) | debts_with_stale_uploads(store, age)
        )
        again = None
        if rerender and not no_dossier:
            from ..wiring import rerender_stored

            again = rerender_stored
        from ..wiring import timestamp_trust

        trust = timestamp_trust(load_config(bucket=bucket))
        results = [
            verify_debt(
                store,
                d,
                dossiers=not no_dossier,
                rerender=again,
                stale_after=age,
                timestamps=trust,
            )
            for d in ids
        ]
        if repair:
            for r in results:
                repair_stale_uploads(store, r)
        # The sync run records are the bucket's, not a debt's: checked with --all.
        runs = verify_runs(store) if all_debts else None
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
    if runs is not None:
        bad += not runs.ok
        if as_json:
            if runs.records:
                emit_json(runs.to_json())
        elif runs.records:
            click.echo(
                f"sync runs: {'OK' if runs.ok else 'PROBLEMS'} — {runs.records} run record(s) "
                f"in {len(runs.lanes)} lane(s) ({', '.join(runs.lanes)})"
            )
        for p in runs.notices if not as_json else []:
            click.echo(f"  note: {p.kind}: {p.message}" + (f" [{p.key}]" if p.key else ""))
        for p in runs.problems if not as_json else []:
            click.echo(
                f"  {p.kind}: {p.message}"
                + (f" [{p.key}]" if p.key else "")
                + (f" expected {p.expected}, found {p.found}" if p.expected else "")
            )
    summary = {
        "bucket": bucket,
        "debts": len(results),
        "with_problems": bad,
        "problems": sum(len(r.problems) for r in results) + len(runs.problems if runs else []),
        "repaired": sum(len(r.repaired) for r in results),
    }
    if as_json:
        emit_json({"summary": summary})
    else:
        click.echo(_verify_summary_line(summary))
    sys.exit(ExitCode.FAILURE if bad else ExitCode.OK)


def _status_runs(bucket: str | None, limit: int, as_json: bool) -> None:
    from itertools import islice

    from archiver.sync.runs import read_runs, run_overview

    with handle_errors():
        store = open_cli_store(bucket)
        store.check_bucket()
        rows = [run_overview(r) for r in islice(read_runs(store, newest_first=True), limit)]
    if as_json:
        for row in rows:
            emit_json(row)
        emit_json({"summary": {"runs": len(rows), "bucket": store.bucket}})
        return
    if not rows:
        click.echo(f"no sync run recorded in bucket {printable(store.bucket)}")
        return
    for row in rows:
        if row["window"]:
            w = row["window"]
            what = f"window {w['from']}..{w['to']}"
        else:
            what = f"full pass {(row['full_pass'] or {}).get('pass_id')}"
        pending = row["pending"] or {}
        state = (
            "complete"
            if row["complete"]
            else (
                "incomplete: "
                + (f"resumes at page {pending['next_page']}" if pending.get("next_page") else "")
                + (
                    f" {len(pending.get('debts') or [])} debt(s) pending"
                    if pending.get("debts")
                    else ""
                )
            )
        )
        click.echo(
            f"{row['started_at']} {row['lane']}: {what}, {row['requests']} request(s) "
            f"(per-debt: {row['per_debt_cost']}), {row['debts']} debt(s), "
            f"{row['media_stored']} media, {row['problems']} problem(s); {state}  [{row['key']}]"
        )


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
@bucket_option
@profile_option
@catalog_option
@json_option
@click.option(
    "--runs",
    "show_runs",
    is_flag=True,
    help="List the sync run records of the bucket instead (read from S3), newest first.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="With --runs: how many records.",
)
def status(
    debt_id: str | None,
    bucket: str | None,
    catalog: Path | None,
    as_json: bool,
    show_runs: bool,
    limit: int,
) -> None:
    """Show what the catalog knows: per debt, the latest manifest, counts, problems, holds.

    A debt on legal hold says ON HOLD with its open matters (in the order they were opened);
    --json gives them as open_matters. --runs lists the sync run records (sync/runs/ in the
    bucket, the source of truth): lane, window or pass, requests, debts, complete or what is
    pending.
    The catalog is the bucket's own (or --catalog); the first line names both. Nothing is
    created: a missing catalog is an error (exit 2), `archiver reindex` builds it from S3.
    With --json: one line per debt, then a {"summary": {"debts": N, "on_hold": N}} line (also
    when the catalog is empty).

    \b
    Example:
      archiver status --bucket evidence
      archiver status aoqawrflg37x --json
      archiver status --runs --limit 5
    """
    if show_runs:
        if debt_id:
            raise click.UsageError("--runs lists the bucket's sync runs: give no DEBT_ID")
        _status_runs(bucket, limit, as_json)
        return
    with handle_errors():
        cat = open_cli_catalog(catalog, bucket, write=False)
        rows = cat.status(debt_id)
        known = cat.bucket()
        path = load_config(bucket=bucket, catalog=catalog).catalog_path()
    if as_json:
        for row in rows:
            emit_json({**row, "bucket": known})
        # Always a last line, so an empty catalog is an answer and not silence.
        emit_json(
            {"summary": {"debts": len(rows), "on_hold": sum(1 for r in rows if r.get("on_hold"))}}
        )
        return
    click.echo(f"bucket {known or '(not recorded yet)'}, catalog {path}")
    if not rows:
        click.echo("nothing archived yet" + (f" for {debt_id}" if debt_id else ""))
        return
    for row in rows:
        click.echo(
            f"{row.get('debt_id')}: manifest {row.get('sequence')} "
            f"({row.get('manifest_key')}), {row.get('followups')} followups, "
            f"{row.get('media')} media, {row.get('problems')} problem(s)"
            + (
                f", ON HOLD (open matters: {', '.join(row.get('open_matters') or [])})"
                if row.get("on_hold")
                else ""
            )
        )


@click.command()
@bucket_option
@s3_options
@catalog_option
@click.option(
    "--switch-bucket",
    is_flag=True,
    help="Rebuild even a catalog that indexes another bucket (it is emptied first and then "
    "belongs to this one).",
)
@json_option
def reindex(bucket: str | None, catalog: Path | None, switch_bucket: bool, as_json: bool) -> None:
    """Rebuild the local catalog from the manifests in S3 (S3 is the source of truth).

    The catalog is the bucket's own (or --catalog, created if missing). A catalog that
    indexes another bucket is refused (exit 2) unless --switch-bucket.

    \b
    Example:
      archiver reindex --bucket evidence
      archiver reindex --bucket evidence --catalog /srv/archiver/evidence.db --json
    """
    from archiver.catalog.reindex import reindex as do_reindex

    with handle_errors():
        store = open_cli_store(bucket)
        store.check_bucket()
        # A corrupt catalog is kept aside and rebuilt from scratch.
        cat = open_cli_catalog(
            catalog, bucket, write=True, switch_bucket=switch_bucket, replace_corrupt=True
        )
        result = do_reindex(cat, store)
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in data.items() if k != "problems"))
        for p in data.get("problems", []):
            click.echo(f"  problem: {p}")
