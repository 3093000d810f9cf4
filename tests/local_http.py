"""A small HTTP(S) server on a loopback address for tests that need a real socket.

``LocalServer(routes)`` serves ``GET`` paths (query ignored) with handler functions that write
the whole response themselves (status line, headers, body: any framing, any lie), records
each request it sees, and with ``tls=`` speaks HTTPS (:func:`make_tls` makes a test CA and a
server certificate for chosen names). Used as a context manager; nothing leaves loopback.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["LocalServer", "Route", "Seen", "make_tls", "send", "stream_forever"]

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]  # lower-cased names


class LocalServer:
    """Serve ``routes`` on ``host`` (a random port) until the ``with`` block ends."""

    def __init__(
        self,
        routes: dict[str, Route],
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.routes = routes
        self.requests: list[Seen] = []
        self.sni_names: list[str | None] = []
        self.bytes_sent = 0  # by stream_forever
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                server.requests.append(Seen(path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(path)
                if route is None:
                    send(self, 404, {}, b"no such route")
                    return
                # The client hanging up is what the refusing tests expect.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            tls.sni_callback = self._record_sni
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.host = host
        self.port = self._httpd.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.base_url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _record_sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni_names.append(name)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def send(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
) -> None:
    """A complete response with a Content-Length (unless ``headers`` sets framing itself)."""
    handler.send_response(status)
    if not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers = {**headers, "Content-Length": str(len(body))}
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


def stream_forever(
    server: LocalServer,
    pieces: Iterator[bytes],
    headers: dict[str, str],
    *,
    chunked: bool,
    stop_after: int = 512 * 1024 * 1024,
) -> Route:
    """A route sending ``pieces`` with no Content-Length until the client hangs up (or, as a
    safety net for a client that never does, ``stop_after`` bytes): chunked, or delimited by
    closing the connection."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        for name, value in headers.items():
            handler.send_header(name, value)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        while server.bytes_sent < stop_after:
            piece = next(pieces)
            if chunked:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                handler.wfile.write(piece)
            server.bytes_sent += len(piece)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")

    return route


def make_tls(directory: Path, names: list[str]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """``(server context, client context)``: a fresh test CA, a server certificate for
    ``names`` signed by it, and a client context that trusts only that CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "archiver test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_file, key_file, ca_file = (directory / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca_file.write_bytes(ca.public_bytes(pem))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(ca_file))
    return server, client
