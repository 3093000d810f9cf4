"""Recognise media types from their first bytes. Pure functions, no I/O.

The downloader never trusts the declared ``Content-Type``: a signed URL that expired or a
misconfigured CDN answers ``200 OK`` with an HTML login page or an XML error document, and
that must never be archived as a "call recording". :func:`sniff` reads the magic numbers;
:func:`looks_like_html` / :func:`looks_like_xml_error` spot the two classic impostors.

Sniffing needs at most :data:`SNIFF_BYTES` bytes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "SNIFF_BYTES",
    "AUDIO_TYPES",
    "PDF_TYPES",
    "SniffResult",
    "sniff",
    "looks_like_html",
    "looks_like_xml_error",
    "xml_error_code",
    "expected_for",
    "extension_for",
]

#: How many leading bytes :func:`sniff` and the page detectors look at.
SNIFF_BYTES = 4096

# Container formats can hold video too; from the first bytes we cannot tell a call recording in
# an MP4/WebM container from a video, and telephony platforms do export audio-only MP4/WebM.
# They are reported under their audio MIME type so the archive names them .m4a / .webm.
_EXTENSIONS: dict[str, str] = {
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
    "audio/wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
    "audio/3gpp": "3gp",
    "audio/webm": "webm",
    "audio/x-matroska": "mka",
    "audio/amr": "amr",
    "audio/amr-wb": "awb",
    "application/pdf": "pdf",
}

AUDIO_TYPES: frozenset[str] = frozenset(m for m in _EXTENSIONS if m.startswith("audio/"))
PDF_TYPES: frozenset[str] = frozenset({"application/pdf"})


class SniffResult(NamedTuple):
    """What the first bytes say: a MIME type and the file extension to archive it under."""

    mime: str
    ext: str


def _result(mime: str) -> SniffResult:
    return SniffResult(mime, _EXTENSIONS[mime])


# MPEG audio frame header: 11 sync bits, then version (2 bits), layer (2 bits), protection (1),
# bitrate index (4), sample-rate index (2). Reserved values rule out random 0xFF bytes.
def _is_mpeg_frame(head: bytes) -> bool:
    if len(head) < 3 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and sample_rate != 0b11


# AAC in ADTS framing uses the same 12-bit sync 0xFFF but layer bits 00.
def _is_adts_frame(head: bytes) -> bool:
    if len(head) < 3 or head[0] != 0xFF or (head[1] & 0xF6) != 0xF0:
        return False
    sampling_index = (head[2] >> 2) & 0b1111
    return sampling_index < 13


_3GP_BRANDS = (b"3gp", b"3g2")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# The PDF header may follow a little junk; readers accept it within the first 1024 bytes.
_PDF_WINDOW = 1024


def sniff(head: bytes) -> SniffResult | None:
    """Identify audio or PDF content from its first bytes, or ``None`` if unrecognised.

    Recognises MP3 (ID3 tag or MPEG frame sync), AAC (ADTS), WAV, OGG, FLAC, M4A/MP4, 3GP,
    WebM/Matroska, AMR and PDF. HTML and XML error pages are *not* media: they give ``None``
    (check them first with :func:`looks_like_html` / :func:`looks_like_xml_error`).
    """
    if head.startswith(b"ID3") and len(head) >= 10:
        return _result("audio/mpeg")
    if _is_mpeg_frame(head):
        return _result("audio/mpeg")
    if _is_adts_frame(head):
        return _result("audio/aac")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _result("audio/wav")
    if head.startswith(b"OggS"):
        return _result("audio/ogg")
    if head.startswith(b"fLaC"):
        return _result("audio/flac")
    if head[4:8] == b"ftyp":
        if head[8:11] in _3GP_BRANDS:
            return _result("audio/3gpp")
        # M4A brands and the generic MP4 brands (isom, mp41, mp42, dash...): see _EXTENSIONS.
        return _result("audio/mp4")
    if head.startswith(_EBML_MAGIC):
        # The EBML header names the DocType in its first few dozen bytes.
        return _result("audio/webm" if b"webm" in head[:64] else "audio/x-matroska")
    if head.startswith(b"#!AMR-WB\n"):
        return _result("audio/amr-wb")
    if head.startswith(b"#!AMR\n"):
        return _result("audio/amr")
    if b"%PDF-" in head[:_PDF_WINDOW] and not looks_like_html(head):
        return _result("application/pdf")
    return None


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")


def _text_start(head: bytes) -> bytes:
    """The head without a byte-order mark and leading whitespace, lower-cased, NULs dropped
    (so a UTF-16 page reads like ASCII)."""
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    return head[:SNIFF_BYTES].replace(b"\x00", b"").lstrip().lower()


def looks_like_html(head: bytes) -> bool:
    """True if ``head`` starts an HTML page (``<!doctype html``, ``<html``, ``<head``, ``<body``,
    possibly after a BOM, whitespace or HTML comments), whatever its case."""
    text = _text_start(head)
    # Pages often open with a comment before the doctype.
    while text.startswith(b"<!--"):
        end = text.find(b"-->")
        if end < 0:
            return False
        text = text[end + 3 :].lstrip()
    return text.startswith(_HTML_STARTS)


def looks_like_xml_error(head: bytes) -> bool:
    """True if ``head`` is an XML error document such as S3's
    ``<?xml ...?><Error><Code>AccessDenied</Code>...``."""
    text = _text_start(head)
    if text.startswith(b"<?xml"):
        return b"<error>" in text or b"<error " in text
    return text.startswith(b"<error>")


_CODE = re.compile(rb"<Code>\s*([A-Za-z0-9._-]{1,64})\s*</Code>")


def xml_error_code(body: bytes) -> str | None:
    """The ``<Code>`` of an S3-style XML error body (safe to log: never a secret), if any."""
    match = _CODE.search(body[: 4 * SNIFF_BYTES])
    return match.group(1).decode("ascii") if match else None


def expected_for(kind: str) -> frozenset[str]:
    """The MIME types acceptable for a media kind: any audio type for ``audio``, PDF for ``pdf``.

    Raises :class:`ValueError` for an unknown kind.
    """
    if kind == "audio":
        return AUDIO_TYPES
    if kind == "pdf":
        return PDF_TYPES
    raise ValueError(f"unknown media kind {kind!r}")


def extension_for(mime: str | None) -> str | None:
    """The archive file extension for a sniffed MIME type (``audio/mpeg`` -> ``mp3``)."""
    if mime is None:
        return None
    return _EXTENSIONS.get(mime.split(";", 1)[0].strip().lower())
