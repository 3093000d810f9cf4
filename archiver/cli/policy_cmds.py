"""``archiver policies``: list, show and check retention policies."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from archiver.retention.policies import RetentionPolicy

from ._common import ExitCode, emit_json, handle_errors, json_option, policy_registry


@click.group("policies")
def policies_group() -> None:
    """List, show and check retention policies.

    A policy gives, for each kind of archived object (audio, pdf, record, debt, manifest,
    dossier), a minimum retention enforced by S3 Object Lock and an optional maximum after
    which the purge step deletes. Policies are looked up in $ARCHIVER_POLICY_DIR, then among
    the policies shipped with the tool. Policies are not legal advice: have them reviewed.

    \b
    Example:
      archiver policies list
      archiver policies show us-cfpb-reg-f
      archiver policies check my-policy.toml
    """


@policies_group.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the available policies: name, title, jurisdiction, Object Lock mode.

    \b
    Example:
      archiver policies list
      ARCHIVER_POLICY_DIR=./policies archiver policies list --json
    """
    with handle_errors():
        policies = policy_registry().policies()
    if as_json:
        for p in policies:
            emit_json({"name": p.name, "title": p.title, "jurisdiction": p.jurisdiction,
                       "mode": p.mode, "source_path": str(p.source_path)})  # fmt: skip
        return
    width = max((len(p.name) for p in policies), default=4)
    for p in policies:
        click.echo(f"{p.name:<{width}}  {p.jurisdiction:<8}  {p.mode:<10}  {p.title}")


def _show_text(policy: RetentionPolicy) -> None:
    click.echo(f"{policy.name}: {policy.title}")
    click.echo(f"jurisdiction: {policy.jurisdiction}    mode: {policy.mode}")
    click.echo(f"file: {policy.source_path}    sha256: {policy.sha256}")
    click.echo("")
    click.echo(f"NOTICE: {policy.notice}")
    if policy.description:
        click.echo("")
        click.echo(policy.description)
    click.echo("")
    click.echo(f"{'kind':<9} {'min':<7} {'max':<7} anchor")
    from archiver.retention.policies import OBJECT_KINDS

    for kind in OBJECT_KINDS:
        rule = policy.rules[kind]
        max_text = str(rule.max) if rule.max else "-"
        line = f"{kind:<9} {str(rule.min):<7} {max_text:<7} {rule.anchor:<13}"
        click.echo(line + (f"  # {rule.note}" if rule.note else ""))
    click.echo("")
    click.echo("legal basis:")
    for c in policy.legal_basis:
        click.echo(f"  - {c.citation}: {c.summary}")
        if c.url:
            click.echo(f"    {c.url}")


@policies_group.command("show")
@click.argument("name")
@json_option
def show_cmd(name: str, as_json: bool) -> None:
    """Show one policy: min, max and anchor for every kind, and its legal basis.

    NAME is a policy name or a path to a .toml file.

    \b
    Example:
      archiver policies show fr-cnil-call-recording
      archiver policies show ./my-policy.toml --json
    """
    with handle_errors():
        policy = policy_registry().load(name)
    if as_json:
        emit_json(policy.to_dict())
    else:
        _show_text(policy)


@policies_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option
def check_cmd(files: tuple[str, ...], as_json: bool) -> None:
    """Validate policy files; list every problem as "FILE: field: problem (expected ...)".

    Exit code 0 when every file is valid, 1 otherwise.

    \b
    Example:
      archiver policies check retention_policies/*.toml
    """
    failed = False
    for file in files:
        from archiver.retention.policy_files import check_policy_file

        problems = check_policy_file(file)
        failed = failed or bool(problems)
        if as_json:
            emit_json({"file": file, "valid": not problems,
                       "problems": [p.to_dict() for p in problems]})  # fmt: skip
        elif problems:
            for problem in problems:
                click.echo(str(problem))
        else:
            click.echo(f"{file}: ok")
    if failed:
        sys.exit(ExitCode.FAILURE)


def register(group: click.Group) -> None:
    """Add the ``policies`` group to ``group``."""
    group.add_command(policies_group)
