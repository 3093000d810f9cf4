"""archiver.media.download: allowlist, streaming hash, content checks, expiry refresh, retries.

Everything runs on httpx.MockTransport with an injected clock and sleep, except the two
simulator tests at the end which fetch real media from the getbill simulator's transport.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures_sim import sim_transport

from archiver.common.backoff import backoff_delay
from archiver.common.redact import strip_query
from archiver.errors import (
    MediaContentError,
    MediaError,
    MediaExpiredError,
    MediaHostNotAllowedError,
)
from archiver.getbill.records import MediaRef
from archiver.media.download import MediaDownloader, blocks
from archiver.media.types import DownloadedMedia, DownloadEvent, DownloadSettings
from archiver.media.urls import check_media_url

NOW = 1_700_000_000.0
SECRET = "X-Amz-Signature=s3cr3tsignature0123456789"
URL = (
    "https://bucket.s3.eu-west-3.amazonaws.com/recordings/call_1.mp3"
    f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&{SECRET}"
)
FRESH_URL = URL.replace("s3cr3t", "fresh0")
PDF_URL = "https://bucket.s3.amazonaws.com/letters/l1.pdf?" + SECRET

# ID3 tag then valid MPEG frame headers with seeded payload: sniffs as audio/mpeg.
_rng = random.Random(7)
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"".join(
    b"\xff\xfb\x90\xc0" + _rng.randbytes(413) for _ in range(30)
)
PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 50 + b"%%EOF\n"
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>" + b"x" * 5000
EXPIRED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><X-Amz-Expires>3600</X-Amz-Expires></Error>"
)

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    """A clock that moves only when told: ``advance(seconds)``."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """A downloader over a MockTransport that records requests, sleeps and events."""

    def __init__(self, handler: Handler, tmp_path: Path, **settings: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.events: list[DownloadEvent] = []
        self.refreshed: list[MediaRef] = []
        self.temp_dir = tmp_path / "tmp"
        self.temp_dir.mkdir()
        self.clock = Clock()

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            response = handler(request)
            if response.is_stream_consumed:
                # Built with content=: serve the bytes as a stream, as a socket would (the
                # downloader reads the raw stream, which a pre-read response no longer has).
                response = httpx.Response(
                    response.status_code,
                    headers=response.headers,
                    stream=httpx.ByteStream(response.content),
                )
            return response

        defaults: dict[str, Any] = {"chunk_size": 1024, "temp_dir": self.temp_dir}
        self.settings = DownloadSettings(**{**defaults, **settings})
        self.client = httpx.Client(transport=httpx.MockTransport(record))
        self.downloader = MediaDownloader(
            self.client,
            self.settings,
            clock=self.clock,
            sleep=self.sleeps.append,
            on_event=self.events.append,
            rng=random.Random(1),
        )

    def refresh(self, ref: MediaRef) -> MediaRef:
        """Stand-in for GET /followups/{id}: a fresh URL valid for another hour."""
        self.refreshed.append(ref)
        n = len(self.refreshed)
        return replace(
            ref,
            url=FRESH_URL.replace("fresh0", f"fresh{n}"),
            expires_at=datetime.fromtimestamp(self.clock.now + 3600, UTC),
        )

    def download(self, ref: MediaRef) -> DownloadedMedia:
        return self.downloader.download(ref, self.refresh)

    def temp_files(self) -> list[str]:
        return os.listdir(self.temp_dir)


def ref(url: str = URL, *, expires_in: float | None = 3600, kind: str = "audio") -> MediaRef:
    expires = None if expires_in is None else datetime.fromtimestamp(NOW + expires_in, UTC)
    return MediaRef("debt1", "fu1", kind, url, expires)  # type: ignore[arg-type]


def ok(body: bytes, content_type: str = "audio/mpeg") -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": content_type}, content=body)


def assert_no_secret(*texts: object) -> None:
    """Neither signature (original or refreshed) nor any X-Amz query parameter leaks."""
    for text in texts:
        for secret in ("signature0123456789", "X-Amz-", "?"):
            assert secret not in str(text), text


# ---------------------------------------------------------------------------------------------
# allowlist


SETTINGS = DownloadSettings()


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "https://s3.amazonaws.com/b/k.mp3?X-Amz-Signature=x",
        "https://media.getbill.io/a.pdf",
        "https://S3.AmazonAWS.com./b/k.mp3",  # case and trailing dot do not matter
    ],
)
def test_allowlisted_https_hosts_pass(url: str) -> None:
    check_media_url(url, SETTINGS)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://evil.example.com/x.mp3?" + SECRET, "not in the allowlist"),
        ("https://amazonaws.com.evil.com/x.mp3?" + SECRET, "not in the allowlist"),
        ("https://evilamazonaws.com/x.mp3?" + SECRET, "not in the allowlist"),
        # documented choice: "*.x.com" does not match the apex x.com
        ("https://amazonaws.com/x.mp3?" + SECRET, "not in the allowlist"),
        ("http://bucket.s3.amazonaws.com/x.mp3?" + SECRET, "https only"),
        ("ftp://bucket.s3.amazonaws.com/x.mp3?" + SECRET, "https only"),
        ("https://user:pw@bucket.s3.amazonaws.com/x.mp3?" + SECRET, "userinfo"),
        ("https://bucket.s3.amazonaws.com:99999/x?" + SECRET, "cannot be parsed"),
        ("https://bad%2ehost.amazonaws.com/x?" + SECRET, "not a valid host"),
    ],
)
def test_urls_outside_allowlist_refused(url: str, fragment: str) -> None:
    with pytest.raises(MediaHostNotAllowedError) as info:
        check_media_url(url, SETTINGS)
    message = str(info.value)
    assert fragment in message
    assert_no_secret(message, info.value.to_dict())
    assert "pw" not in message


def test_refusal_names_host_and_allowlist() -> None:
    with pytest.raises(MediaHostNotAllowedError) as info:
        check_media_url("https://cdn.evil.com/a.mp3?" + SECRET, SETTINGS)
    assert "'cdn.evil.com'" in str(info.value)
    assert "*.amazonaws.com, *.getbill.io" in str(info.value)


def test_plain_http_only_for_allowlisted_loopback() -> None:
    local = DownloadSettings(allowed_hosts=("127.0.0.1", "localhost", "::1", "sim.test"))
    check_media_url("http://127.0.0.1:8080/media/a.mp3?sig=1", local)
    check_media_url("http://localhost:8080/media/a.mp3", local)
    check_media_url("http://[::1]:8080/media/a.mp3", local)
    with pytest.raises(MediaHostNotAllowedError, match="https only"):
        check_media_url("http://sim.test/media/a.mp3", local)
    # loopback is not allowed just for being loopback: it must be on the allowlist too
    with pytest.raises(MediaHostNotAllowedError, match="not in the allowlist"):
        check_media_url("http://127.0.0.1:8080/media/a.mp3", SETTINGS)


def test_safe_url_drops_query_and_userinfo() -> None:
    assert strip_query("https://u:p@h.amazonaws.com:8443/a/b.mp3?sig=1#f") == (
        "https://h.amazonaws.com:8443/a/b.mp3"
    )


def test_disallowed_host_refused_before_any_request(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3), tmp_path)
    with pytest.raises(MediaHostNotAllowedError) as info:
        h.download(ref("https://evil.example.com/a.mp3?" + SECRET))
    assert h.requests == []
    assert info.value.context["followup_id"] == "fu1"
    assert info.value.context["attempts"] == 0


def test_redirect_outside_allowlist_refused_not_retried(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://evil.example.com/x?" + SECRET})

    h = Harness(handler, tmp_path)
    with pytest.raises(MediaHostNotAllowedError) as info:
        h.download(ref())
    assert len(h.requests) == 1
    assert "evil.example.com" in str(info.value)
    assert info.value.context["debt_id"] == "debt1"
    assert_no_secret(info.value, info.value.to_dict())
    assert h.temp_files() == []


def test_redirect_inside_allowlist_followed(tmp_path: Path) -> None:
    target = "https://other.s3.amazonaws.com/moved/call_1.mp3?X-Amz-Signature=abc"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "other.s3.amazonaws.com":
            return ok(MP3)
        return httpx.Response(307, headers={"Location": target})

    h = Harness(handler, tmp_path)
    media = h.download(ref())
    assert [r.url.host for r in h.requests] == ["bucket.s3.eu-west-3.amazonaws.com", target[8:30]]
    assert str(h.requests[1].url) == target
    assert media.sha256 == hashlib.sha256(MP3).hexdigest()


def test_too_many_redirects(tmp_path: Path) -> None:
    h = Harness(lambda r: httpx.Response(302, headers={"Location": "/again"}), tmp_path)
    with pytest.raises(MediaError, match="more than 3 redirects"):
        h.download(ref())
    assert len(h.requests) == 4  # the first request and 3 redirects, never retried


def test_client_credentials_never_sent_to_media_host(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3), tmp_path)
    h.client.headers["Authorization"] = "Bearer api-token"
    h.client.cookies.set("session", "abc")
    h.download(ref())
    assert "authorization" not in h.requests[0].headers
    assert "cookie" not in h.requests[0].headers


# ---------------------------------------------------------------------------------------------
# streaming and content checks


def test_streaming_hash_matches_body_over_many_chunks(tmp_path: Path) -> None:
    body = MP3 * 4  # ~50 KiB: about 50 chunks of 1 KiB
    h = Harness(lambda r: ok(body, "binary/octet-stream"), tmp_path)
    media = h.download(ref())
    assert media.sha256 == hashlib.sha256(body).hexdigest()
    assert media.size == len(body)
    assert media.path.read_bytes() == body
    assert media.path.parent == h.temp_dir
    assert (media.content_type, media.sniffed_type, media.extension) == (
        "binary/octet-stream",
        "audio/mpeg",
        "mp3",
    )
    assert media.source == "https://bucket.s3.eu-west-3.amazonaws.com/recordings/call_1.mp3"
    assert media.downloaded_at == datetime.fromtimestamp(NOW, UTC)
    assert media.url_expires_at == ref().expires_at
    assert (media.attempts, media.refreshes) == (1, 0)
    progress = [e for e in h.events if e.kind == "progress"]
    assert len(progress) == -(-len(body) // 1024)
    assert all(e.delta <= 1024 for e in progress)
    assert sum(e.delta for e in progress) == len(body)
    assert [e.kind for e in h.events if e.kind != "progress"] == ["started", "done"]
    assert h.events[-1].bytes == len(body)


def test_body_is_streamed_not_buffered(tmp_path: Path) -> None:
    """Chunks are hashed and written while the body still arrives (no .read()/.content first):
    when the server sends its last piece, progress already covers nearly all earlier ones."""
    body = MP3 * 2
    piece = 777
    written_when_sent: list[int] = []
    events: list[DownloadEvent] = []

    class Server(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for i in range(0, len(body), piece):
                written_when_sent.append(sum(e.delta for e in events if e.kind == "progress"))
                yield body[i : i + piece]

    h = Harness(lambda r: httpx.Response(200, stream=Server()), tmp_path)
    h.downloader.on_event = events.append
    media = h.download(ref())
    assert media.sha256 == hashlib.sha256(body).hexdigest()
    last_piece_offset = (len(written_when_sent) - 1) * piece
    # at most one chunk_size (1024) of the earlier pieces is still waiting in the re-chunker
    assert written_when_sent[-1] >= last_piece_offset - 1024
    assert written_when_sent == sorted(written_when_sent)


def truncated(body: bytes) -> httpx.Response:
    return httpx.Response(
        200, headers={"Content-Length": str(len(body))}, content=body[: len(body) // 2]
    )


def test_truncated_body_retried_then_success(tmp_path: Path) -> None:
    answers = iter([truncated(MP3), ok(MP3)])
    h = Harness(lambda r: next(answers), tmp_path)
    media = h.download(ref())
    assert media.sha256 == hashlib.sha256(MP3).hexdigest()
    assert media.attempts == 2
    assert len(h.sleeps) == 1 and 0.25 <= h.sleeps[0] <= 0.5
    retry = [e for e in h.events if e.kind == "retry"]
    assert len(retry) == 1 and "truncated" in (retry[0].reason or "")
    assert h.temp_files() == [media.path.name]


def test_always_truncated_fails_after_max_attempts(tmp_path: Path) -> None:
    h = Harness(lambda r: truncated(MP3), tmp_path)
    with pytest.raises(MediaContentError) as info:
        h.download(ref())
    assert len(h.requests) == 3 == h.settings.max_attempts
    # One backoff between tries, from the shared formula with the harness's seeded rng; the
    # ceiling doubles (0.5 s, then 1 s), so the second wait lies in [0.5, 1.0], after the first.
    rng = random.Random(1)
    s = h.settings
    expected = [
        backoff_delay(n, s.backoff_base_seconds, s.backoff_max_seconds, rng) for n in (1, 2)
    ]
    assert len(h.sleeps) == 2 and h.sleeps == expected
    assert 0.25 <= h.sleeps[0] <= 0.5 <= h.sleeps[1] <= 1.0
    err = info.value
    assert "truncated" in str(err) and "gave up after 3 tries" in str(err)
    assert err.context["debt_id"] == "debt1" and err.context["followup_id"] == "fu1"
    assert err.context["kind"] == "audio"
    assert err.context["url"] == strip_query(URL)
    assert h.temp_files() == []


def test_body_longer_than_content_length_refused(tmp_path: Path) -> None:
    h = Harness(
        lambda r: httpx.Response(200, headers={"Content-Length": "100"}, content=MP3), tmp_path
    )
    with pytest.raises(MediaContentError, match="longer than Content-Length"):
        h.download(ref())
    assert h.temp_files() == []


def test_html_with_200_refused(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(HTML, "audio/mpeg"), tmp_path)
    with pytest.raises(MediaContentError, match="HTML page") as info:
        h.download(ref())
    assert "declared audio/mpeg" in str(info.value)
    assert len(h.requests) == 3  # retried: an error page can be transient
    assert h.temp_files() == []


def test_xml_error_with_200_refused(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(EXPIRED_BODY, "audio/mpeg"), tmp_path, max_attempts=1)
    with pytest.raises(MediaContentError, match="XML error document") as info:
        h.download(ref())
    assert info.value.context["s3_code"] == "AccessDenied"


def test_empty_body_refused(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(b""), tmp_path, max_attempts=2)
    with pytest.raises(MediaContentError, match="empty body"):
        h.download(ref())
    assert len(h.requests) == 2
    assert h.temp_files() == []


def test_pdf_expected_but_audio_sniffed_refused(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3, "application/pdf"), tmp_path)
    with pytest.raises(MediaContentError) as info:
        h.download(ref(PDF_URL, kind="pdf"))
    message = str(info.value)
    assert "declared application/pdf" in message and "sniffed audio/mpeg" in message
    assert len(h.requests) == 1  # the wrong type is not transient: no retry
    assert h.temp_files() == []


def test_pdf_downloaded(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(PDF, "application/pdf"), tmp_path)
    media = h.download(ref(PDF_URL, kind="pdf"))
    assert (media.sniffed_type, media.extension) == ("application/pdf", "pdf")


def test_unrecognised_audio_refused(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(b"\x00" * 10_000), tmp_path)
    with pytest.raises(MediaContentError, match="sniffed unrecognised"):
        h.download(ref())


# ---------------------------------------------------------------------------------------------
# expiry and refresh


def test_expired_ref_refreshed_before_request(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3), tmp_path)
    media = h.download(ref(expires_in=-5))
    assert len(h.refreshed) == 1
    assert [str(r.url) for r in h.requests] == [FRESH_URL.replace("fresh0", "fresh1")]
    assert media.refreshes == 1 and media.ref.url.endswith("fresh1signature0123456789")
    assert media.url_expires_at == datetime.fromtimestamp(NOW + 3600, UTC)
    assert [e.kind for e in h.events if e.kind != "progress"] == ["started", "refreshed", "done"]


def test_ref_within_margin_refreshed_proactively(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3), tmp_path)
    h.download(ref(expires_in=10))  # margin is 30 s
    assert len(h.refreshed) == 1


def test_403_request_has_expired_refreshes_then_succeeds(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "s3cr3t" in str(request.url):
            return httpx.Response(403, content=EXPIRED_BODY)
        return ok(MP3)

    h = Harness(handler, tmp_path)
    media = h.download(ref())  # expires_at says valid: the server disagrees (clock skew)
    assert len(h.refreshed) == 1 and len(h.requests) == 2
    assert h.sleeps == []  # a refresh is not a backoff
    assert (media.attempts, media.refreshes) == (2, 1)


def test_403_access_denied_with_expires_before_server_time_is_expired(tmp_path: Path) -> None:
    """S3 says AccessDenied and its body shows the URL's Expires before its own ServerTime:
    an expiry even though our clock (skewed) still thinks the URL is valid."""
    body = (
        b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
        b"<X-Amz-Expires>3600</X-Amz-Expires><Expires>2023-11-14T22:00:00Z</Expires>"
        b"<ServerTime>2023-11-14T23:30:00Z</ServerTime></Error>"
    )
    answers = iter([httpx.Response(403, content=body), ok(MP3)])
    h = Harness(lambda r: next(answers), tmp_path)
    media = h.download(ref())
    assert len(h.refreshed) == 1 and media.refreshes == 1


def test_access_denied_without_expiry_evidence_is_not_expired(tmp_path: Path) -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    h = Harness(lambda r: httpx.Response(403, content=body), tmp_path)
    with pytest.raises(MediaError) as info:
        h.download(ref())
    assert type(info.value) is MediaError and len(h.refreshed) == 1


def test_url_signature_expiry_used_when_api_gives_none(tmp_path: Path) -> None:
    """No media_urls_expire_at: the URL's own X-Amz-Date + X-Amz-Expires says it is dead."""
    signed = "20231114T210000Z"  # NOW is 2023-11-14T22:13:20Z; signed for 600 s
    url = f"https://b.s3.amazonaws.com/k.mp3?X-Amz-Date={signed}&X-Amz-Expires=600&{SECRET}"
    h = Harness(lambda r: ok(MP3), tmp_path)
    h.download(ref(url, expires_in=None))
    assert len(h.refreshed) == 1
    assert "s3cr3t" not in str(h.requests[0].url)


def test_any_403_after_expiry_is_expired(tmp_path: Path) -> None:
    h = Harness(lambda r: httpx.Response(403), tmp_path, max_refreshes=0)
    with pytest.raises(MediaExpiredError):
        h.download(ref(expires_in=-60))


def test_refresh_budget_exhausted(tmp_path: Path) -> None:
    h = Harness(lambda r: httpx.Response(403, content=EXPIRED_BODY), tmp_path)
    with pytest.raises(MediaExpiredError) as info:
        h.download(ref())
    assert len(h.refreshed) == 2  # max_refreshes
    assert len(h.requests) == 3
    assert info.value.context["s3_code"] == "AccessDenied"
    assert info.value.context["status"] == 403
    assert h.temp_files() == []


def test_plain_403_and_404_get_one_refresh_then_fail(tmp_path: Path) -> None:
    for status, text in ((403, "access denied"), (404, "not found")):
        sub = tmp_path / str(status)
        sub.mkdir()

        def refuse(request: httpx.Request, status: int = status) -> httpx.Response:
            return httpx.Response(status)

        h = Harness(refuse, sub)
        with pytest.raises(MediaError, match=text) as info:
            h.download(ref())
        assert type(info.value) is MediaError
        assert len(h.refreshed) == 1 and len(h.requests) == 2
        assert h.sleeps == []


def test_other_4xx_fails_at_once(tmp_path: Path) -> None:
    h = Harness(lambda r: httpx.Response(400), tmp_path)
    with pytest.raises(MediaError, match="refused with 400"):
        h.download(ref())
    assert len(h.requests) == 1 and h.refreshed == []


def test_refresh_must_return_same_media(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3), tmp_path)

    def wrong(r: MediaRef) -> MediaRef:
        return replace(r, followup_id="other", expires_at=None)

    with pytest.raises(MediaError, match="different media reference"):
        h.downloader.download(ref(expires_in=-1), wrong)


def test_retry_rechecks_expiry(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503), ok(MP3)])
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        clock.now += 3590  # the first try took an hour: the URL is about to expire
        return next(answers)

    h = Harness(handler, tmp_path)
    h.clock = clock
    h.downloader.clock = clock
    media = h.download(ref())
    assert len(h.refreshed) == 1
    assert "fresh1" in str(h.requests[1].url)
    assert media.attempts == 2 and media.refreshes == 1


# ---------------------------------------------------------------------------------------------
# transient failures


def test_503_then_success(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503), httpx.Response(500), ok(MP3)])
    h = Harness(lambda r: next(answers), tmp_path)
    media = h.download(ref())
    assert media.attempts == 3
    assert len(h.sleeps) == 2
    assert 0.25 <= h.sleeps[0] <= 0.5 and 0.5 <= h.sleeps[1] <= 1.0  # exponential with jitter
    assert [e.delay_seconds for e in h.events if e.kind == "retry"] == h.sleeps


def test_connection_errors_and_timeouts_retried(tmp_path: Path) -> None:
    errors: list[Exception] = [
        httpx.ConnectError(f"cannot connect to {URL}"),
        httpx.ReadTimeout("read timed out"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if errors:
            raise errors.pop(0)
        return ok(MP3)

    h = Harness(handler, tmp_path)
    assert h.download(ref()).attempts == 3
    reasons = [e.reason or "" for e in h.events if e.kind == "retry"]
    assert "ConnectError" in reasons[0] and "timed out" in reasons[1]
    assert_no_secret(*reasons)


def test_error_while_reading_body_cleans_up(tmp_path: Path) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield MP3[:5000]
            raise httpx.ReadError("connection reset")

    h = Harness(lambda r: httpx.Response(200, stream=Broken()), tmp_path)
    with pytest.raises(MediaError, match="ReadError"):
        h.download(ref())
    assert len(h.requests) == 3
    assert h.temp_files() == []


def test_no_query_string_in_errors_or_events(tmp_path: Path) -> None:
    answers = iter(
        [
            httpx.Response(403, content=EXPIRED_BODY),
            httpx.Response(503),
            truncated(MP3),
            ok(HTML, "text/html"),
        ]
    )
    h = Harness(lambda r: next(answers), tmp_path)
    with pytest.raises(MediaError) as info:
        h.download(ref())
    assert len(h.requests) == 4
    assert_no_secret(info.value, info.value.to_dict(), repr(info.value), *h.events)
    assert {e.kind for e in h.events} >= {"started", "refreshed", "retry"}


def test_done_event_and_rerun_are_independent(tmp_path: Path) -> None:
    h = Harness(lambda r: ok(MP3), tmp_path)
    first = h.download(ref())
    second = h.download(ref())
    assert first.path != second.path and first.sha256 == second.sha256
    assert [e.kind for e in h.events].count("done") == 2


# ---------------------------------------------------------------------------------------------
# against the getbill simulator (in process, real WSGI app, real signed URLs)

SIM_BASE = "http://127.0.0.1:8099"  # loopback: plain http allowed once on the allowlist


def _simulator(clock: Any = None, **config: Any) -> Any:
    from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig

    cfg = SimulatorConfig(
        seed=3,
        debts=3,
        other_company_debts=0,
        followups_per_debt=6,
        big_debt_followups=6,
        audio_size_range=(40_000, 80_000),
        large_audio_share=0.0,
        **config,
    )
    return Simulator(cfg, base_url=SIM_BASE, clock=clock or SimClock())


def _followup_with(sim: Any, kind: str) -> str:
    for debt_id in sim.debt_ids():
        for fid in sim.followup_ids(debt_id):
            if kind in sim.media_kinds(fid):
                return str(fid)
    raise AssertionError(f"no followup with {kind} media")


def _sim_api(sim: Any) -> httpx.Client:
    return httpx.Client(
        transport=sim_transport(sim),
        base_url=SIM_BASE,
        headers={"Authorization": "Bearer sim-static-token"},
    )


def _sim_ref(api: httpx.Client, followup_id: str, kind: str) -> MediaRef:
    """What the pipeline's refresh does: GET /followups/{id} and take the fresh media URL."""
    from archiver.getbill.records import Followup

    response = api.get(f"/external-api/v1/followups/{followup_id}")
    response.raise_for_status()
    followup = Followup.from_record(response.json()["data"])
    return next(m for m in followup.media() if m.kind == kind)


def _sim_downloader(sim: Any, tmp_path: Path, **settings: Any) -> MediaDownloader:
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir(exist_ok=True)
    cfg = DownloadSettings(allowed_hosts=("127.0.0.1",), temp_dir=temp_dir, **settings)
    media_http = httpx.Client(transport=sim_transport(sim))
    return MediaDownloader(media_http, cfg, sleep=lambda s: None)


@pytest.mark.parametrize("kind", ["audio", "pdf"])
def test_simulator_media_downloaded_and_hashed(tmp_path: Path, kind: str) -> None:
    sim = _simulator()
    api = _sim_api(sim)
    fid = _followup_with(sim, kind)
    ref = _sim_ref(api, fid, kind)
    assert ref.url.startswith(SIM_BASE) and "X-Amz-Signature=" in ref.url

    media = _sim_downloader(sim, tmp_path, chunk_size=16 * 1024).download(
        ref, lambda r: _sim_ref(api, r.followup_id, r.kind)
    )
    assert media.sha256 == sim.media_sha256(fid, kind)
    assert media.size == sim.media_source(fid, kind).size
    assert media.sniffed_type in (
        ("audio/wav", "audio/mpeg") if kind == "audio" else ("application/pdf",)
    )
    assert media.content_type == sim.media_source(fid, kind).content_type
    assert "?" not in media.source and media.refreshes == 0


def test_simulator_truncated_and_html_media_retried(tmp_path: Path) -> None:
    sim = _simulator(truncate_media_first=1, html_media_first=0)
    api = _sim_api(sim)
    fid = _followup_with(sim, "audio")
    ref = _sim_ref(api, fid, "audio")
    media = _sim_downloader(sim, tmp_path).download(ref, lambda r: _sim_ref(api, fid, "audio"))
    assert media.attempts == 2
    assert media.sha256 == sim.media_sha256(fid, "audio")


def test_simulator_url_expires_server_side_then_refreshed(tmp_path: Path) -> None:
    """Tiny TTL: by the time we fetch, the simulator (its clock ahead of ours, as with skew)
    answers 403 "Request has expired"; the downloader refreshes through
    GET /external-api/v1/followups/{id} and succeeds with the new URL. Both clocks stand
    still unless moved, so a slow machine cannot expire the fresh URL as well."""
    sim = _simulator(clock=Clock(time.time()), url_ttl_s=2)
    ours = Clock(sim.clock.now)
    api = _sim_api(sim)
    fid = _followup_with(sim, "audio")
    ref = _sim_ref(api, fid, "audio")
    sim.clock.advance(5)  # the URL is dead for the simulator, still valid for our clock
    refreshes: list[MediaRef] = []

    def refresh(old: MediaRef) -> MediaRef:
        refreshes.append(old)
        return _sim_ref(api, old.followup_id, old.kind)

    downloader = _sim_downloader(sim, tmp_path, expiry_margin_seconds=0)
    downloader.clock = ours
    media = downloader.download(ref, refresh)
    assert len(refreshes) == 1
    assert media.refreshes == 1 and media.attempts == 2
    assert media.ref.url != ref.url
    assert media.sha256 == sim.media_sha256(fid, "audio")
    statuses = [r.status for r in sim.requests_to("/media/")]
    assert statuses == [403, 200]
    assert len(sim.requests_to(f"/external-api/v1/followups/{fid}")) == 2


def test_simulator_expired_url_refreshed_before_request(tmp_path: Path) -> None:
    sim = _simulator(clock=Clock(time.time()), url_ttl_s=2)
    api = _sim_api(sim)
    fid = _followup_with(sim, "pdf")
    ref = _sim_ref(api, fid, "pdf")
    sim.clock.advance(5)
    downloader = _sim_downloader(sim, tmp_path)
    downloader.clock = sim.clock  # same clock as the API: we know the URL is dead
    media = downloader.download(ref, lambda r: _sim_ref(api, r.followup_id, r.kind))
    assert media.refreshes == 1 and media.attempts == 1
    assert [r.status for r in sim.requests_to("/media/")] == [200]
    assert media.sha256 == sim.media_sha256(fid, "pdf")


@pytest.mark.integration
def test_simulator_over_real_http_truncation_and_html_retried(tmp_path: Path) -> None:
    """Over a real socket a short body surfaces as an httpx protocol error (not a short read):
    it must be retried like any truncation, and so must an HTML page served with 200."""
    from archiver.devkit.simulator import SimulatorServer

    sim = _simulator(truncate_media_first=1, html_media_first=0)
    sim.base_url = None  # let the server put its real port into signed URLs
    with (
        SimulatorServer(sim) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": "Bearer sim-static-token"}
        ) as api,
        httpx.Client() as media_http,
    ):
        fid = _followup_with(sim, "audio")
        ref = _sim_ref(api, fid, "audio")
        assert ref.url.startswith(server.base_url)
        events: list[DownloadEvent] = []
        downloader = MediaDownloader(
            media_http,
            DownloadSettings(allowed_hosts=("127.0.0.1",), temp_dir=tmp_path),
            sleep=lambda s: None,
            on_event=events.append,
        )
        media = downloader.download(ref, lambda r: _sim_ref(api, r.followup_id, r.kind))
        sim.config.html_media_first = 99  # from now on: an HTML error page with 200
        with pytest.raises(MediaContentError, match="HTML page"):
            downloader.download(ref, lambda r: _sim_ref(api, r.followup_id, r.kind))
    assert media.attempts == 2
    assert media.sha256 == sim.media_sha256(fid, "audio")
    reasons = [e.reason or "" for e in events if e.kind == "retry"]
    assert reasons[0].startswith("truncated body")
    assert os.listdir(tmp_path) == [media.path.name]


@pytest.mark.parametrize("size", [1, 5, 7, 64])
def test_blocks_are_exactly_sized_and_give_back_every_byte(size: int) -> None:
    pieces = [b"", b"abc", b"defghij", b"", b"k" * 40, b"lm", b"n" * 7]
    out = [bytes(block) for block in blocks(iter(pieces), size)]
    assert b"".join(out) == b"".join(pieces)
    assert all(len(block) == size for block in out[:-1])
    assert 0 < len(out[-1]) <= size
    assert list(blocks(iter([b"", b""]), size)) == []
