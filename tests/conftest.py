"""Shared fixtures. Each area keeps its fixtures in a ``fixtures_*.py`` module beside this file."""

import pytest
from fixtures_archive import *  # noqa: F401,F403
from fixtures_listen import *  # noqa: F401,F403
from fixtures_s3 import *  # noqa: F401,F403
from fixtures_sim import *  # noqa: F401,F403
from fixtures_tsa import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def _catalog_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test writes a catalog into the working tree: the default goes to a temp folder. No
    test reads the developer's config file or writes to their data folder either."""
    monkeypatch.setenv("ARCHIVER_CATALOG", str(tmp_path_factory.mktemp("cat") / "catalog.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
