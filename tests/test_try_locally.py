"""Trying the tool for real before wiring it to AWS: `s3-server` and the simulator's banner
print variables that, pasted into another shell, make archiver work (`demo --keep-running`:
tests/test_demo.py)."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Mapping

import pytest
from click.testing import CliRunner, Result

from archiver.cli import demo_cmd, main
from archiver.devkit.shell import export_lines
from archiver.devkit.simulator import SimulatorServer


def _exported(output: str) -> dict[str, str]:
    """The variables of the ``export NAME=value`` lines of ``output``, as a shell reads them."""
    found = {}
    for line in output.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


def _free_port_pair() -> int:
    # SeaweedFS needs the S3 port p and p + 10000 (its gRPC port).
    for port in range(23000, 32000, 7):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.mark.integration
def test_s3_server_prints_the_variables_that_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    port = _free_port_pair()
    results: list[Result] = []

    def another_shell(variables: Mapping[str, str]) -> None:
        env = dict(variables)
        runner = CliRunner()
        results.append(runner.invoke(main, ["init-bucket", "second-bucket"], env=env))
        results.append(runner.invoke(main, ["verify", "--all"], env=env))

    monkeypatch.setattr(demo_cmd, "wait_until_interrupted", another_shell)
    r = CliRunner().invoke(main, ["s3-server", "--port", str(port), "--bucket", "evidence"])
    assert r.exit_code == 0, r.output
    printed = _exported(r.output)
    assert printed["AWS_ENDPOINT_URL_S3"] == f"http://127.0.0.1:{port}"
    assert printed["ARCHIVER_BUCKET"] == "evidence"
    init, verify = results
    assert init.exit_code == 0 and "second-bucket is ready" in init.output, init.output
    assert verify.exit_code == 0, verify.output  # the bucket made at start, empty and clean


def test_simulator_banner_prints_the_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: SimulatorServer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SimulatorServer, "serve_forever", interrupted)
    r = CliRunner().invoke(main, ["simulate", "--port", "0"])
    assert r.exit_code == 0, r.output
    printed = _exported(r.output)
    url = printed["GETBILL_API_URL"]
    assert url.startswith("http://127.0.0.1:") and f"listening on {url}" in r.output
    assert printed["GETBILL_CLIENT_ID"] == "demo-client"
    assert printed["GETBILL_CLIENT_SECRET"] == "demo-secret"
    assert printed["ARCHIVER_MEDIA_HOSTS"] == "127.0.0.1"


def test_export_lines_quote_values_for_the_shell() -> None:
    assert export_lines({"A": "x y", "B": "it's"}) == ["export A='x y'", "export B='it'\"'\"'s'"]
