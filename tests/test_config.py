"""Configuration from the environment, and the policy it selects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archiver.config import DEFAULT_MEDIA_HOSTS, ArchiverConfig
from archiver.data import SHIPPED_POLICY_DIR
from archiver.errors import ConfigError
from archiver.wiring import configured_policy, open_store


def test_defaults_when_environment_is_empty() -> None:
    cfg = ArchiverConfig.from_env({})
    assert cfg.bucket is None
    assert cfg.catalog == Path("archiver-catalog.db")
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
