"""Media bodies over real HTTP: stored exactly as sent, and never larger than the limit.

A server on 127.0.0.1 streams endless bodies (chunked or closed-delimited), declares huge
lengths, or sends gzip bombs with ``Content-Encoding: gzip``; the downloader runs over the
client it runs over in production (:func:`archiver.media.transport.media_client`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import random
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from local_http import LocalServer, send, stream_forever

from archiver.config import ArchiverConfig
from archiver.errors import ConfigError, MediaContentError
from archiver.getbill.records import MediaRef
from archiver.media.download import MediaDownloader
from archiver.media.transport import media_client
from archiver.media.types import DEFAULT_MAX_MEDIA_BYTES, DownloadEvent, DownloadSettings

pytestmark = pytest.mark.integration

SIG = "X-Amz-Signature=0123456789abcdef"
_rng = random.Random(11)
FRAME = b"\xff\xfb\x90\xc0" + _rng.randbytes(413)  # one MPEG audio frame: sniffs as audio/mpeg
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + FRAME * 40
PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 50 + b"%%EOF\n"


def media_ref(server: LocalServer, path: str, kind: str = "audio") -> MediaRef:
    expires = datetime.fromtimestamp(4_000_000_000, UTC)
    return MediaRef("debt1", "fu1", kind, f"{server.base_url}{path}?{SIG}", expires)  # type: ignore[arg-type]


def fetch(
    server: LocalServer, path: str, tmp_path: Path, kind: str = "audio", **settings: Any
) -> tuple[Any, list[DownloadEvent]]:
    """Download ``path`` from ``server``: ``(DownloadedMedia or the error, events)``."""
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir(exist_ok=True)
    cfg = DownloadSettings(allowed_hosts=("127.0.0.1",), temp_dir=temp_dir, **settings)
    events: list[DownloadEvent] = []
    with media_client(cfg) as http:
        downloader = MediaDownloader(http, cfg, sleep=lambda s: None, on_event=events.append)
        try:
            return downloader.download(media_ref(server, path, kind), _no_refresh), events
        except MediaContentError as exc:
            return exc, events


def _no_refresh(ref: MediaRef) -> MediaRef:
    raise AssertionError("no refresh expected")


def temp_files(tmp_path: Path) -> list[str]:
    return os.listdir(tmp_path / "tmp")


def frames() -> Iterator[bytes]:
    yield MP3
    yield from itertools.repeat(FRAME * 16)


# ---------------------------------------------------------------------------------------------
# size limit


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_endless_body_without_content_length_is_cut_at_the_limit(
    tmp_path: Path, chunked: bool
) -> None:
    limit = 256 * 1024
    with LocalServer({}) as server:
        server.routes["/call.mp3"] = stream_forever(
            server, frames(), {"Content-Type": "audio/mpeg"}, chunked=chunked
        )
        error, events = fetch(
            server, "/call.mp3", tmp_path, max_media_bytes=limit, chunk_size=16 * 1024
        )
    assert isinstance(error, MediaContentError), error
    assert "limit of 262144 bytes (ARCHIVER_MAX_MEDIA_BYTES)" in str(error)
    assert error.context["max_bytes"] == limit
    assert SIG not in str(error.to_dict())
    assert len(server.requests) == 1  # too large is not transient: never retried
    read = sum(e.delta for e in events if e.kind == "progress")
    assert limit - 16 * 1024 <= read <= limit  # the chunk that passed it is not reported
    assert server.bytes_sent < 64 * 1024 * 1024  # the client hung up long before the safety net
    assert temp_files(tmp_path) == []


def test_declared_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    body = MP3 * 4

    def route(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, {"Content-Type": "audio/mpeg"}, body)

    with LocalServer({"/call.mp3": route}) as server:
        error, events = fetch(server, "/call.mp3", tmp_path, max_media_bytes=len(body) - 1)
    assert isinstance(error, MediaContentError)
    assert f"media of {len(body)} bytes (Content-Length) is over the limit" in str(error)
    assert "ARCHIVER_MAX_MEDIA_BYTES" in str(error)
    assert [e for e in events if e.kind == "progress"] == []
    assert len(server.requests) == 1 and temp_files(tmp_path) == []


def test_body_at_the_limit_is_accepted(tmp_path: Path) -> None:
    def route(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, {"Content-Type": "audio/mpeg"}, MP3)

    with LocalServer({"/call.mp3": route}) as server:
        media, _ = fetch(server, "/call.mp3", tmp_path, max_media_bytes=len(MP3))
    assert media.size == len(MP3) and media.sha256 == hashlib.sha256(MP3).hexdigest()


def test_limit_setting_default_and_environment() -> None:
    assert DEFAULT_MAX_MEDIA_BYTES == 4 * 1024**3
    assert DownloadSettings().max_media_bytes == DEFAULT_MAX_MEDIA_BYTES
    assert ArchiverConfig().max_media_bytes == DEFAULT_MAX_MEDIA_BYTES
    assert ArchiverConfig.from_env({}).max_media_bytes == DEFAULT_MAX_MEDIA_BYTES
    assert ArchiverConfig.from_env({"ARCHIVER_MAX_MEDIA_BYTES": "1048576"}).max_media_bytes == (
        1024 * 1024
    )
    for bad in ("4GiB", "0", "-1", "1.5"):
        with pytest.raises(ConfigError, match="ARCHIVER_MAX_MEDIA_BYTES"):
            ArchiverConfig.from_env({"ARCHIVER_MAX_MEDIA_BYTES": bad})
    with pytest.raises(ConfigError, match="max_media_bytes"):
        DownloadSettings(max_media_bytes=0)


# ---------------------------------------------------------------------------------------------
# stored as sent: no Content-Encoding undone


def gzip_bomb(head: bytes, zeros: int) -> bytes:
    """gzip of ``head`` followed by ``zeros`` NUL bytes: about a thousandth of the size."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(head)
        block = bytes(1024 * 1024)
        for _ in range(zeros // len(block)):
            gz.write(block)
    return out.getvalue()


def test_gzip_bomb_is_not_inflated(tmp_path: Path) -> None:
    """64 MiB of 'audio' in about 64 KB of gzip: the downloader must not inflate it. Kept as
    sent, the gzip bytes are no audio: refused once, with no file left behind."""
    wire = gzip_bomb(MP3, 64 * 1024 * 1024)
    assert len(wire) < 200_000

    def route(handler: BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": "audio/mpeg", "Content-Encoding": "gzip"}
        send(handler, 200, headers, wire)

    with LocalServer({"/call.mp3": route}) as server:
        error, events = fetch(server, "/call.mp3", tmp_path)
    assert isinstance(error, MediaContentError), error
    assert "Content-Encoding gzip kept as sent" in str(error)
    assert "sniffed unrecognised" in str(error)
    assert sum(e.delta for e in events if e.kind == "progress") <= len(wire)
    assert len(server.requests) == 1
    assert server.requests[0].headers["accept-encoding"] == "identity"
    assert temp_files(tmp_path) == []


def test_encoded_body_is_stored_exactly_as_sent(tmp_path: Path) -> None:
    """A gzip stream whose header names a file ``%PDF-1.7.pdf`` sniffs as a PDF as sent: what
    is stored and hashed is the wire bytes, not the 16 MiB it would inflate to."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="%PDF-1.7.pdf", fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(PDF + bytes(16 * 1024 * 1024))
    wire = out.getvalue()
    assert wire[:2] == b"\x1f\x8b" and b"%PDF-1.7" in wire[:32]
    assert len(zlib.decompress(wire, wbits=31)) > 16 * 1024 * 1024

    def route(handler: BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": "application/pdf", "Content-Encoding": "gzip"}
        send(handler, 200, headers, wire)

    with LocalServer({"/letter.pdf": route}) as server:
        media, _ = fetch(server, "/letter.pdf", tmp_path, kind="pdf")
    assert not isinstance(media, Exception), media
    assert media.path.read_bytes() == wire
    assert media.sha256 == hashlib.sha256(wire).hexdigest()
    assert media.size == len(wire)
