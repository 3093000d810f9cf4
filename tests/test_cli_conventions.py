"""Conventions people bring with them, end to end through the CLI: per-bucket catalogs in the
user's data folder, AWS CLI option names and a config file with profiles, -q/-v, `version`,
one way to name debts, init-bucket from ARCHIVER_BUCKET."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.retention import seed_debt
from fixtures_s3 import unique_bucket_name

from archiver.cli import main
from archiver.devkit.s3server import LocalS3Server
from archiver.retention.holds import hold_active
from archiver.store.objects import ObjectStore


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ARCHIVER_CATALOG: catalogs go to their default place, under this XDG_DATA_HOME."""
    monkeypatch.delenv("ARCHIVER_CATALOG", raising=False)
    monkeypatch.delenv("ARCHIVER_BUCKET", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "getbill-archiver"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_status_never_creates_a_catalog_and_bucket_precedence(
    data_home: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "typo.db"
    r = CliRunner().invoke(main, ["status", "--catalog", str(missing)])
    assert r.exit_code == 2 and f"no catalog at {missing}" in r.output
    assert not missing.exists()

    config = tmp_path / "config.toml"
    config.write_text('[default]\nbucket = "file-bucket"\n[prod]\nbucket = "prod-bucket"\n')
    runner = CliRunner()

    def catalog_named(*args: str, env: dict[str, str] | None = None) -> str:
        r = runner.invoke(main, ["--config", str(config), "status", *args], env=env)
        assert r.exit_code == 2, r.output
        return r.output.split("no catalog at ", 1)[1].split(":")[0]

    # default < file < environment < flag; the profile picks the file's section.
    assert catalog_named() == str(data_home / "file-bucket.db")
    assert catalog_named("--profile", "prod") == str(data_home / "prod-bucket.db")
    assert catalog_named(env={"AWS_PROFILE": "prod"}) == str(data_home / "prod-bucket.db")
    assert catalog_named(env={"ARCHIVER_BUCKET": "env-bucket"}) == str(data_home / "env-bucket.db")
    flagged = catalog_named("--bucket", "flag-bucket", env={"ARCHIVER_BUCKET": "env-bucket"})
    assert flagged == str(data_home / "flag-bucket.db")
    assert not data_home.exists()  # reading commands create nothing, not even the folder
    r = runner.invoke(main, ["--config", str(tmp_path / "absent.toml"), "status"])
    assert r.exit_code == 2 and "does not exist" in r.output


@pytest.mark.integration
def test_reindex_makes_the_buckets_own_catalog_and_refuses_another_buckets(
    data_home: Path, s3_env: dict[str, str], locked_bucket: ObjectStore, s3_client: object
) -> None:
    seed_debt(locked_bucket, "D-1", manifests=1)
    other = ObjectStore(s3_client, unique_bucket_name("other"))
    other.create_bucket()
    seed_debt(other, "D-9", manifests=1)
    bucket = locked_bucket.bucket
    own = data_home / f"{bucket}.db"

    r = run("reindex", "--bucket", bucket, "--json")
    assert r.exit_code == 0, r.output
    assert own.exists() and json.loads(r.output)["manifests"] == 1
    r = run("status", "--bucket", bucket)
    assert r.exit_code == 0, r.output
    first, *rows = r.output.splitlines()
    assert first == f"bucket {bucket}, catalog {own}"
    assert rows[0].startswith("D-1: manifest 1")
    r = run("status", "--bucket", bucket, "--json")
    assert json.loads(r.output.splitlines()[0])["bucket"] == bucket

    # The other bucket's reindex into this catalog: refused unless asked.
    r = run("reindex", "--bucket", other.bucket, "--catalog", str(own))
    assert r.exit_code == 2 and f"indexes bucket '{bucket}'" in r.output
    r = run("status", "--bucket", other.bucket, "--catalog", str(own))
    assert r.exit_code == 2
    r = run("reindex", "--bucket", other.bucket, "--catalog", str(own), "--switch-bucket")
    assert r.exit_code == 0, r.output
    r = run("status", "--catalog", str(own))
    lines = r.output.splitlines()
    assert lines[0] == f"bucket {other.bucket}, catalog {own}"
    assert [line.split(":")[0] for line in lines[1:]] == ["D-9"]  # nothing of the first bucket


@pytest.mark.integration
def test_profile_endpoint_and_region_reach_s3(
    data_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_server: LocalS3Server,
    locked_bucket: ObjectStore,
) -> None:
    seed_debt(locked_bucket, "D-1", manifests=1)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    # Credentials of a named AWS profile, as the AWS CLI keeps them.
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[staging]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    # The archiver side of the same profile: where and which bucket.
    config = tmp_path / "config.toml"
    config.write_text(
        f'[staging]\nendpoint_url = "{s3_server.endpoint_url}"\nbucket = "{locked_bucket.bucket}"\n'
        'region = "us-east-1"\n'
    )
    monkeypatch.setenv("ARCHIVER_CONFIG", str(config))

    r = run("reindex", "--profile", "staging", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["manifests"] == 1
    # The flag wins over the file: nothing listens there, so the command fails (exit 1).
    r = run("reindex", "--profile", "staging", "--endpoint-url", "http://127.0.0.1:9")
    assert r.exit_code == 1, r.output
    r = run("reindex", "--profile", "nope", "--bucket", locked_bucket.bucket)
    assert r.exit_code == 2 and "AWS profile 'nope' (--profile) is not defined" in r.output
    r = run(
        "reindex",
        "--bucket",
        locked_bucket.bucket,
        "--endpoint-url",
        s3_server.endpoint_url,
        "--region",
        "us-east-1",
        env={"AWS_PROFILE": "staging", "ARCHIVER_CONFIG": ""},
    )
    assert r.exit_code == 0, r.output


@pytest.mark.integration
def test_hold_and_release_take_debt_ids_and_a_debts_file(
    s3_env: dict[str, str], locked_bucket: ObjectStore, tmp_path: Path
) -> None:
    for debt in ("D-1", "D-2", "D-3"):
        seed_debt(locked_bucket, debt, manifests=1)
    listed = tmp_path / "disputed.txt"
    listed.write_text("# disputed this week\nD-2\nD-3\nD-1\n")
    base = ["--bucket", locked_bucket.bucket, "--reason", "dispute", "--actor", "amy", "--json"]
    r = run("hold", "D-1", "--debts-file", str(listed), *base)
    assert r.exit_code == 0, r.output
    done = [json.loads(line)["debt_id"] for line in r.output.splitlines()]
    assert done == ["D-1", "D-2", "D-3"]  # arguments first, then the file, no duplicates
    assert all(hold_active(locked_bucket, d) for d in done)
    r = run("release", "D-2", "D-3", *base)
    assert r.exit_code == 0, r.output
    assert [hold_active(locked_bucket, d) for d in done] == [True, False, False]
    r = run("hold", *base)
    assert r.exit_code == 2 and "DEBT_ID" in r.output


@pytest.mark.integration
def test_init_bucket_reads_archiver_bucket(s3_env: dict[str, str], s3_client: object) -> None:
    name = unique_bucket_name("init")
    r = run("init-bucket", env={"ARCHIVER_BUCKET": name})
    assert r.exit_code == 0, r.output
    assert f"Bucket {name} is ready" in r.output
    ObjectStore(s3_client, name).check_bucket()
    r = run("init-bucket", env={"ARCHIVER_BUCKET": ""})
    assert r.exit_code == 2 and "ARCHIVER_BUCKET" in r.output


def test_version_lists_tool_renderer_python_and_libraries() -> None:
    r = CliRunner().invoke(main, ["version", "--json"])
    assert r.exit_code == 0, r.output
    found = json.loads(r.output)
    assert set(found) == {"archiver", "renderer", "python", "boto3", "reportlab", "pikepdf"}
    assert all(v and v != "not installed" for v in found.values())
    text = CliRunner().invoke(main, ["version"]).output
    assert text.splitlines()[1].split() == ["renderer", found["renderer"]]


@pytest.mark.parametrize(
    "args,env,level",
    [
        ([], {}, logging.WARNING),
        (["-v"], {}, logging.INFO),
        (["-vv"], {}, logging.DEBUG),
        (["-q"], {}, logging.ERROR),
        (["-v"], {"ARCHIVER_LOG_LEVEL": "ERROR"}, logging.INFO),  # a flag beats the env
        (["--log-level", "DEBUG", "-q"], {}, logging.DEBUG),  # the explicit level wins
    ],
)
def test_verbose_and_quiet_set_the_log_level(
    args: list[str], env: dict[str, str], level: int
) -> None:
    r = CliRunner().invoke(main, [*args, "version"], env=env)
    assert r.exit_code == 0, r.output
    assert logging.getLogger("archiver").level == level
    assert logging.getLogger("botocore").level == level


def test_quiet_and_verbose_together_is_a_usage_error() -> None:
    r = CliRunner().invoke(main, ["-q", "-v", "version"])
    assert r.exit_code == 2 and "do not go together" in r.output
