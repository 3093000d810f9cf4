"""Time-stamping fixtures: local RFC 3161 TSAs over real HTTP (``openssl ts -reply``).

``tsa_authority``    a test root CA and its TSA, made once per session
``other_authority``  a second, unrelated CA and TSA (an "unknown TSA"), once per session
``tsa``              a :class:`LocalTsaServer` of ``tsa_authority`` on 127.0.0.1 (function)
``down_url``         the URL of a TSA that is down: a loopback port nothing listens on
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from archiver.devkit.tsa import LocalTsaServer, TestTsa, make_test_tsa

__all__ = ["down_url", "other_authority", "tsa", "tsa_authority"]


@pytest.fixture(scope="session")
def tsa_authority(tmp_path_factory: pytest.TempPathFactory) -> TestTsa:
    return make_test_tsa(tmp_path_factory.mktemp("tsa"), name="Test TSA")


@pytest.fixture(scope="session")
def other_authority(tmp_path_factory: pytest.TempPathFactory) -> TestTsa:
    return make_test_tsa(
        tmp_path_factory.mktemp("tsa-other"), name="Other TSA", ca_name="Other Root CA"
    )


@pytest.fixture
def tsa(tsa_authority: TestTsa) -> Iterator[LocalTsaServer]:
    with LocalTsaServer(tsa_authority) as server:
        yield server


@pytest.fixture
def down_url() -> str:
    with socket.socket() as sock:  # a free port, closed again: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"
