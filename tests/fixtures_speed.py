"""Process-wide caches for what every test pays again and again without testing it.

The suite opens well over a thousand boto3 and httpx clients. Each new boto3 session parses
botocore's JSON models again (the S3 model and the endpoint rules: tens of milliseconds), and
each ``httpx.Client`` loads certifi's CA bundle into a new SSL context. Neither is what any
test is about, and neither changes within a test run: here both are made once per process.

``_shared_client_setup``  (session, autouse) botocore loaders share their parsed files; httpx's
                          default SSL context is made once (only for ``verify=True``, no
                          client certificate; any other call builds its own context as before)
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from typing import Any

import botocore.loaders
import httpx
import httpx._config
import httpx._transports.default
import pytest

__all__ = ["_shared_client_setup"]


class _SharedLoaderCache:
    """A botocore ``Loader._cache`` that all loaders with the same search paths share.

    botocore keys its cache by method and arguments only, so the search paths (boto3 appends
    its own after the loader is made) are added to the key here.
    """

    store: dict[tuple[Any, ...], Any] = {}

    def __init__(self, loader: botocore.loaders.Loader) -> None:
        self._loader = loader

    def _key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        return (tuple(self._loader.search_paths), key)

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return self._key(key) in self.store

    def __getitem__(self, key: tuple[Any, ...]) -> Any:
        return self.store[self._key(key)]

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        self.store[self._key(key)] = value


@pytest.fixture(scope="session", autouse=True)
def _shared_client_setup() -> Iterator[None]:
    original_init = botocore.loaders.Loader.__init__
    original_ssl = httpx._config.create_ssl_context
    contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}

    def loader_init(self: botocore.loaders.Loader, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._cache = _SharedLoaderCache(self)  # type: ignore[assignment]

    def create_ssl_context(
        verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is not True or cert is not None or not trust_env:
            return original_ssl(verify=verify, cert=cert, trust_env=trust_env)
        key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in contexts:
            contexts[key] = original_ssl(verify=verify, cert=cert, trust_env=trust_env)
        return contexts[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.loaders.Loader, "__init__", loader_init)
        for module in (httpx, httpx._config, httpx._transports.default):
            patch.setattr(module, "create_ssl_context", create_ssl_context)
        yield
