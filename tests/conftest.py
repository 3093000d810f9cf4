"""Shared fixtures. Each area keeps its fixtures in a ``fixtures_*.py`` module beside this file."""

import functools
import logging
from collections.abc import Iterator

import pytest
from fixtures_archive import *  # noqa: F401,F403
from fixtures_listen import *  # noqa: F401,F403
from fixtures_s3 import *  # noqa: F401,F403
from fixtures_sim import *  # noqa: F401,F403
from fixtures_speed import *  # noqa: F401,F403
from fixtures_tsa import *  # noqa: F401,F403

from archiver.cli._common import LIBRARY_LOGGERS
from archiver.media.types import DownloadSettings


@pytest.fixture(autouse=True)
def _catalog_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test writes a catalog into the working tree: the default goes to a temp folder. No
    test reads the developer's config file or writes to their data folder either."""
    monkeypatch.setenv("ARCHIVER_CATALOG", str(tmp_path_factory.mktemp("cat") / "catalog.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A CLI run in the test process sets the level of the root, ``archiver`` and library
    loggers (``configure_logging``); the next test starts from the levels and root handlers
    there were before, whatever order the tests run in (a DEBUG left on botocore would log
    every request body of the tests after it)."""
    names = ("", "archiver", *LIBRARY_LOGGERS)
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(autouse=True)
def _quick_media_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The media downloads a run sets up (``archiver.wiring``) pause 10-50 ms between tries,
    not 0.5-8 s: the tests of runs prove which tries are made and what a run makes of them,
    as the API settings' short backoff does for the API; the pauses themselves are proved by
    tests/test_download.py on its own settings."""
    quick = functools.partial(DownloadSettings, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
    monkeypatch.setattr("archiver.wiring.DownloadSettings", quick)
