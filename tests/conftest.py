"""Shared fixtures. Each area keeps its fixtures in a ``fixtures_*.py`` module beside this file."""

import pytest
from fixtures_archive import *  # noqa: F401,F403
from fixtures_s3 import *  # noqa: F401,F403
from fixtures_sim import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def _catalog_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test writes a catalog into the working tree: the default goes to a temp folder."""
    monkeypatch.setenv("ARCHIVER_CATALOG", str(tmp_path_factory.mktemp("cat") / "catalog.db"))
