"""archiver.media.sniff: magic numbers, error pages, expected types per kind."""

from __future__ import annotations

import pytest

from archiver.media.sniff import (
    AUDIO_TYPES,
    expected_for,
    extension_for,
    looks_like_html,
    looks_like_xml_error,
    sniff,
    xml_error_code,
)

# A valid MPEG-1 Layer III frame header: 128 kbit/s, 44.1 kHz.
MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 60


@pytest.mark.parametrize(
    ("head", "mime", "ext"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 20, "audio/mpeg", "mp3"),
        (MP3_FRAME, "audio/mpeg", "mp3"),
        (b"\xff\xf3\x90\x64" + b"\x00" * 10, "audio/mpeg", "mp3"),  # MPEG-2 layer III
        (b"\xff\xf1\x50\x80" + b"\x00" * 10, "audio/aac", "aac"),  # ADTS
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", "audio/wav", "wav"),
        (b"OggS\x00\x02" + b"\x00" * 20, "audio/ogg", "ogg"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac", "flac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4", "m4a"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "audio/mp4", "m4a"),
        (b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x00", "audio/3gpp", "3gp"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "audio/webm", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "audio/x-matroska", "mka"),
        (b"#!AMR\n\x3c", "audio/amr", "amr"),
        (b"#!AMR-WB\n\x3c", "audio/amr-wb", "awb"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf", "pdf"),
    ],
)
def test_sniff_recognises_media(head: bytes, mime: str, ext: str) -> None:
    result = sniff(head)
    assert result is not None
    assert (result.mime, result.ext) == (mime, ext)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world",
        b"\xff\xff\xff\xff",  # sync bits but reserved layer/bitrate values
        b"\xff\xe9\x90\x00",  # MPEG version bits 01 are reserved
        b"\xff\xfb\xf0\x00",  # bitrate index 1111 is invalid
        b"<!DOCTYPE html><html>%PDF-1.4</html>",  # HTML mentioning %PDF- is not a PDF
        b'{"error": true, "message": "Not found"}',
        b"RIFF\x00\x00\x00\x00AVI ",
    ],
)
def test_sniff_rejects_non_media(head: bytes) -> None:
    assert sniff(head) is None


@pytest.mark.parametrize(
    "head",
    [
        b"<!DOCTYPE html><html><body>Login</body></html>",
        b"<!doctype HTML>",
        b"  \r\n\t<html lang='en'>",
        b"\xef\xbb\xbf<!DOCTYPE html>",
        b"<!-- cdn error --><HTML>",
        b"<head><title>403</title></head>",
        "\ufeff<html>".encode("utf-16-le"),
    ],
)
def test_looks_like_html(head: bytes) -> None:
    assert looks_like_html(head)


@pytest.mark.parametrize("head", [MP3_FRAME, b"%PDF-1.4", b"<?xml version='1.0'?><Error/>", b""])
def test_not_html(head: bytes) -> None:
    assert not looks_like_html(head)


def test_xml_error_document() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Request has expired</Message></Error>"
    )
    assert looks_like_xml_error(body)
    assert xml_error_code(body) == "AccessDenied"
    assert looks_like_xml_error(b"  <Error><Code>NoSuchKey</Code></Error>")
    assert not looks_like_xml_error(b'<?xml version="1.0"?><ListBucketResult/>')
    assert not looks_like_xml_error(MP3_FRAME)
    assert xml_error_code(b"no code here") is None


def test_expected_for_kind() -> None:
    assert expected_for("pdf") == frozenset({"application/pdf"})
    assert expected_for("audio") == AUDIO_TYPES
    assert "application/pdf" not in expected_for("audio")
    assert all(m.startswith("audio/") for m in expected_for("audio"))
    with pytest.raises(ValueError):
        expected_for("video")


def test_extension_for() -> None:
    assert extension_for("audio/mpeg") == "mp3"
    assert extension_for("Application/PDF; charset=binary") == "pdf"
    assert extension_for("text/html") is None
    assert extension_for(None) is None
