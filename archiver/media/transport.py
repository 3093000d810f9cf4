"""The HTTP client for media hosts: it connects only to addresses it has checked.

A host name on the allowlist says nothing about where it points: ``*.amazonaws.com`` or
``*.getbill.io`` may resolve to ``169.254.169.254`` (cloud metadata), ``10.x`` or loopback.
:func:`media_client` builds an ``httpx.Client`` whose connections are opened by
:class:`CheckedBackend`, which for every new connection

1. resolves the host once (:class:`SystemResolver` or an injected
   :class:`~archiver.media.types.Resolver`);
2. refuses the host if any address is internal (:func:`~archiver.media.urls.check_addresses`),
   raising :class:`~archiver.errors.MediaHostNotAllowedError`;
3. connects to one of exactly those addresses: there is no second lookup, so a DNS answer
   that changes between check and connect (DNS rebinding) cannot redirect the connection.

The URL, the ``Host`` header and TLS (SNI and certificate verification) keep the original
name: only the TCP connect uses the checked address. Redirect targets open connections the
same way. Proxies from the environment are not used: a proxy would resolve names itself.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from archiver.media.types import DownloadSettings, Resolver
from archiver.media.urls import check_addresses

__all__ = ["CheckedBackend", "SystemResolver", "media_client"]


class SystemResolver:
    """The operating system's resolver (``socket.getaddrinfo``), addresses in its order."""

    def resolve(self, host: str, port: int) -> list[str]:
        """The distinct IP addresses ``getaddrinfo`` gives for a TCP connection."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CheckedBackend(httpcore.NetworkBackend):
    """Opens TCP connections to checked addresses only (see the module docstring).

    ``inner`` makes the actual connection (default: httpcore's socket backend); it is always
    given an IP address, never a name.
    """

    def __init__(
        self,
        allowed_hosts: tuple[str, ...],
        resolver: Resolver | None = None,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.resolver: Resolver = resolver or SystemResolver()
        self.inner = inner or httpcore.SyncBackend()

    def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses to try for ``host``: an IP literal as is, a name resolved once.

        Raises :class:`MediaHostNotAllowedError` for an internal address and
        ``httpcore.ConnectError`` (retryable) when the name does not resolve.
        """
        host = host.strip("[]")
        try:
            addresses = [str(ipaddress.ip_address(host.split("%", 1)[0]))]
        except ValueError:
            try:
                addresses = self.resolver.resolve(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
        check_addresses(host, addresses, self.allowed_hosts)
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to the first checked address of ``host`` that answers."""
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self.addresses(host, port):
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # addresses() never returns an empty list
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("media is never fetched over a unix socket")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's own transport (request/response mapping, error translation) over a connection
    pool whose connections :class:`CheckedBackend` opens. httpx takes no network backend, so
    the pool it builds is replaced by the same pool with ours."""

    def __init__(self, backend: CheckedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def media_client(
    settings: DownloadSettings,
    *,
    verify: ssl.SSLContext | bool = True,
    backend: httpcore.NetworkBackend | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for :class:`~archiver.media.download.MediaDownloader` that connects
    only to checked addresses of ``settings.allowed_hosts`` (resolved by
    ``settings.resolver``). ``verify``: certificate checking, as in httpx (an SSL context
    trusting a test CA, say); ``backend`` opens the checked connections (tests record them).
    """
    ssl_context = (
        verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
    )
    checked = CheckedBackend(settings.allowed_hosts, settings.resolver, backend)
    return httpx.Client(
        transport=_CheckedTransport(checked, ssl_context), follow_redirects=False, trust_env=False
    )
