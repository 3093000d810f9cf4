"""``archiver sync``: scheduled archiving of the whole company within the API budget."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ._common import (
    ExitCode,
    bucket_option,
    catalog_option,
    cli_env,
    emit_json,
    handle_errors,
    json_option,
    load_config,
    s3_options,
)
from .archive_cmds import _api_event_logger, _exit_code
from .lazy_progress import sync_progress


def register(group: click.Group) -> None:
    """Add ``sync`` to the ``archiver`` group."""
    group.add_command(sync)


@click.command()
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Window start (YYYY-MM-DD), instead of the end of the last complete window minus "
    "the look-back. Needed by the first sync.",
)
@click.option(
    "--lookback",
    default="P3D",
    show_default=True,
    help="How far before the end of the last complete window the next one starts (ISO 8601 "
    "days or weeks): statuses and email counters of recent followups still change.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Reconcile: list every debt (GET /debts) and archive each from its own listing. "
    "Resumes across runs until the pass is done.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(1),
    help="Most getbill requests this run sends (token, listings, debt records, refreshes). "
    "Default: what X-RateLimit-Remaining says at the start, less a reserve of a tenth of "
    "the hourly limit.",
)
@click.option(
    "--shard",
    envvar="ARCHIVER_SHARD",
    help="I/N: this process is shard I (0-based) of N [env ARCHIVER_SHARD]. Window mode: "
    "the I-th slice of the window's days; full mode: the debts whose id hashes to I.",
)
@click.option(
    "--shards",
    type=click.IntRange(1),
    help="N shards, this one being $JOB_COMPLETION_INDEX (what a Kubernetes Indexed Job "
    "sets in each pod).",
)
@bucket_option
@s3_options
@click.option(
    "--policy",
    help="Retention policy for debts archived for the first time (else $ARCHIVER_POLICY, else "
    "'default'); a debt archived before keeps its own.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Debts archived at once (each with two media transfers).",
)
@click.option(
    "--dossiers/--no-dossiers",
    default=False,
    show_default=True,
    help="Render each new manifest's PDF dossier in the run. Off by default: at company scale "
    "dossiers dominate the run; `archiver dossier DEBT` renders one when it is needed.",
)
@catalog_option
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Prometheus text format here (node_exporter textfile collector): last "
    "success time, requests spent, objects stored, problems.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List the window and say what would be archived; download and write nothing (the "
    "listing requests are spent).",
)
@json_option
def sync(
    since: datetime | None,
    lookback: str,
    full: bool,
    max_requests: int | None,
    shard: str | None,
    shards: int | None,
    bucket: str | None,
    policy: str | None,
    concurrency: int,
    dossiers: bool,
    catalog: Path,
    metrics_file: Path | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Archive everything that happened in the company since the last sync, within the API
    request budget; resume where the last run stopped.

    Window mode lists GET /followups for the window (pages of 100 followups of any debts) and
    archives each touched debt: its new and changed records, media while their links are
    fresh, its debt record when it may have changed, one new manifest. --full enumerates every
    debt instead (a periodic reconciliation). Each run writes an immutable, chained run
    record under sync/runs/ in the bucket: the next window starts from it, on any machine.

    Exit codes: 0 complete, 3 partial (request budget exhausted, or some media/debts failed:
    the next run resumes), 1 failure, 2 usage or configuration error.

    \b
    Example:
      archiver sync --since 2026-01-01            # first sync: everything since January
      archiver sync                                # hourly: since the last one (look-back 3 days)
      archiver sync --max-requests 300 --json      # a third of the hourly budget
      archiver sync --full --shards 4              # pod $JOB_COMPLETION_INDEX of an Indexed Job
    """
    from archiver.getbill.settings import ApiSettings
    from archiver.sync.engine import SyncSettings
    from archiver.sync.shards import parse_shard
    from archiver.sync.window import lookback_days

    from ..wiring import open_sync

    cfg = load_config(bucket=bucket, policy=policy, catalog=catalog)
    began = time.monotonic()
    with handle_errors():
        lookback_days(lookback)  # a wrong look-back is a usage error before any request
        settings = SyncSettings(
            full=full,
            since=since.date() if since else None,
            lookback=lookback,
            max_requests=max_requests,
            shard=parse_shard(shard, shards, os.environ.get("JOB_COMPLETION_INDEX")),
            concurrency=concurrency,
            dry_run=dry_run,
        )
        if full and since is not None:
            raise click.UsageError("--since is for window mode; --full lists every debt")
        api_settings = ApiSettings.from_env(cli_env())
        show_progress = sys.stderr.isatty() and not as_json

        def on_result(debt: Any) -> None:
            if as_json:
                emit_json(debt.to_json())

        try:
            with (
                sync_progress(show_progress) as (on_event, on_sync),
                open_sync(
                    cfg,
                    api_settings,
                    settings,
                    render_dossiers=dossiers,
                    on_event=on_event,
                    on_sync_event=on_sync,
                    on_result=on_result,
                    on_api_event=_api_event_logger,
                    policy_asked=policy is not None,
                ) as session,
            ):
                result = session.syncer.run()
        except BaseException as exc:
            if metrics_file is not None and not dry_run:
                _metrics(metrics_file, None, settings, time.monotonic() - began, exc)
            raise
    summary = result.summary()
    if as_json:
        emit_json({"summary": summary})
    else:
        _print_summary(summary, dry_run)
    code = _exit_code(_AsRun(result), dry_run)
    if code == ExitCode.OK and not result.complete:
        code = ExitCode.PARTIAL
    if metrics_file is not None and not dry_run:
        with handle_errors():
            _metrics(metrics_file, result, settings, time.monotonic() - began, None, code)
    sys.exit(code)


class _AsRun:
    """A sync result as the archive command's exit-code rule reads a run."""

    def __init__(self, result: Any) -> None:
        self.debts = result.debts
        self.exit_status = result.exit_status


def _print_summary(s: dict[str, Any], dry_run: bool) -> None:
    req = s["requests"]
    kinds = ", ".join(f"{k} {n}" for k, n in req["by_kind"].items()) or "none"
    if s["window"]:
        w = s["window"]
        where = f"window {w['from']}..{w['to']}"
        if w["slice"] and (w["slice"]["from"], w["slice"]["to"]) != (w["from"], w["to"]):
            where += f", this shard {w['slice']['from']}..{w['slice']['to']}"
        elif not w["slice"]:
            where += ", no day for this shard"
    else:
        where = f"full pass {s['full_pass']['pass_id']}"
    by_status = ", ".join(f"{n} {k}" for k, n in sorted(s["by_status"].items())) or "none"
    click.echo(
        f"sync ({s['lane']}, {where}): {s['followups_seen']} followup(s) listed, "
        f"{s['debts']} debt(s) ({by_status}), {s['media_stored']} media stored "
        f"({s['media_bytes_stored']} bytes), {s['problems']} problem(s)"
    )
    limit = "no limit known" if req["limit"] is None else f"budget {req['limit']}"
    click.echo(
        f"requests: {req['total']} ({kinds}); {limit}, {req['left']} left; per-debt "
        f"`archive` of these debts would have cost {s['per_debt_cost']}"
    )
    pending = s["pending"]
    if req["exhausted"]:
        where_next = (
            f"the listing at page {pending['next_page']}" if pending["next_page"] else "there"
        )
        click.echo(
            f"request budget exhausted: the next run resumes {where_next}"
            + (f", {len(pending['debts'])} debt(s) to archive again" if pending["debts"] else "")
            + (
                f", {len(pending['debt_records'])} debt record(s) to read"
                if pending.get("debt_records")
                else ""
            )
            + (f", {pending['debts_left']} debt(s) left" if pending.get("debts_left") else "")
        )
    elif pending["debts"]:
        click.echo(f"{len(pending['debts'])} debt(s) left for the next run: {pending['debts']}")
    if dry_run:
        click.echo("dry run: nothing was downloaded or written")
    elif s["run_record"]:
        click.echo(
            f"run record {s['run_record']} ({'complete' if s['complete'] else 'incomplete'})"
        )


def _metrics(
    path: Path,
    result: Any,
    settings: Any,
    duration: float,
    error: BaseException | None,
    code: int | None = None,
) -> None:
    """Write the Prometheus textfile of this run (a failed run keeps the last success time)."""
    from archiver.common.time import utcnow
    from archiver.sync.metrics import SyncMetrics, write_metrics

    shard = None if settings.shard.whole else settings.shard.label()
    if result is None:
        exit_code = int(getattr(error, "code", ExitCode.FAILURE) or ExitCode.FAILURE)
        metrics = SyncMetrics(
            finished_at=utcnow(),
            success=False,
            exit_code=exit_code if isinstance(exit_code, int) else 1,
            mode=settings.mode,
            shard=shard,
            requests_by_kind={},
            requests_left=None,
            objects_stored={},
            bytes_stored=0,
            debts_touched=0,
            followups_seen=0,
            problems_by_severity={"error": 1},
            pending_debts=0,
            duration_seconds=duration,
        )
    else:
        r = result.record
        severities: dict[str, int] = {}
        for p in r["problems"] + [p for d in result.debts for p in d.problems]:
            sev = p.get("severity", "error")
            severities[sev] = severities.get(sev, 0) + 1
        manifests = sum(1 for d in result.debts if d.status == "archived")
        metrics = SyncMetrics(
            finished_at=utcnow(),
            success=code == ExitCode.OK,
            exit_code=int(code or 0),
            mode=settings.mode,
            shard=shard,
            requests_by_kind=r["requests"]["by_kind"],
            requests_left=r["requests"]["left"],
            objects_stored={"media": r["media_stored"], "manifest": manifests, "run_record": 1},
            bytes_stored=r["media_bytes_stored"],
            debts_touched=len(r["debts"]),
            followups_seen=r["followups_seen"],
            problems_by_severity=severities,
            pending_debts=len(r["pending"]["debts"]),
            duration_seconds=duration,
        )
    write_metrics(path, metrics)
