"""Keeping tests away from the developer's own configuration and data folders, and from
what an earlier test left in the process's logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from archiver.cli._common import LIBRARY_LOGGERS

__all__ = ["isolate_from_the_user", "logging_restored"]


def isolate_from_the_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The default catalog goes to a temp folder; no config file of the user is read, nothing
    is written to their data folder, and no AWS profile of theirs is used."""
    monkeypatch.setenv("ARCHIVER_CATALOG", str(tmp_path_factory.mktemp("cat") / "catalog.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@contextmanager
def logging_restored() -> Iterator[None]:
    """A CLI run in the test process sets the level of the root, ``archiver`` and library
    loggers (``configure_logging``) and adds a root handler: afterwards, the levels and root
    handlers there were before."""
    names = ("", "archiver", *LIBRARY_LOGGERS)
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    try:
        yield
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
