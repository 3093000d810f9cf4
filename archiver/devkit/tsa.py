"""A local RFC 3161 time-stamping authority for tests, demos and development.

``make_test_tsa(folder)`` makes a throwaway root CA and a TSA certificate under it (EC P-256,
the TSA's with the critical ``timeStamping`` extended key usage RFC 3161 requires) with the
``openssl`` command, and the ``openssl ts`` configuration that signs with them.
``LocalTsaServer(authority)`` answers ``POST application/timestamp-query`` on 127.0.0.1 with
``openssl ts -reply``: the real OpenSSL TSA, over real HTTP, and never a public TSA.

    authority = make_test_tsa(tmp / "tsa")
    with LocalTsaServer(authority) as tsa:
        env = {"ARCHIVER_TSA_URL": tsa.url, "ARCHIVER_TSA_CA": str(authority.ca_pem)}

``refuse`` makes the server answer every query with a granted-nothing ``rejection``; it counts
the queries it answered (``queries``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from archiver.devkit.background import BackgroundServer
from archiver.errors import ConfigError

__all__ = ["REJECTION", "LocalTsaServer", "TestTsa", "make_test_tsa", "openssl_binary"]

# A TimeStampResp with PKIStatus rejection (2) and no token: SEQUENCE { SEQUENCE { INTEGER 2 } }
REJECTION = bytes.fromhex("3005300302 0102".replace(" ", ""))

_EXTENSIONS = """\
[tsa_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# The signer's certificate alone goes in the token (``certs`` unset): the root is the
# verifier's to hold, which is the point of a trust anchor.
_TS_CONFIG = """\
[tsa]
default_tsa = tsa_config1
[tsa_config1]
dir = {folder}
serial = {folder}/serial
crypto_device = builtin
signer_cert = {folder}/tsa.pem
signer_key = {folder}/tsa.key
signer_digest = sha256
default_policy = {policy}
other_policies = 1.3.6.1.4.1.99999.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

TEST_POLICY = "1.3.6.1.4.1.99999.1.1"


def openssl_binary() -> str:
    """The ``openssl`` command (:class:`ConfigError` when it is not installed)."""
    found = shutil.which("openssl")
    if found is None:
        raise ConfigError("the local TSA needs the openssl command: install OpenSSL")
    return found


def _openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        [openssl_binary(), *args], cwd=cwd, input=stdin, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(
            f"openssl {args[0]} failed: {done.stderr.decode(errors='replace').strip()[:400]}"
        )
    return done.stdout


@dataclass(frozen=True)
class TestTsa:
    """A test CA and its TSA in ``folder``: ``ca_pem`` is what verifiers trust
    (``ARCHIVER_TSA_CA``), ``config`` the ``openssl ts`` configuration that signs."""

    __test__ = False  # not a pytest test class, whatever its name

    folder: Path
    name: str
    ca_pem: Path
    tsa_pem: Path
    config: Path
    policy: str = TEST_POLICY


def make_test_tsa(
    folder: Path, *, name: str = "Test TSA", ca_name: str = "Test TSA Root CA", days: int = 3650
) -> TestTsa:
    """Make a root CA and a TSA certificate it signs in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days),
        "-subj", f"/CN={ca_name}/O=getbill-archiver tests",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", "tsa.key", "-out", "tsa.csr",
        "-subj", f"/CN={name}/O=getbill-archiver tests",
        cwd=folder,
    )  # fmt: skip
    (folder / "ext.cnf").write_text(_EXTENSIONS)
    _openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tsa.pem", "-days", str(days),
        "-extfile", "ext.cnf", "-extensions", "tsa_ext",
        cwd=folder,
    )  # fmt: skip
    (folder / "serial").write_text("01\n")
    config = folder / "ts.cnf"
    config.write_text(_TS_CONFIG.format(folder=folder, policy=TEST_POLICY))
    return TestTsa(folder, name, folder / "ca.pem", folder / "tsa.pem", config)


class LocalTsaServer(BackgroundServer):
    """``authority``'s TSA over HTTP on ``host`` (a free port) until the ``with`` block ends."""

    def __init__(self, authority: TestTsa, *, host: str = "127.0.0.1") -> None:
        self.authority = authority
        self.refuse = False
        self.queries = 0
        self._lock = threading.Lock()  # openssl ts -reply rewrites its serial file
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                query = self.rfile.read(length)
                kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if kind != "application/timestamp-query":
                    self._send(415, "text/plain", b"expected application/timestamp-query")
                    return
                try:
                    answer = server.reply(query)
                except ConfigError as exc:
                    self._send(400, "text/plain", exc.message.encode())
                    return
                self._send(200, "application/timestamp-reply", answer)

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet: tests and the demo print their own lines

        httpd = ThreadingHTTPServer((host, 0), Handler)
        httpd.daemon_threads = True
        self._address = httpd.server_address[:2]
        self._server = httpd

    @property
    def url(self) -> str:
        host, port = self._address
        return f"http://{host!s}:{port}/tsa"

    def reply(self, query: bytes) -> bytes:
        """The TSA's answer to a DER time-stamp query (``openssl ts -reply``)."""
        with self._lock:
            self.queries += 1
            if self.refuse:
                return REJECTION
            with tempfile.TemporaryDirectory(prefix="tsq-") as tmp:
                path = Path(tmp) / "query.tsq"
                path.write_bytes(query)
                return _openssl(
                    "ts", "-reply", "-config", str(self.authority.config),
                    "-queryfile", str(path),
                    cwd=self.authority.folder,
                )  # fmt: skip
