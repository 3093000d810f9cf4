"""Shared fixtures. Each area keeps its fixtures in a ``fixtures_*.py`` module beside this file."""

import functools
from collections.abc import Iterator

import pytest
from fixtures_archive import *  # noqa: F401,F403
from fixtures_listen import *  # noqa: F401,F403
from fixtures_s3 import *  # noqa: F401,F403
from fixtures_sim import *  # noqa: F401,F403
from fixtures_speed import *  # noqa: F401,F403
from fixtures_tsa import *  # noqa: F401,F403
from isolation import isolate_from_the_user, logging_restored

from archiver.media.types import DownloadSettings


@pytest.fixture(autouse=True)
def _catalog_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test writes a catalog into the working tree: the default goes to a temp folder. No
    test reads the developer's config file or writes to their data folder either."""
    isolate_from_the_user(monkeypatch, tmp_path_factory)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Each test starts from the logging levels and root handlers there were before it,
    whatever order the tests run in (a DEBUG left on botocore by a CLI run would log every
    request of the tests after it)."""
    with logging_restored():
        yield


@pytest.fixture(autouse=True)
def _quick_media_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The media downloads a run sets up (``archiver.wiring``) pause 10-50 ms between tries,
    not 0.5-8 s: the tests of runs prove which tries are made and what a run makes of them,
    as the API settings' short backoff does for the API; the pauses themselves are proved by
    tests/test_download.py on its own settings."""
    quick = functools.partial(DownloadSettings, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
    monkeypatch.setattr("archiver.wiring.DownloadSettings", quick)
