"""Every command has help text with an example; the group has --version."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from archiver import __version__
from archiver.cli import main


def _walk(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, prefix + (name,))


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_group_help_has_example() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


COMMANDS = list(_walk(main))


def test_there_are_commands() -> None:
    assert COMMANDS, "the archiver group registers no command"


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_with_example(path: tuple[str, ...], cmd: click.Command) -> None:
    assert cmd.help and cmd.help.strip(), f"archiver {' '.join(path)} has no help text"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"archiver {' '.join(path)} --help shows no example"


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


# Sphinx roles, double-backtick literals and directives mean nothing on a terminal.
REST_MARKUP = re.compile(r"``|:(?:meth|class|func|attr|mod|data|exc|ref):`|^\s*\.\. \w+::", re.M)


@pytest.mark.parametrize("path", [(), *(p for p, _ in COMMANDS)], ids=lambda p: " ".join(p) or "-")
def test_help_texts_have_no_rest_markup(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert not REST_MARKUP.search(text), f"archiver {' '.join(path)} --help: {text}"


def _default_port(command: click.Command) -> int:
    port = next(p for p in command.params if p.name == "port").default
    assert isinstance(port, int)
    return port


def test_example_ports_are_the_ports_the_local_servers_listen_on() -> None:
    # An example that works when copied talks to a port something listens on: the local S3
    # (`archiver s3-server`) or the simulator (`archiver simulate`) with their defaults, or
    # `archiver listen` (the simulator's webhooks go there).
    listening = {
        _default_port(main.commands["s3-server"]),
        _default_port(main.commands["simulate"]),
    }
    assert listening == {8333, 8765}
    listening.add(_default_port(main.commands["listen"]))
    for path in [(), *(p for p, _ in COMMANDS)]:
        for port in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", _help(path)):
            assert int(port) in listening, f"archiver {' '.join(path)} --help names port {port}"


NAMING_DEBTS = ("archive", "verify", "purge", "hold", "release")


@pytest.mark.parametrize("name", NAMING_DEBTS)
def test_debts_are_named_one_way_everywhere(name: str) -> None:
    text = _help((name,))
    usage = text.splitlines()[0]
    assert usage.endswith("[DEBT_ID]..."), usage
    assert "--debts-file FILE" in text
    assert "--debt " not in text and "--debt=" not in text


S3_COMMANDS = ("archive", "verify", "reindex", "purge", "hold", "release", "dossier", "init-bucket")


@pytest.mark.parametrize("name", S3_COMMANDS)
def test_every_s3_command_takes_the_aws_cli_options(name: str) -> None:
    text = _help((name,))
    for option in ("--profile", "--endpoint-url", "--region"):
        assert option in text, f"archiver {name} has no {option}"


def test_group_has_quiet_verbose_no_progress_log_level_and_config() -> None:
    text = _help(())
    for option in ("-q, --quiet", "-v, --verbose", "--no-progress", "--log-level", "--config"):
        assert option in text


def test_shell_completion_works_as_the_readme_says() -> None:
    # README: eval "$(_ARCHIVER_COMPLETE=bash_source archiver)"
    env = {"_ARCHIVER_COMPLETE": "bash_complete", "COMP_WORDS": "archiver ver", "COMP_CWORD": "1"}
    result = CliRunner().invoke(main, [], prog_name="archiver", env=env)
    assert result.exit_code == 0
    assert result.output.split() == ["plain,verify", "plain,version"]
    source = CliRunner().invoke(
        main, [], prog_name="archiver", env={"_ARCHIVER_COMPLETE": "bash_source"}
    )
    assert "_archiver_completion()" in source.output
