"""Legal holds and purge: ``archiver hold``, ``release`` and ``purge``."""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from archiver.retention.holds import HoldResult

from ._common import (
    ExitCode,
    bucket_option,
    catalog_option,
    emit_json,
    handle_errors,
    json_option,
    policy_registry,
)


def _default_actor() -> str:
    # $USER first (what the help text promises), then the login name the OS knows.
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):
        return ""


actor_option = click.option(
    "--actor",
    default=_default_actor,
    show_default="$USER",
    help="Who asks for this (recorded in the event).",
)


def _store(bucket: str | None) -> Any:
    from ..wiring import open_store

    return open_store(bucket)


def _catalog(path: Path) -> Any:
    from archiver.catalog.db import Catalog

    return Catalog.open(path)


def _need(value: str | None, option: str) -> str:
    if value is None or not value.strip():
        raise click.UsageError(f"{option} must not be empty")
    return value.strip()


def _report_hold(result: HoldResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
    else:
        verb = "held" if result.action == "hold" else "released"
        if result.already and result.action == "release":
            click.echo(f"Debt {result.debt_id} is not on hold: nothing to release.")
        elif result.already:
            click.echo(
                f"Debt {result.debt_id} was already on hold ({result.event_key}); "
                f"hold checked on {len(result.versions)} version(s) of {result.objects} object(s)."
            )
        else:
            click.echo(
                f"Debt {result.debt_id}: {len(result.versions)} version(s) of {result.objects} "
                f"object(s) {verb}; event {result.event_key}"
            )
        for r in result.refused:
            click.echo(f"REFUSED {r.key} (version {r.version_id}): {r.reason}", err=True)
        if result.refused and result.action == "release":
            click.echo(
                "No release event written: the debt stays on hold until every hold is lifted.",
                err=True,
            )
    sys.exit(ExitCode.PARTIAL if result.refused else ExitCode.OK)


def _run_hold(
    action: str,
    debt_id: str,
    reason: str,
    actor: str,
    bucket: str | None,
    catalog: Path,
    as_json: bool,
) -> None:
    from archiver.retention.holds import place_hold, release_hold

    run = place_hold if action == "hold" else release_hold
    reason = _need(reason, "--reason")
    actor = _need(actor, "--actor (or $USER)")
    with handle_errors():
        result = run(_store(bucket), debt_id, reason=reason, actor=actor, catalog=_catalog(catalog))
    _report_hold(result, as_json)


def _hold_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.argument("debt_id"),
            click.option("--reason", required=True, help="Why (case number, dispute ref...)."),
            actor_option,
            bucket_option,
            catalog_option,
            json_option,
        ]
    ):
        fn = option(fn)
    return fn


@click.command("hold")
@_hold_options
def hold(
    debt_id: str,
    reason: str,
    actor: str,
    bucket: str | None,
    catalog: Path,
    as_json: bool,
) -> None:
    """Put a legal hold on every stored version of DEBT_ID (a dispute is open).

    Every object of the debt (records, media, debt records, manifests, dossiers, events) gets
    S3 legal hold ON, so nothing can delete it, not even with governance bypass, until it is
    released; new archive runs store the debt's objects with the hold on. The hold is recorded
    as an immutable event debts/ID/events/TIMESTAMP-hold.json. Running it again on a debt
    already on hold writes no new event and completes any missing hold.

    Exit codes: 0 done, 3 the server refused some holds (listed), 1 failure.

    \b
    Example:
      archiver hold D-1042 --reason "Complaint CFPB-2026-118 received" --bucket evidence
    """
    _run_hold("hold", debt_id, reason, actor, bucket, catalog, as_json)


@click.command("release")
@_hold_options
def release(
    debt_id: str,
    reason: str,
    actor: str,
    bucket: str | None,
    catalog: Path,
    as_json: bool,
) -> None:
    """Lift the legal hold from every stored version of DEBT_ID (the dispute is closed).

    Objects become deletable again once their retention date has passed (the purge step
    decides). The release is recorded as an immutable event
    debts/ID/events/TIMESTAMP-release.json, written only after every hold is lifted. A debt
    that is not on hold is left as it is.

    Exit codes: 0 done, 3 the server refused to lift some holds (listed; no event), 1 failure.

    \b
    Example:
      archiver release D-1042 --reason "Complaint CFPB-2026-118 closed" --actor j.doe
    """
    _run_hold("release", debt_id, reason, actor, bucket, catalog, as_json)


@click.command("purge")
@click.option(
    "--policy",
    help="Apply this policy (name or TOML file) instead of the one each manifest names "
    "(looked up by name in $ARCHIVER_POLICY_DIR, then among the shipped policies).",
)
@click.option("--debt", "debt_ids", multiple=True, help="Only this debt (repeatable).")
@click.option("--execute", is_flag=True, help="Really delete (default: only report).")
@click.option(
    "--bypass-governance",
    is_flag=True,
    help="Delete GOVERNANCE-locked versions before their date (needs --execute and the "
    "s3:BypassGovernanceRetention permission). COMPLIANCE and legal holds still refuse.",
)
@click.option("--reason", help="Why (recorded in the deletion record; needed with --execute).")
@actor_option
@bucket_option
@catalog_option
@json_option
def purge(
    policy: str | None,
    debt_ids: tuple[str, ...],
    execute: bool,
    bypass_governance: bool,
    reason: str | None,
    actor: str,
    bucket: str | None,
    catalog: Path,
    as_json: bool,
) -> None:
    """Delete the object versions past their maximum retention, never those under legal hold.

    Without --execute it only reports what would be deleted, and what is kept because of a
    legal hold (exit 0, nothing changes). With --execute it first writes, per debt, an immutable
    deletion record debts/ID/events/TIMESTAMP-purge.json (keys, versions, SHA-256s, sizes,
    policy, reason, actor), then deletes each version. Versions the server refuses to delete
    (still locked, held) are listed with its reason.

    Exit codes: 0 done, 3 some versions refused, 1 failure.

    \b
    Example:
      archiver purge --policy fr-cnil-call-recording               # dry run
      archiver purge --policy fr-cnil-call-recording --execute \\
        --reason "Monthly CNIL purge" --bucket evidence
    """
    from archiver.retention.purge import execute_purge
    from archiver.retention.purge_plan import plan_purge

    if bypass_governance and not execute:
        raise click.UsageError("--bypass-governance only goes with --execute")
    if execute:
        reason = _need(reason, "--reason (required with --execute)")
        actor = _need(actor, "--actor (or $USER)")
    with handle_errors():
        store = _store(bucket)
        registry = policy_registry()
        plan = plan_purge(
            store,
            policy=registry.load(policy) if policy else None,
            registry=registry,
            now=datetime.now(UTC),
            debt_ids=list(debt_ids) or None,
        )
        result = None
        if execute and plan.candidates:
            result = execute_purge(
                store,
                plan,
                reason=reason or "",
                actor=actor,
                bypass_governance=bypass_governance,
                catalog=_catalog(catalog),
            )
    if as_json:
        out: dict[str, Any] = {"executed": execute, "plan": plan.to_dict()}
        out["result"] = result.to_dict() if result else None
        emit_json(out)
    else:
        _print_purge(plan, result, execute)
    sys.exit(ExitCode.PARTIAL if result is not None and result.refused else ExitCode.OK)


def _print_purge(plan: Any, result: Any, execute: bool) -> None:
    policy = plan.policy_name or "the policy each manifest names"
    click.echo(
        f"Purge plan ({policy}): {len(plan.debts)} debt(s), {plan.considered} object(s) "
        f"considered, {len(plan.candidates)} past their maximum, {len(plan.held)} kept by a "
        "legal hold."
    )
    for c in plan.candidates:
        click.echo(
            f"  delete {c.key} (version {c.version_id}, {c.kind}, {c.size} B, past "
            f"{c.delete_after:%Y-%m-%d} by {c.policy_name})"
        )
    for c in plan.held:
        click.echo(f"  HELD   {c.key} (version {c.version_id}): legal hold, kept")
    for p in plan.problems:
        click.echo(f"  note   {p.kind}: {p.key or p.debt_id}: {p.message}", err=True)
    if not execute:
        click.echo("Dry run: nothing deleted (use --execute to delete).")
        return
    if result is None:
        click.echo("Nothing to delete.")
        return
    for rec in result.records:
        click.echo(f"Deletion record {rec['key']} ({rec['versions']} version(s))")
    for r in result.refused:
        click.echo(f"REFUSED {r.key} (version {r.version_id}): {r.reason}", err=True)
    click.echo(f"Deleted {len(result.deleted)} version(s), refused {len(result.refused)}.")


def register(group: click.Group) -> None:
    """Add hold, release and purge to ``group``."""
    group.add_command(hold)
    group.add_command(release)
    group.add_command(purge)
