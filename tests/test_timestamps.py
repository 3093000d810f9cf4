"""Trusted timestamps without S3: checking tokens, asking TSAs over real HTTP (a local
``openssl ts -reply`` TSA), the configuration, the key names."""

from __future__ import annotations

import shlex
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest

from archiver.common.canonical import sha256_hex
from archiver.config import ArchiverConfig, layered_env, read_config_file
from archiver.devkit.tsa import TEST_POLICY, LocalTsaServer, TestTsa
from archiver.dossier import format_sequences, parse_sequences
from archiver.errors import ConfigError, TimestampError
from archiver.store import keys
from archiver.timestamps.client import Timestamper, TsaClient, open_timestamper
from archiver.timestamps.tokens import ca_fingerprints, read_token, verify_token

DATA = b'{"debt_id":"d1","sequence":1}'


def _token(server: LocalTsaServer, data: bytes = DATA, ca: bytes | None = None) -> bytes:
    timestamper, http = open_timestamper([server.url], ca)
    with http:
        stamp = timestamper.stamp(data)
    assert stamp.token is not None, stamp.failures
    return stamp.token


def kinds(check_problems: list) -> list[str]:
    return [p.kind.value for p in check_problems]


# --------------------------------------------------------------------------- verify_token


def test_a_token_of_the_bytes_signed_by_the_trusted_tsa_is_ok(
    tsa: LocalTsaServer, tsa_authority: TestTsa
) -> None:
    check = verify_token(_token(tsa), sha256_hex(DATA), tsa_authority.ca_pem.read_bytes())
    assert check.ok and check.chain_checked and check.problems == []
    assert check.tsa == "CN=Test TSA, O=getbill-archiver tests"
    assert check.gen_time is not None and check.gen_time.tzinfo is not None
    assert check.policy == TEST_POLICY
    assert verify_token(
        _token(tsa), sha256_hex(DATA), tsa_authority.ca_pem.read_bytes(), policy=TEST_POLICY
    ).ok


def test_a_token_of_other_bytes_is_a_mismatch(tsa: LocalTsaServer, tsa_authority: TestTsa) -> None:
    check = verify_token(
        _token(tsa), sha256_hex(b"another manifest"), tsa_authority.ca_pem.read_bytes()
    )
    assert not check.ok
    assert kinds(check.problems) == ["TimestampMismatch"]
    assert check.problems[0].expected == sha256_hex(b"another manifest")
    assert check.problems[0].found == sha256_hex(DATA)
    located = check.located(debt_id="d1", key="debts/d1/manifests/00000001.tsr")
    assert located[0].key == "debts/d1/manifests/00000001.tsr" and located[0].debt_id == "d1"


def test_a_token_of_an_unknown_tsa_is_untrusted(
    tsa: LocalTsaServer, other_authority: TestTsa
) -> None:
    check = verify_token(_token(tsa), sha256_hex(DATA), other_authority.ca_pem.read_bytes())
    assert not check.ok
    assert kinds(check.problems) == ["TimestampUntrusted"]
    assert "Test TSA Root CA" in check.problems[0].message


def test_garbled_tokens_are_invalid(tsa: LocalTsaServer, tsa_authority: TestTsa) -> None:
    ca = tsa_authority.ca_pem.read_bytes()
    token = _token(tsa)
    flipped = bytearray(token)
    flipped[-4] ^= 0x01  # inside the signature
    for bad in (b"", b"not a token", token[:100], bytes(flipped)):
        check = verify_token(bad, sha256_hex(DATA), ca)
        assert not check.ok
        assert kinds(check.problems) == ["TimestampInvalid"], bad[:20]


def test_a_token_under_another_policy_is_invalid(
    tsa: LocalTsaServer, tsa_authority: TestTsa
) -> None:
    check = verify_token(
        _token(tsa), sha256_hex(DATA), tsa_authority.ca_pem.read_bytes(), policy="1.2.3.4"
    )
    assert kinds(check.problems) == ["TimestampInvalid"]
    assert check.problems[0].found == TEST_POLICY


def test_without_trusted_roots_the_signature_is_a_notice_not_a_pass(tsa: LocalTsaServer) -> None:
    check = verify_token(_token(tsa), sha256_hex(DATA), None)
    assert check.ok and not check.chain_checked
    assert [(p.kind.value, p.severity) for p in check.problems] == [
        ("TimestampUntrusted", "notice")
    ]
    # The imprint is still compared.
    assert kinds(verify_token(_token(tsa), sha256_hex(b"x"), None).problems)[0] == (
        "TimestampMismatch"
    )


def test_a_ca_that_is_not_pem_is_a_configuration_error(tsa: LocalTsaServer) -> None:
    with pytest.raises(ConfigError, match="ARCHIVER_TSA_CA"):
        verify_token(_token(tsa), sha256_hex(DATA), b"not a certificate")


def test_read_token_and_fingerprints(tsa: LocalTsaServer, tsa_authority: TestTsa) -> None:
    info = read_token(_token(tsa))
    assert info is not None and info.sha256 == sha256_hex(DATA) and "Test TSA" in info.tsa
    assert read_token(b"garbage") is None
    ((subject, fingerprint),) = ca_fingerprints(tsa_authority.ca_pem.read_bytes())
    assert subject == "CN=Test TSA Root CA, O=getbill-archiver tests"
    shown = subprocess.run(
        ["openssl", "x509", "-in", str(tsa_authority.ca_pem), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.strip().endswith(fingerprint)


def test_openssl_verifies_a_token_the_client_got(
    tsa: LocalTsaServer, tsa_authority: TestTsa, tmp_path: Path
) -> None:
    (tmp_path / "manifest.json").write_bytes(DATA)
    (tmp_path / "00000001.tsr").write_bytes(_token(tsa))
    # The command the README and the dossier print.
    command = shlex.split("openssl ts -verify -data manifest.json -in 00000001.tsr -CAfile")
    ok = subprocess.run(
        [*command, str(tsa_authority.ca_pem)], cwd=tmp_path, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    (tmp_path / "manifest.json").write_bytes(DATA + b" ")
    bad = subprocess.run(
        [*command, str(tsa_authority.ca_pem)], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode != 0


# --------------------------------------------------------------------------- the client


def test_the_first_tsa_that_answers_gives_the_token(tsa: LocalTsaServer, down_url: str) -> None:
    timestamper, http = open_timestamper([down_url, tsa.url], None)
    with http:
        stamp = timestamper.stamp(DATA)
    assert stamp.token is not None and stamp.tsa == tsa.url
    assert len(stamp.failures) == 1 and "could not be reached" in stamp.failures[0]
    assert tsa.queries == 1


def test_a_refusing_tsa_gives_no_token_and_says_why(tsa: LocalTsaServer) -> None:
    tsa.refuse = True
    timestamper, http = open_timestamper([tsa.url], None)
    with http:
        stamp = timestamper.stamp(DATA)
    assert stamp.token is None
    assert stamp.failures == [f"TSA {tsa.url} refused the request: status 2"]


def test_a_token_of_an_untrusted_tsa_is_refused_when_received(
    tsa: LocalTsaServer, other_authority: TestTsa
) -> None:
    client = TsaClient(tsa.url, httpx.Client(), other_authority.ca_pem.read_bytes())
    with pytest.raises(TimestampError, match="does not verify.*do not certify"):
        client.request_token(DATA)


def test_a_failed_tsa_is_not_asked_again_until_its_cooldown_ends(tsa: LocalTsaServer) -> None:
    tsa.refuse = True
    now = [0.0]
    http = httpx.Client()
    timestamper = Timestamper([TsaClient(tsa.url, http, None)], cooldown=60, clock=lambda: now[0])
    with http:
        assert timestamper.stamp(DATA).token is None
        skipped = timestamper.stamp(DATA)
        assert tsa.queries == 1 and "not asked again yet" in skipped.failures[0]
        tsa.refuse = False
        now[0] = 61.0
        assert timestamper.stamp(DATA).token is not None
        assert tsa.queries == 2


class _Wrong(BaseHTTPRequestHandler):
    """A server that is not a TSA: HTML, or an error status."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, kind = (503, "text/plain") if self.path == "/busy" else (200, "text/html")
        body = b"<html>not a TSA</html>"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_answers_that_are_not_tokens_are_failures_naming_the_tsa() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Wrong)
    Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        timestamper, http = open_timestamper([f"{base}/busy", f"{base}/html"], None)
        with http:
            stamp = timestamper.stamp(DATA)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert stamp.token is None
    assert stamp.failures == [
        f"TSA {base}/busy answered HTTP 503",
        f"TSA {base}/html answered text/html, not application/timestamp-reply",
    ]


def test_credentials_in_a_tsa_url_never_reach_a_message(down_url: str) -> None:
    secret_url = down_url.replace("http://", "http://user:s3cr3t-pass@") + "?key=also-secret"
    timestamper, http = open_timestamper([secret_url], None)
    with http:
        stamp = timestamper.stamp(DATA)
    assert stamp.token is None
    assert "s3cr3t" not in " ".join(stamp.failures) and "also-secret" not in stamp.failures[0]


# --------------------------------------------------------------------------- configuration


def test_tsa_urls_and_ca_come_from_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"PEM")
    config = ArchiverConfig.from_env(
        {
            "ARCHIVER_TSA_URL": " http://a.example/tsa , https://b.example ",
            "ARCHIVER_TSA_CA": str(ca),
        }
    )
    assert config.tsa_urls == ("http://a.example/tsa", "https://b.example")
    assert config.tsa_ca_pem() == b"PEM"
    assert ArchiverConfig.from_env({}).tsa_urls == ()
    assert ArchiverConfig.from_env({}).tsa_ca_pem() is None
    with pytest.raises(ConfigError, match="http:// or https://"):
        ArchiverConfig.from_env({"ARCHIVER_TSA_URL": "ftp://tsa.example"})
    with pytest.raises(ConfigError, match="ARCHIVER_TSA_CA"):
        ArchiverConfig.from_env({"ARCHIVER_TSA_CA": str(tmp_path / "missing.pem")}).tsa_ca_pem()


def test_token_keys_sit_beside_their_manifest() -> None:
    assert keys.manifest_token_key("d1", 3) == "debts/d1/manifests/00000003.tsr"
    assert keys.parse_manifest_token_key("debts/d1/manifests/00000003.tsr") == ("d1", 3)
    assert keys.parse_manifest_token_key("debts/d1/manifests/00000003.json") is None
    assert keys.parse_manifest_key("debts/d1/manifests/00000003.tsr") is None


def test_the_tokens_a_dossier_shows_fit_its_metadata() -> None:
    assert format_sequences([5, 1, 2, 3, 3, 9, 10]) == "1-3,5,9-10"
    assert parse_sequences("1-3,5,9-10") == {1, 2, 3, 5, 9, 10}
    assert parse_sequences(None) == set() and parse_sequences("x,-,2") == {2}
    assert format_sequences(range(1, 1001)) == "1-1000"


def test_tsas_can_come_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[default]\ntsa_url = ["https://a.example/tsr", "https://b.example/tsr"]\n'
        'tsa_ca = "/etc/tsa-ca.pem"\n'
    )
    config = ArchiverConfig.from_env(layered_env({}, read_config_file(path, "default")))
    assert config.tsa_urls == ("https://a.example/tsr", "https://b.example/tsr")
    assert config.tsa_ca == Path("/etc/tsa-ca.pem")
    # The environment wins over the file.
    over = layered_env({"ARCHIVER_TSA_URL": "https://c.example"}, read_config_file(path, "default"))
    assert ArchiverConfig.from_env(over).tsa_urls == ("https://c.example",)
