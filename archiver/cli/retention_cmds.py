"""Legal holds and purge: ``archiver hold``, ``release`` and ``purge``."""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from archiver.retention.holds import HoldResult

from ._common import (
    ExitCode,
    bucket_option,
    catalog_option,
    debt_ids_arguments,
    emit_json,
    handle_errors,
    json_option,
    open_cli_catalog,
    open_cli_store,
    policy_registry,
    s3_options,
)


def default_actor() -> str:
    # $USER first (what the help text promises), then the login name the OS knows.
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):
        return ""


actor_option = click.option(
    "--actor",
    default=default_actor,
    show_default="$USER",
    help="Who asks for this (recorded in the event).",
)


def _store(bucket: str | None) -> Any:
    return open_cli_store(bucket)


def _catalog(path: Path | None) -> Any:
    # The bucket of this command decides the default catalog (and is checked against it).
    bucket = click.get_current_context().params.get("bucket")
    return open_cli_catalog(path, bucket, write=True)


def _need(value: str | None, option: str) -> str:
    if value is None or not value.strip():
        raise click.UsageError(f"{option} must not be empty")
    return value.strip()


def _matters(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _report_hold(result: HoldResult, as_json: bool) -> ExitCode:
    if as_json:
        emit_json(result.to_dict())
    else:
        debt, matter, still_open = result.debt_id, result.matter, result.open_matters
        if result.already and result.action == "release" and not still_open:
            click.echo(f"Debt {debt} is not on hold: nothing to release.")
        elif result.already and result.action == "release":
            click.echo(
                f"Debt {debt}: matter {matter} was already released; still on hold for "
                f"{_matters(still_open)}."
            )
        elif result.already:
            click.echo(
                f"Debt {debt} was already on hold for matter {matter} ({result.event_key}); "
                f"hold checked on {len(result.versions)} version(s) of {result.objects} object(s)."
            )
        elif result.action == "hold":
            click.echo(
                f"Debt {debt}: matter {matter} on hold (open matters: {_matters(still_open)}); "
                f"{len(result.versions)} version(s) of {result.objects} object(s) held; "
                f"event {result.event_key}"
            )
        elif still_open:
            click.echo(
                f"Debt {debt}: matter {matter} released; still on hold for "
                f"{_matters(still_open)}, so every legal hold stays on; event {result.event_key}"
            )
        else:
            click.echo(
                f"Debt {debt}: matter {matter} released, no matter open: "
                f"{len(result.versions)} version(s) of {result.objects} object(s) released; "
                f"event {result.event_key}"
            )
        if result.event_written:
            click.echo(
                f"  `archiver dossier {debt}` shows it now; the next `archiver archive {debt}` "
                "records it in a new manifest and dossier."
            )
        for r in result.refused:
            click.echo(f"REFUSED {r.key} (version {r.version_id}): {r.reason}", err=True)
        if result.refused and result.action == "release":
            click.echo(
                "No release event written: the debt stays on hold until every hold is lifted.",
                err=True,
            )
    return ExitCode.PARTIAL if result.refused else ExitCode.OK


def _matter_to_release(store: Any, debt_id: str) -> str | None:
    """The one open matter of ``debt_id`` (None when none is open); a usage error listing them
    when several are."""
    from archiver.retention.events import open_matters, read_events

    opened = list(open_matters(read_events(store, debt_id)))
    if len(opened) > 1:
        raise click.UsageError(
            f"debt {debt_id} is on hold for {len(opened)} matters ({', '.join(opened)}): "
            "say which one to release with --matter"
        )
    return opened[0] if opened else None


def _run_hold(
    action: str,
    debt_id: str,
    matter: str | None,
    reason: str,
    actor: str,
    bucket: str | None,
    catalog: Path | None,
    as_json: bool,
) -> ExitCode:
    from archiver.retention.events import DEFAULT_MATTER
    from archiver.retention.holds import place_hold, release_hold

    said_reason = _need(reason, "--reason")
    said_actor = _need(actor, "--actor (or $USER)")
    chosen = _need(matter, "--matter") if matter is not None else None
    with handle_errors():
        store = _store(bucket)
        if action == "hold":
            result = place_hold(
                store,
                debt_id,
                matter=chosen or DEFAULT_MATTER,
                reason=said_reason,
                actor=said_actor,
                catalog=_catalog(catalog),
            )
        else:
            if chosen is None:
                chosen = _matter_to_release(store, debt_id)
            result = release_hold(
                store,
                debt_id,
                matter=chosen,
                reason=said_reason,
                actor=said_actor,
                catalog=_catalog(catalog),
            )
    return _report_hold(result, as_json)


def _run_holds(action: str, debt_ids: tuple[str, ...], *args: Any) -> None:
    """Each debt in turn, each reported as it is done; the exit code is the worst of them."""
    if not debt_ids:
        raise click.UsageError("give at least one DEBT_ID or --debts-file")
    sys.exit(max(_run_hold(action, debt_id, *args) for debt_id in debt_ids))


def _hold_options(matter_help: str) -> Any:
    def decorate(fn: Any) -> Any:
        for option in reversed(
            [
                debt_ids_arguments,
                click.option("--matter", help=matter_help),
                click.option("--reason", required=True, help="Why (case number, dispute ref...)."),
                actor_option,
                bucket_option,
                s3_options,
                catalog_option,
                json_option,
            ]
        ):
            fn = option(fn)
        return fn

    return decorate


@click.command("hold")
@_hold_options(
    'The dispute, complaint or inquiry this hold is for (its id; default: "default"). '
    "Each matter is held and released on its own."
)
def hold(
    debt_ids: tuple[str, ...],
    matter: str | None,
    reason: str,
    actor: str,
    bucket: str | None,
    catalog: Path | None,
    as_json: bool,
) -> None:
    """Put a legal hold on every stored version of each DEBT_ID for a matter (a dispute).

    Every object of the debt (records, media, debt records, manifests, dossiers, events) gets
    S3 legal hold ON, so nothing can delete it, not even with governance bypass, until every
    matter is released; new archive runs store the debt's objects with the hold on. The hold
    is recorded as an immutable event debts/ID/events/SEQUENCE.json naming the matter. A
    second matter on a held debt is recorded too; running it again for a matter already on
    hold writes no new event and completes any missing hold.

    Exit codes: 0 done, 3 the server refused some holds (listed), 1 failure.

    \b
    Example:
      archiver hold D-1042 --matter CFPB-2026-118 --reason "Complaint CFPB-2026-118 received" \\
        --bucket evidence
      archiver hold --debts-file disputed.txt --matter CFPB-2026-118 --reason "Complaint"
    """
    _run_holds("hold", debt_ids, matter, reason, actor, bucket, catalog, as_json)


@click.command("release")
@_hold_options(
    "The matter to release (default: the only open one; required when several are open)."
)
def release(
    debt_ids: tuple[str, ...],
    matter: str | None,
    reason: str,
    actor: str,
    bucket: str | None,
    catalog: Path | None,
    as_json: bool,
) -> None:
    """Release one matter of each DEBT_ID (that dispute is closed).

    While other matters stay open the debt stays held: only the release is recorded. When the
    last matter is released, the legal hold is lifted from every stored version and objects
    become deletable again once their retention date has passed (the purge step decides).
    The release is recorded as an immutable event debts/ID/events/SEQUENCE.json (for the last
    matter, written only after every hold is lifted). A debt that is not on hold is left as
    it is.

    Exit codes: 0 done, 3 the server refused to lift some holds (listed; no event), 1 failure,
    2 several matters open and no --matter.

    \b
    Example:
      archiver release D-1042 --matter CFPB-2026-118 --reason "Complaint closed" --actor j.doe
    """
    _run_holds("release", debt_ids, matter, reason, actor, bucket, catalog, as_json)


@click.command("purge")
@debt_ids_arguments
@click.option(
    "--policy",
    help="Apply this policy (name or TOML file) instead of the one each manifest names "
    "(looked up by name in $ARCHIVER_POLICY_DIR, then among the shipped policies).",
)
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
@s3_options
@catalog_option
@json_option
def purge(
    debt_ids: tuple[str, ...],
    policy: str | None,
    execute: bool,
    bypass_governance: bool,
    reason: str | None,
    actor: str,
    bucket: str | None,
    catalog: Path | None,
    as_json: bool,
) -> None:
    """Delete the object versions past their maximum retention, never those under legal hold.

    Without --execute it only reports what would be deleted, what is kept because of a legal
    hold, and what is kept because its Object Lock still runs (COMPLIANCE; GOVERNANCE unless
    --bypass-governance): exit 0, nothing changes. With --execute it deletes only what the
    server will let it delete: per debt, an immutable intent record
    debts/ID/events/SEQUENCE.json (keys, versions, SHA-256s, sizes, policy, reason, actor),
    then the deletes, then an outcome record naming the versions actually deleted (refusals
    apart). Nothing deletable: nothing is written. A purge interrupted before its outcome
    record is completed by the next --execute.

    DEBT_ID arguments (or --debts-file) limit the purge to those debts; without them every
    debt of the bucket is considered.

    Exit codes: 0 done, 3 some versions past their maximum kept by a lock or refused, 1
    failure.

    \b
    Example:
      archiver purge --policy fr-cnil-call-recording               # dry run
      archiver purge --policy fr-cnil-call-recording --execute \\
        --reason "Monthly CNIL purge" --bucket evidence
      archiver purge D-1042 D-1043 --policy uk-fca                   # two debts only
    """
    from archiver.retention.purge import execute_purge
    from archiver.retention.purge_plan import plan_purge

    if bypass_governance and not execute:
        raise click.UsageError("--bypass-governance only goes with --execute")
    said_reason, said_actor = "", actor
    if execute:
        said_reason = _need(reason, "--reason (required with --execute)")
        said_actor = _need(actor, "--actor (or $USER)")
    with handle_errors():
        store = _store(bucket)
        registry = policy_registry()
        plan = plan_purge(
            store,
            policy=registry.load(policy) if policy else None,
            registry=registry,
            now=datetime.now(UTC),
            debt_ids=list(debt_ids) or None,
            bypass_governance=bypass_governance,
        )
        result = None
        if execute and (plan.candidates or plan.unfinished):
            result = execute_purge(
                store,
                plan,
                reason=said_reason,
                actor=said_actor,
                bypass_governance=bypass_governance,
                catalog=_catalog(catalog),
            )
    if as_json:
        out: dict[str, Any] = {"executed": execute, "plan": plan.to_dict()}
        out["result"] = result.to_dict() if result else None
        emit_json(out)
    else:
        _print_purge(plan, result, execute)
    kept = bool(plan.locked) or (result is not None and not result.ok)
    sys.exit(ExitCode.PARTIAL if execute and kept else ExitCode.OK)


def _print_purge(plan: Any, result: Any, execute: bool) -> None:
    policy = plan.policy_name or "the policy each manifest names"
    click.echo(
        f"Purge plan ({policy}): {len(plan.debts)} debt(s), {plan.considered} object(s) "
        f"considered, {len(plan.candidates) + len(plan.locked) + len(plan.held)} past their "
        f"maximum: {len(plan.candidates)} deletable, {len(plan.locked)} still locked, "
        f"{len(plan.held)} kept by a legal hold."
    )
    for c in plan.candidates:
        click.echo(
            f"  delete {c.key} (version {c.version_id}, {c.kind}, {c.size} B, past "
            f"{c.delete_after:%Y-%m-%d} by {c.policy_name})"
        )
    for c in plan.locked:
        hint = (
            "; --bypass-governance would delete it"
            if c.lock_mode == "GOVERNANCE" and not plan.bypass_governance
            else ""
        )
        click.echo(f"  LOCKED {c.key} (version {c.version_id}): {c.lock_text()}, kept{hint}")
    for c in plan.held:
        click.echo(f"  HELD   {c.key} (version {c.version_id}): legal hold, kept")
    for u in plan.unfinished:
        click.echo(
            f"  INTERRUPTED purge {u.intent_key}: {len(u.gone)} version(s) deleted without an "
            "outcome record" + (" (--execute records them)" if not execute else "")
        )
    for p in plan.problems:
        click.echo(f"  note   {p.kind}: {p.key or p.debt_id}: {p.message}", err=True)
    if not execute:
        click.echo("Dry run: nothing deleted (use --execute to delete).")
        return
    if result is None:
        click.echo("Nothing to delete; nothing written.")
        return
    for rec in result.records:
        click.echo(f"Outcome record {rec['key']} ({rec['versions']} version(s) deleted)")
    for r in result.refused:
        click.echo(f"REFUSED {r.key} (version {r.version_id}): {r.reason}", err=True)
    for text in result.unrecorded:
        click.echo(f"NOT RECORDED {text}", err=True)
    click.echo(
        f"Deleted {len(result.deleted)} version(s), refused {len(result.refused)}, "
        f"{len(plan.locked)} kept by a lock."
    )


def register(group: click.Group) -> None:
    """Add hold, release and purge to ``group``."""
    group.add_command(hold)
    group.add_command(release)
    group.add_command(purge)
