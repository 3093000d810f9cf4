"""Where media connections go: only to checked public addresses, resolved once.

A resolver the test controls answers for the host names; a recording network backend
stands in for the internet: it routes one public-looking address to a test server on
127.0.0.1 and refuses every other address without connecting, so no packet ever leaves
loopback. Refused hosts are refused before anything is connected.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpcore
import pytest
from local_http import LocalServer, make_tls, send

from archiver.errors import MediaError, MediaHostNotAllowedError
from archiver.getbill.records import MediaRef
from archiver.media.download import MediaDownloader
from archiver.media.transport import CheckedBackend, SystemResolver, media_client
from archiver.media.types import DownloadedMedia, DownloadSettings
from archiver.media.urls import check_addresses

pytestmark = pytest.mark.integration

SIG = "X-Amz-Signature=0123456789abcdef"
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\xc0" + bytes(413)
PUBLIC = "93.184.215.14"  # public-looking; only ever "reached" through the Internet below
DEFAULT_HOSTS = ("*.amazonaws.com", "*.getbill.io")


class Resolver:
    """Answers from a script: ``answers[host]`` is a list of answers, one per lookup (the
    last repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        script = self.answers.get(host)
        if script is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return script[min(len(self.lookups_of(host)), len(script)) - 1]

    def lookups_of(self, host: str) -> list[str]:
        return [h for h in self.lookups if h == host]


class Internet(httpcore.NetworkBackend):
    """The network under the checked backend: records every address it is asked for, routes
    ``routes[address]`` to a loopback port and refuses anything else without connecting."""

    def __init__(self, routes: dict[str, int] | None = None) -> None:
        self.routes = routes or {}
        self.asked: list[str] = []
        self.real = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.asked.append(host)
        if host in self.routes:
            return self.real.connect_tcp("127.0.0.1", self.routes[host], timeout)
        if host in ("127.0.0.1", "::1"):
            return self.real.connect_tcp(host, port, timeout)
        raise httpcore.ConnectError(f"test network: no route to {host}")


def downloader(
    resolver: Any,
    internet: Internet | None = None,
    *,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    verify: ssl.SSLContext | bool = True,
    tmp_path: Path,
    **settings: Any,
) -> MediaDownloader:
    cfg = DownloadSettings(
        allowed_hosts=hosts, resolver=resolver, temp_dir=tmp_path, max_attempts=2, **settings
    )
    http = media_client(cfg, verify=verify, backend=internet)
    return MediaDownloader(http, cfg, sleep=lambda s: None)


def media_ref(url: str) -> MediaRef:
    expires = datetime.fromtimestamp(4_000_000_000, UTC)
    return MediaRef("debt1", "fu1", "audio", url, expires)


def _no_refresh(ref: MediaRef) -> MediaRef:
    raise AssertionError("no refresh expected")


def mp3_route(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, {"Content-Type": "audio/mpeg"}, MP3)


# ---------------------------------------------------------------------------------------------
# names on the allowlist that point inside


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("169.254.169.254.getbill.io", "169.254.169.254", "link-local"),
        ("bucket.s3.amazonaws.com", "10.1.2.3", "private"),
        ("bucket.s3.amazonaws.com", "127.0.0.1", "loopback"),
        ("media.getbill.io", "::1", "loopback"),
        ("media.getbill.io", "fd00::1", "private"),
        ("media.getbill.io", "::ffff:192.168.1.1", "private"),
        ("media.getbill.io", "224.0.0.1", "multicast"),
        ("media.getbill.io", "0.0.0.0", "unspecified"),
        ("media.getbill.io", "240.0.0.1", "reserved"),
        ("media.getbill.io", "100.64.0.1", "non-global"),
    ],
)
def test_allowlisted_name_resolving_inside_is_refused_unconnected(
    tmp_path: Path, host: str, address: str, kind: str
) -> None:
    resolver = Resolver({host: [[address]]})
    internet = Internet()
    d = downloader(resolver, internet, tmp_path=tmp_path)
    with pytest.raises(MediaHostNotAllowedError) as info:
        d.download(media_ref(f"https://{host}/call.mp3?{SIG}"), _no_refresh)
    message = str(info.value)
    assert f"resolves to {kind} address" in message
    assert "ARCHIVER_MEDIA_HOSTS: *.amazonaws.com, *.getbill.io" in message
    assert info.value.context["host"] == host
    assert info.value.context["followup_id"] == "fu1"
    assert SIG not in str(info.value.to_dict())
    assert internet.asked == []  # nothing connected
    assert resolver.lookups == [host]  # refused outright: not retried


def test_one_inside_address_among_public_ones_refuses_the_name(tmp_path: Path) -> None:
    resolver = Resolver({"media.getbill.io": [[PUBLIC, "10.0.0.7"]]})
    internet = Internet()
    d = downloader(resolver, internet, tmp_path=tmp_path)
    with pytest.raises(MediaHostNotAllowedError, match="private address 10.0.0.7"):
        d.download(media_ref(f"https://media.getbill.io/a.mp3?{SIG}"), _no_refresh)
    assert internet.asked == []


def test_internal_ip_literal_on_the_allowlist_is_refused(tmp_path: Path) -> None:
    resolver = Resolver({})
    internet = Internet()
    d = downloader(resolver, internet, hosts=("10.0.0.5",), tmp_path=tmp_path)
    with pytest.raises(MediaHostNotAllowedError, match="private address 10.0.0.5"):
        d.download(media_ref(f"https://10.0.0.5/a.mp3?{SIG}"), _no_refresh)
    assert internet.asked == [] and resolver.lookups == []


def test_wildcard_matching_a_loopback_name_is_refused(tmp_path: Path) -> None:
    """``local*`` matches ``localhost`` by name, but loopback needs the exact name: no request
    reaches the server listening there (the system resolver answers)."""
    with LocalServer({"/a.mp3": mp3_route}) as server:
        d = downloader(None, hosts=("local*",), tmp_path=tmp_path)
        with pytest.raises(MediaHostNotAllowedError, match="loopback address"):
            d.download(media_ref(f"http://localhost:{server.port}/a.mp3"), _no_refresh)
    assert server.requests == []


def test_redirect_to_a_name_resolving_inside_is_refused(tmp_path: Path) -> None:
    target = "https://evil.getbill.io/latest/meta-data/"

    def redirect(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 302, {"Location": target}, b"")

    resolver = Resolver({"evil.getbill.io": [["169.254.169.254"]]})
    with LocalServer({"/a.mp3": redirect}) as server:
        d = downloader(resolver, hosts=("127.0.0.1", "*.getbill.io"), tmp_path=tmp_path)
        with pytest.raises(MediaHostNotAllowedError, match="link-local address 169.254.169.254"):
            d.download(media_ref(f"{server.base_url}/a.mp3?{SIG}"), _no_refresh)
    assert [r.path for r in server.requests] == ["/a.mp3"]  # once: refused, not retried
    assert resolver.lookups == ["evil.getbill.io"]


def test_unresolvable_name_is_a_retried_transport_error(tmp_path: Path) -> None:
    resolver = Resolver({})
    internet = Internet()
    d = downloader(resolver, internet, tmp_path=tmp_path)
    with pytest.raises(MediaError, match="cannot resolve 'nowhere.getbill.io'") as info:
        d.download(media_ref(f"https://nowhere.getbill.io/a.mp3?{SIG}"), _no_refresh)
    assert type(info.value) is MediaError
    assert resolver.lookups == ["nowhere.getbill.io"] * 2  # max_attempts
    assert internet.asked == []


# ---------------------------------------------------------------------------------------------
# DNS rebinding: the connection goes to the address that was checked


def test_connection_goes_to_the_checked_address_only(tmp_path: Path) -> None:
    """The name first resolves to a public address, then (rebinding) to loopback. The one
    connection goes to the public address checked for it, with Host, SNI and certificate
    checking for the name; the next connection looks up again, gets loopback, and is refused
    before connecting: the server on loopback never sees that request."""
    host = "media.getbill.io"
    server_tls, client_tls = make_tls(tmp_path, [host])
    resolver = Resolver({host: [[PUBLIC], ["127.0.0.1"]]})
    with LocalServer({"/call.mp3": mp3_route}, tls=server_tls) as server:
        internet = Internet({PUBLIC: server.port})
        d = downloader(resolver, internet, verify=client_tls, tmp_path=tmp_path)
        url = f"https://{host}:{server.port}/call.mp3?{SIG}"
        media = d.download(media_ref(url), _no_refresh)
        assert isinstance(media, DownloadedMedia) and media.path.read_bytes() == MP3
        assert resolver.lookups == [host]  # checked and connected on one answer
        assert internet.asked == [PUBLIC]
        assert server.sni_names == [host]
        assert server.requests[0].headers["host"] == f"{host}:{server.port}"

        # The server closed that connection: the next download opens a new one.
        with pytest.raises(MediaHostNotAllowedError, match="loopback address 127.0.0.1"):
            d.download(media_ref(url), _no_refresh)
        assert resolver.lookups == [host, host]
        assert internet.asked == [PUBLIC]  # loopback was never connected
        assert len(server.requests) == 1


def test_certificate_still_checked_for_the_name(tmp_path: Path) -> None:
    """Connecting to a pinned address does not weaken TLS: a certificate for another name
    fails the handshake."""
    server_tls, client_tls = make_tls(tmp_path, ["other.example.com"])
    resolver = Resolver({"media.getbill.io": [[PUBLIC]]})
    with LocalServer({"/call.mp3": mp3_route}, tls=server_tls) as server:
        internet = Internet({PUBLIC: server.port})
        d = downloader(resolver, internet, verify=client_tls, tmp_path=tmp_path)
        with pytest.raises(MediaError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            d.download(
                media_ref(f"https://media.getbill.io:{server.port}/call.mp3?{SIG}"), _no_refresh
            )
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# local testing: the exact loopback host on the allowlist


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_exact_loopback_host_on_the_allowlist_still_works(tmp_path: Path, name: str) -> None:
    with LocalServer({"/a.mp3": mp3_route}) as server:
        d = downloader(None, hosts=(name,), tmp_path=tmp_path)
        media = d.download(media_ref(f"http://{name}:{server.port}/a.mp3?{SIG}"), _no_refresh)
    assert media.path.read_bytes() == MP3
    assert len(server.requests) == 1


def test_simulator_media_over_the_checked_client(sim_server: Any, tmp_path: Path) -> None:
    """What the simulator-based runs use: allowlist ``127.0.0.1``, the production client."""
    import httpx

    from archiver.getbill.records import Followup

    sim = sim_server.simulator
    fid = next(
        f
        for debt in sim.debt_ids()
        for f in sim.followup_ids(debt)
        if "audio" in sim.media_kinds(f)
    )
    with httpx.Client(
        base_url=sim_server.base_url, headers={"Authorization": "Bearer sim-static-token"}
    ) as api:
        record = api.get(f"/external-api/v1/followups/{fid}").json()["data"]
    ref = next(m for m in Followup.from_record(record).media() if m.kind == "audio")
    d = downloader(SystemResolver(), hosts=("127.0.0.1",), tmp_path=tmp_path)
    media = d.download(ref, _no_refresh)
    assert media.sha256 == sim.media_sha256(fid, "audio")


# ---------------------------------------------------------------------------------------------
# the address rule itself (pure)


def test_address_rule() -> None:
    check_addresses("media.getbill.io", [PUBLIC, "2606:4700::1"], DEFAULT_HOSTS)
    check_addresses("LOCALHOST.", ["127.0.0.2", "::1"], ("localhost",))
    with pytest.raises(MediaHostNotAllowedError, match="private"):
        check_addresses("localhost", ["10.0.0.1"], ("localhost",))  # only loopback is excused
    with pytest.raises(MediaHostNotAllowedError, match="loopback"):
        check_addresses("localhost", ["127.0.0.1"], ("*",))
    with pytest.raises(MediaHostNotAllowedError, match="no address"):
        check_addresses("media.getbill.io", [], DEFAULT_HOSTS)
    with pytest.raises(MediaHostNotAllowedError, match="not an IP address"):
        check_addresses("media.getbill.io", ["not-an-ip"], DEFAULT_HOSTS)


def test_backend_checks_before_connecting() -> None:
    internet = Internet()
    backend = CheckedBackend(DEFAULT_HOSTS, Resolver({"a.getbill.io": [["10.9.9.9"]]}), internet)
    with pytest.raises(MediaHostNotAllowedError):
        backend.connect_tcp("a.getbill.io", 443)
    with pytest.raises(httpcore.ConnectError, match="unix socket"):
        backend.connect_unix_socket("/run/x.sock")
    assert internet.asked == []
