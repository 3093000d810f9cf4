"""Configuration from the environment and the config file, and the policy it selects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archiver.config import (
    DEFAULT_MEDIA_HOSTS,
    ArchiverConfig,
    config_file_path,
    layered_env,
    read_config_file,
)
from archiver.data import SHIPPED_POLICY_DIR
from archiver.errors import ConfigError
from archiver.wiring import configured_policy, open_store


def test_defaults_when_environment_is_empty() -> None:
    cfg = ArchiverConfig.from_env({})
    assert cfg.bucket is None
    assert cfg.catalog is None
    assert cfg.media_hosts == DEFAULT_MEDIA_HOSTS
    assert cfg.policy == "default"
    assert configured_policy(cfg).name == "default"


def test_environment_is_read() -> None:
    cfg = ArchiverConfig.from_env(
        {
            "ARCHIVER_BUCKET": "evidence",
            "ARCHIVER_CATALOG": "/tmp/c.db",
            "ARCHIVER_MEDIA_HOSTS": " media.example.com , *.cdn.example.com ,",
            "ARCHIVER_POLICY": "uk-fca",
        }
    )
    assert cfg.bucket == "evidence"
    assert cfg.catalog == Path("/tmp/c.db")
    assert cfg.media_hosts == ("media.example.com", "*.cdn.example.com")
    assert configured_policy(cfg).name == "uk-fca"


def test_policy_dir_shadows_shipped_policies(tmp_path: Path) -> None:
    shipped = (Path(__file__).parent.parent / "retention_policies" / "default.toml").read_text()
    custom = shipped.replace('title = "', 'title = "ACME copy: ', 1)
    (tmp_path / "default.toml").write_text(custom, encoding="utf-8")
    cfg = ArchiverConfig.from_env({"ARCHIVER_POLICY_DIR": str(tmp_path)})
    policy = configured_policy(cfg)
    assert policy.title.startswith("ACME copy: ")
    assert policy.source_path == tmp_path / "default.toml"


def test_policy_registry_searches_user_dirs_in_order_then_the_shipped_ones(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    cfg = ArchiverConfig.from_env({"ARCHIVER_POLICY_DIR": f"{first}{os.pathsep}{second}"})
    assert cfg.policy_dirs == (first, second)
    assert cfg.policy_registry().dirs == (first, second, SHIPPED_POLICY_DIR)
    assert ArchiverConfig.from_env({}).policy_registry().dirs == (SHIPPED_POLICY_DIR,)


def test_unknown_policy_and_missing_bucket_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown retention policy"):
        configured_policy(ArchiverConfig(policy="nope"))
    with pytest.raises(ConfigError, match="ARCHIVER_BUCKET"):
        open_store(None)


# --------------------------------------------------------------------------- the config file

FILE = """
[default]
bucket = "file-bucket"
endpoint_url = "http://127.0.0.1:8333"
region = "eu-west-3"
media_hosts = ["media.example.com", "*.cdn.example.com"]
policy_dir = ["/etc/archiver/policies", "/srv/policies"]

[prod]
bucket = "prod-evidence"
max_media_bytes = 1000
"""


def test_config_file_sections_are_profiles(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FILE, encoding="utf-8")
    default = read_config_file(path, "default")
    assert default["ARCHIVER_BUCKET"] == "file-bucket"
    assert default["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:8333"
    assert default["ARCHIVER_MEDIA_HOSTS"] == "media.example.com,*.cdn.example.com"
    assert default["ARCHIVER_POLICY_DIR"] == f"/etc/archiver/policies{os.pathsep}/srv/policies"
    assert read_config_file(path, "prod") == {
        "ARCHIVER_BUCKET": "prod-evidence",
        "ARCHIVER_MAX_MEDIA_BYTES": "1000",
    }
    assert read_config_file(path, "staging") == {}  # no section: nothing from the file
    assert read_config_file(tmp_path / "absent.toml", "default") == {}
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "absent.toml", "default", required=True)


def test_environment_wins_over_the_file_and_the_file_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FILE, encoding="utf-8")
    file_values = read_config_file(path, "default")
    cfg = ArchiverConfig.from_env(layered_env({}, file_values))
    assert (cfg.bucket, cfg.endpoint_url, cfg.region) == (
        "file-bucket",
        "http://127.0.0.1:8333",
        "eu-west-3",
    )
    assert cfg.policy == "default"  # neither set: the default
    env = {"ARCHIVER_BUCKET": "env-bucket", "AWS_ENDPOINT_URL": "http://env:9000"}
    cfg = ArchiverConfig.from_env(layered_env(env, file_values))
    # AWS_ENDPOINT_URL (any S3 endpoint variable) wins over the file's endpoint_url.
    assert (cfg.bucket, cfg.endpoint_url, cfg.region) == (
        "env-bucket",
        "http://env:9000",
        "eu-west-3",
    )


def test_unknown_settings_bad_toml_and_readable_secrets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[default]\nbuckett = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting.*buckett"):
        read_config_file(path, "default")
    path.write_text("[default\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(path, "default")
    path.write_text('[default]\ngetbill_client_secret = "s3cr3t"\n', encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        read_config_file(path, "default")
    assert "s3cr3t" not in str(caught.value)
    path.chmod(0o600)
    assert read_config_file(path, "default") == {"GETBILL_CLIENT_SECRET": "s3cr3t"}


def test_catalog_defaults_to_the_buckets_own_under_xdg_data_home(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "ARCHIVER_BUCKET": "evidence"}
    cfg = ArchiverConfig.from_env(env)
    assert cfg.catalog_path() == tmp_path / "data" / "getbill-archiver" / "evidence.db"
    other = ArchiverConfig.from_env({**env, "ARCHIVER_BUCKET": "other"})
    assert other.catalog_path() != cfg.catalog_path()
    # Without XDG_DATA_HOME (or with a relative one, which the XDG spec says to ignore).
    home = ArchiverConfig.from_env(
        {"HOME": str(tmp_path), "XDG_DATA_HOME": "rel", "ARCHIVER_BUCKET": "b"}
    )
    assert home.catalog_path() == tmp_path / ".local" / "share" / "getbill-archiver" / "b.db"
    assert ArchiverConfig.from_env({**env, "ARCHIVER_CATALOG": "/x.db"}).catalog_path() == Path(
        "/x.db"
    )
    with pytest.raises(ConfigError, match="--catalog"):
        ArchiverConfig.from_env({}).catalog_path()
    config_home = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert config_file_path(config_home) == tmp_path / "cfg" / "getbill-archiver" / "config.toml"
    assert config_file_path({**config_home, "ARCHIVER_CONFIG": "/etc/a.toml"}) == Path(
        "/etc/a.toml"
    )


def test_multipart_threshold_reaches_the_store() -> None:
    from archiver.store.types import DEFAULT_MULTIPART_THRESHOLD
    from archiver.wiring import storage_settings

    assert ArchiverConfig.from_env({}).multipart_threshold == DEFAULT_MULTIPART_THRESHOLD
    cfg = ArchiverConfig.from_env({"ARCHIVER_MULTIPART_THRESHOLD": str(16 * 1024 * 1024)})
    assert storage_settings(cfg).multipart_threshold == 16 * 1024 * 1024
    with pytest.raises(ConfigError, match="ARCHIVER_MULTIPART_THRESHOLD"):
        ArchiverConfig.from_env({"ARCHIVER_MULTIPART_THRESHOLD": "lots"})
