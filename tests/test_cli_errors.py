"""Errors a person can act on: each says what is wrong and the setting to change, with the
exit code the README promises (2 configuration, 1 failure, 3 partial, 130 interrupted).

End to end where it is about the CLI: the simulator on a real socket and SeaweedFS.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fixtures_archive import Env

from archiver.catalog.db import Catalog
from archiver.cli import main
from archiver.retention.registry import PolicyRegistry

integration = pytest.mark.integration  # the tests with the simulator and SeaweedFS

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], env: dict[str, Any]) -> Result:
    return CliRunner().invoke(main, args, env=env)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_error_line(result: Result) -> str:
    """The whole of stderr, which must be one ``Error: ...`` line and no traceback."""
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------- S3 configuration: exit 2

S3_COMMANDS = [
    ["archive", "d1"],
    ["verify", "--all"],
    ["dossier", "d1", "-o", "out.pdf"],
    ["reindex"],
    ["hold", "d1", "--matter", "M-1", "--reason", "dispute", "--actor", "j.doe"],
    ["release", "d1", "--reason", "closed", "--actor", "j.doe"],
    ["purge"],
    ["init-bucket", "evidence-new"],
]


@pytest.mark.parametrize("args", S3_COMMANDS, ids=lambda a: a[0])
def test_unknown_aws_profile_is_one_line_naming_profile_and_config_file(
    args: list[str], tmp_path: Path
) -> None:
    config_file = tmp_path / "aws-config"
    env = {
        "AWS_PROFILE": "archiver",
        "AWS_CONFIG_FILE": str(config_file),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "ARCHIVER_BUCKET": "evidence",
        "GETBILL_CLIENT_ID": "demo-client",
        "GETBILL_CLIENT_SECRET": "demo-secret",
    }
    args = [str(tmp_path / a) if a == "out.pdf" else a for a in args]
    result = run_cli(args, env)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "AWS profile 'archiver' (AWS_PROFILE)" in line
    assert str(config_file) in line


@integration
def test_bucket_that_does_not_exist_exits_2(env: Env) -> None:
    cli_env = {**env.cli_env(), "ARCHIVER_BUCKET": "no-such-bucket-here"}
    for args in (["verify", "--all"], ["archive", env.debts()[0]]):
        result = run_cli(args, cli_env)
        assert result.exit_code == 2, result.output
        line = one_error_line(result)
        assert "bucket 'no-such-bucket-here' does not exist" in line
        assert "archiver init-bucket no-such-bucket-here" in line


@integration
def test_bucket_without_object_lock_exits_2(env: Env, s3_client: Any) -> None:
    plain = f"plain-{env.store.bucket}"[:63]
    s3_client.create_bucket(Bucket=plain)
    result = run_cli(["verify", "--all"], {**env.cli_env(), "ARCHIVER_BUCKET": plain})
    assert result.exit_code == 2, result.output
    assert "has no Object Lock" in one_error_line(result)


@integration
def test_wrong_s3_credentials_exit_2(env: Env) -> None:
    cli_env = {**env.cli_env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = run_cli(["verify", "--all"], cli_env)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "the S3 server refused the credentials (SignatureDoesNotMatch" in line
    assert "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in line
    assert "not-the-secret" not in line


@pytest.mark.parametrize("name", ["Bad_Name!", "a/b"])
@integration
def test_invalid_bucket_name_exits_2(env: Env, name: str) -> None:
    result = run_cli(["verify", "--all"], {**env.cli_env(), "ARCHIVER_BUCKET": name})
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert f"invalid bucket name {name!r} (--bucket / ARCHIVER_BUCKET)" in line
    assert "3-63 lowercase letters" in line


@integration
def test_missing_policy_file_exits_2(env: Env, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = run_cli(["archive", env.debts()[0], "--policy", str(missing)], env.cli_env())
    assert result.exit_code == 2, result.output
    assert "retention policy file not found" in one_error_line(result)


# ---------------------------------------------------------------- getbill: the server's reason


@integration
def test_client_without_debts_read_hears_the_scope_reason_and_GETBILL_SCOPE(env: Env) -> None:
    cli_env = {
        **env.cli_env(),
        "GETBILL_CLIENT_ID": "followups-only-client",
        "GETBILL_CLIENT_SECRET": "followups-only-secret",
    }
    debts = env.debts()
    result = run_cli(["archive", *debts, "--json"], cli_env)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert (
        "getbill refused the client credentials (HTTP 400): Invalid scope: not allowed: "
        "debts:read" in line
    )
    assert "GETBILL_SCOPE='followups:read'" in line
    assert "followups-only-secret" not in result.output
    assert len(env.sim.requests_to("/token")) == 1  # the run stopped: no retry per debt
    # Doing what the message says works.
    fixed = run_cli(["archive", debts[0]], {**cli_env, "GETBILL_SCOPE": "followups:read"})
    assert fixed.exit_code == 0, fixed.output


@integration
def test_wrong_client_secret_exits_2_and_names_the_variables(env: Env) -> None:
    cli_env = {**env.cli_env(), "GETBILL_CLIENT_SECRET": "wrong-secret-value"}
    result = run_cli(["archive", env.debts()[0]], cli_env)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "(HTTP 401): Invalid client credentials: unknown client or wrong secret" in line
    assert "GETBILL_CLIENT_ID / GETBILL_CLIENT_SECRET" in line
    assert "wrong-secret-value" not in result.output


@integration
def test_unknown_debt_says_debt_not_found(env: Env) -> None:
    result = run_cli(["archive", "nosuchdebt0001"], env.cli_env())
    assert result.exit_code == 1, result.output
    assert (
        "problem: ApiNotFoundError: getbill has no such resource (HTTP 404): Debt not found"
        in result.stdout
    )
    as_json = run_cli(["archive", "nosuchdebt0001", "--json"], env.cli_env())
    (debt, _summary) = json_lines(as_json.stdout)
    assert debt["error"]["api_message"] == "Debt not found"
    assert debt["error"]["message"].endswith("(HTTP 404): Debt not found")


@integration
def test_api_url_with_the_api_prefix_is_corrected(env: Env) -> None:
    cli_env = {**env.cli_env(), "GETBILL_API_URL": env.sim_url + "/external-api/v1/"}
    result = run_cli(["archive", env.debts()[0]], cli_env)
    assert result.exit_code == 0, result.output
    assert not env.sim.requests_to("/external-api/v1/external-api")


@integration
def test_unreachable_api_names_the_url(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("archiver.getbill.http.backoff_delay", lambda *a, **k: 0.0)
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli(["archive", env.debts()[0]], {**env.cli_env(), "GETBILL_API_URL": url})
    assert result.exit_code == 1, result.output
    assert f"cannot reach the getbill API at {url} (GETBILL_API_URL)" in result.stdout
    assert "failed 5 times in a row; last: ConnectError" in result.stdout


@pytest.mark.parametrize(
    "have,missing",
    [
        ("GETBILL_CLIENT_ID", "GETBILL_CLIENT_SECRET"),
        ("GETBILL_CLIENT_SECRET", "GETBILL_CLIENT_ID"),
    ],
)
def test_half_the_client_credentials_names_the_missing_variable(have: str, missing: str) -> None:
    env = {
        "GETBILL_CLIENT_ID": None,
        "GETBILL_CLIENT_SECRET": None,
        "GETBILL_TOKEN": None,
        have: "value",
        "ARCHIVER_BUCKET": "evidence",
    }
    result = run_cli(["archive", "d1"], env)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert f"{have} is set but {missing} is not" in line


@integration
def test_media_host_outside_the_allowlist_names_ARCHIVER_MEDIA_HOSTS(env: Env) -> None:
    cli_env = {**env.cli_env(), "ARCHIVER_MEDIA_HOSTS": "media.example.com"}
    result = run_cli(["archive", env.debts()[0]], cli_env)
    assert result.exit_code == 3, result.output  # partial: records stored, media listed
    assert "problem: MediaHostNotAllowedError" in result.stdout
    assert "(ARCHIVER_MEDIA_HOSTS: media.example.com)" in result.stdout


# ---------------------------------------------------------------------------- Ctrl-C: exit 130


@integration
def test_ctrl_c_exits_130_and_json_ends_with_an_interrupted_summary(env: Env) -> None:
    debts = env.debts()
    env.sim.config.delay_s = 0.2  # every API answer takes a while: the run is still going
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver", "archive", *debts, "--json"],
        cwd=ROOT,
        env={**os.environ, **env.cli_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that started pytest in the background may ignore SIGINT for its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # one debt done
        assert json.loads(first)["debt_id"] == debts[0], first
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = json_lines(first + rest)
    summary = lines[-1]["summary"]
    assert summary["interrupted"] is True and summary["status"] == "interrupted"
    assert (
        summary["debts"] == len(lines) - 1 and summary["not_done"] == len(debts) - summary["debts"]
    )
    assert summary["not_done"] >= 1
    assert "Traceback" not in err
    # The catalog's journal closes the run as interrupted too.
    runs = list(Catalog.open(env.config.catalog).db["runs"].rows)
    assert [r["status"] for r in runs] == ["interrupted"]


def test_ctrl_c_in_any_command_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(PolicyRegistry, "policies", interrupted)
    result = CliRunner().invoke(main, ["policies", "list"])
    assert result.exit_code == 130, result.output
    assert "interrupted (Ctrl-C)" in result.stderr and "Aborted" not in result.output


# ------------------------------------------------------------------- verify and status: answers


@integration
def test_verify_all_on_an_empty_bucket_says_0_debts(env: Env) -> None:
    result = run_cli(["verify", "--all"], env.cli_env())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"0 debts in bucket {env.store.bucket}"
    as_json = run_cli(["verify", "--all", "--json"], env.cli_env())
    assert json_lines(as_json.stdout) == [
        {
            "summary": {
                "bucket": env.store.bucket,
                "debts": 0,
                "with_problems": 0,
                "problems": 0,
                "repaired": 0,
            }
        }
    ]


@integration
def test_every_human_verify_ends_with_a_summary_line(env: Env) -> None:
    debts = env.debts()[:2]
    env.run(debts)
    result = run_cli(["verify", debts[0]], env.cli_env())
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"1 debt in bucket {env.store.bucket}: 1 OK, 0 with problems (0 problems)"
    )
    env.store.client.delete_object(
        Bucket=env.store.bucket, Key=f"debts/{debts[1]}/dossiers/00000001.pdf"
    )
    result = run_cli(["verify", "--all"], env.cli_env())
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[-1] == (
        f"2 debts in bucket {env.store.bucket}: 1 OK, 1 with problems (2 problems)"
    ), result.stdout  # the delete marker, and the dossier missing behind it


def test_status_json_on_an_empty_catalog_prints_an_empty_result(tmp_path: Path) -> None:
    Catalog.open(tmp_path / "empty.db").close()  # a catalog that indexes nothing yet
    result = run_cli(["status", "--json"], {"ARCHIVER_CATALOG": str(tmp_path / "empty.db")})
    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout) == [{"summary": {"debts": 0, "on_hold": 0}}]
    human = run_cli(["status"], {"ARCHIVER_CATALOG": str(tmp_path / "empty.db")})
    assert human.stdout.strip().splitlines()[-1] == "nothing archived yet"


# --------------------------------------------------------------------------------- dossier


@integration
def test_dossier_of_a_missing_sequence_names_the_manifests_that_exist(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    result = run_cli(["dossier", debt_id, "--sequence", "9", "-o", "x.pdf"], env.cli_env())
    assert result.exit_code == 2, result.output
    assert "NoSuchKey" not in result.output and "Traceback" not in result.output
    assert (
        f"debt {debt_id} has no manifest 9; it has manifest 1 "
        f"(latest: debts/{debt_id}/manifests/00000001.json)"
    ) in result.stderr


@integration
def test_dossier_of_a_debt_never_archived_says_so(env: Env) -> None:
    result = run_cli(["dossier", "neverarchived1", "-o", "x.pdf"], env.cli_env())
    assert result.exit_code == 1, result.output
    line = one_error_line(result)
    assert f"debt neverarchived1 has no manifest in bucket '{env.store.bucket}'" in line


@integration
def test_dossier_to_standard_output(env: Env) -> None:
    debt_id = env.debts()[0]
    env.run([debt_id])
    result = run_cli(["dossier", debt_id, "-o", "-", "--json"], env.cli_env())
    assert result.exit_code == 0, result.output
    stored = env.store.read_bytes(f"debts/{debt_id}/dossiers/00000001.pdf")
    assert result.stdout_bytes == stored
    info = json.loads(result.stderr)
    assert info["file"] == "-" and info["size"] == len(stored)
    human = run_cli(["dossier", debt_id, "-o", "-"], env.cli_env())
    assert human.stdout_bytes == stored
    assert human.stderr.startswith("standard output: ")
