"""Deterministic media for the simulator: WAV and MP3 recordings, PDF letters.

Audio of any size is *streamed*: a file is a small header followed by "units" (a 16 KiB block of
PCM samples for WAV, one 417-byte MPEG frame for MP3) picked from a small per-seed palette by a
cheap hash of the unit index. Any byte range can therefore be produced without building the file,
so a 500 MB recording costs a few KiB of memory and the same seed always gives the same bytes.

* WAV: RIFF/PCM, 8 kHz, 16-bit, mono (what telephony recorders write); parses with ``wave``.
* MP3: an ID3v2.3 tag (title frame + padding that makes the size exact) then MPEG-1 Layer III
  frames, 128 kbit/s, 44.1 kHz, mono. Each frame has a valid header (``FF FB 90 C0``), empty side
  information (so decoders play silence) and seeded ancillary bytes (so seeds differ).
* PDF: a short French collection letter made with reportlab (``invariant=1``: no timestamps or
  random ids, so identical input gives identical bytes).
"""

from __future__ import annotations

import functools
import io
import math
import random
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHUNK_SIZE = 64 * 1024

WAV_RATE = 8000
WAV_HEADER_SIZE = 44
WAV_UNIT = 16 * 1024

MP3_FRAME_HEADER = b"\xff\xfb\x90\xc0"  # MPEG-1 Layer III, no CRC, 128 kbit/s, 44.1 kHz, mono
MP3_FRAME_SIZE = 417  # 144 * 128000 / 44100, no padding bit
MP3_SIDE_INFO = 17  # mono MPEG-1: all zero = main_data_begin 0, part2_3_length 0 -> silence
MP3_BYTES_PER_SECOND = 16000  # 128 kbit/s

PALETTE_SIZE = 8

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "pdf": "application/pdf"}


@dataclass(frozen=True)
class MediaSource:
    """A media file that is never held whole in memory: ``header`` + units from ``palette``."""

    fmt: str
    size: int
    header: bytes
    palette: tuple[bytes, ...] = ()
    unit_size: int = 1
    key: int = 0

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    def _unit(self, index: int) -> bytes:
        # Knuth multiplicative hash: cheap, deterministic, spreads consecutive indexes.
        pick = (((index + 1) * 2654435761 + self.key) & 0xFFFFFFFF) >> 29
        return self.palette[pick % len(self.palette)]

    def iter_range(
        self, start: int = 0, stop: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Yield the bytes ``[start, stop)`` in chunks of about ``chunk_size``."""
        stop = self.size if stop is None else min(stop, self.size)
        pos = max(0, start)
        hlen = len(self.header)
        if pos < hlen and pos < stop:
            end = min(hlen, stop)
            yield self.header[pos:end]
            pos = end
        buf: list[bytes] = []
        buffered = 0
        while pos < stop:
            body_pos = pos - hlen
            index, offset = divmod(body_pos, self.unit_size)
            piece = self._unit(index)[offset : offset + (stop - pos)]
            buf.append(piece)
            buffered += len(piece)
            pos += len(piece)
            if buffered >= chunk_size:
                yield b"".join(buf)
                buf, buffered = [], 0
        if buf:
            yield b"".join(buf)

    def read_all(self) -> bytes:
        """The whole file (tests and small files only)."""
        return b"".join(self.iter_range())


@functools.lru_cache(maxsize=16)
def _wav_palette(seed: int) -> tuple[bytes, ...]:
    """Blocks of speech-like tone (a carrier modulated at syllable rate, plus noise)."""
    rng = random.Random(f"wav-palette:{seed}")
    blocks = []
    n_samples = WAV_UNIT // 2
    for _ in range(PALETTE_SIZE):
        freq = rng.uniform(110.0, 320.0)
        amp = rng.uniform(1500.0, 7000.0)
        syllables = rng.uniform(2.0, 5.0)
        noise = [rng.randint(-250, 250) for _ in range(64)]
        samples = array(
            "h",
            (
                int(
                    amp
                    * math.sin(2 * math.pi * freq * n / WAV_RATE)
                    * (0.55 + 0.45 * math.sin(2 * math.pi * syllables * n / WAV_RATE))
                )
                + noise[n & 63]
                for n in range(n_samples)
            ),
        )
        if sys.byteorder == "big":  # WAV samples are little-endian
            samples.byteswap()
        blocks.append(samples.tobytes())
    return tuple(blocks)


@functools.lru_cache(maxsize=16)
def _mp3_palette(seed: int) -> tuple[bytes, ...]:
    rng = random.Random(f"mp3-palette:{seed}")
    ancillary = MP3_FRAME_SIZE - len(MP3_FRAME_HEADER) - MP3_SIDE_INFO
    return tuple(
        MP3_FRAME_HEADER + bytes(MP3_SIDE_INFO) + rng.randbytes(ancillary)
        for _ in range(PALETTE_SIZE)
    )


def _media_key(seed: int, name: str) -> int:
    return random.Random(f"media-key:{seed}:{name}").getrandbits(32)


def wav_source(seed: int, name: str, size: int) -> MediaSource:
    """A RIFF/PCM WAV of ``size`` bytes (rounded down to an even size, at least 46 bytes)."""
    size = max(WAV_HEADER_SIZE + 2, size - (size % 2))
    data_len = size - WAV_HEADER_SIZE
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_len,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size
        1,  # PCM
        1,  # mono
        WAV_RATE,
        WAV_RATE * 2,  # byte rate
        2,  # block align
        16,  # bits per sample
        b"data",
        data_len,
    )
    return MediaSource("wav", size, header, _wav_palette(seed), WAV_UNIT, _media_key(seed, name))


def _syncsafe(n: int) -> bytes:
    return bytes(((n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F))


def mp3_source(seed: int, name: str, size: int, title: str = "Call recording") -> MediaSource:
    """An MP3 of exactly ``size`` bytes (at least one frame): ID3v2.3 tag, then frames."""
    text = b"\x00" + title.encode("latin-1", "replace")
    frames = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    minimum = 10 + len(frames)
    size = max(size, minimum + MP3_FRAME_SIZE)
    n_frames = (size - minimum) // MP3_FRAME_SIZE
    padding = size - minimum - n_frames * MP3_FRAME_SIZE
    tag = b"ID3\x03\x00\x00" + _syncsafe(len(frames) + padding) + frames + bytes(padding)
    return MediaSource("mp3", size, tag, _mp3_palette(seed), MP3_FRAME_SIZE, _media_key(seed, name))


def audio_source(seed: int, name: str, fmt: str, size: int, title: str) -> MediaSource:
    """A WAV or MP3 source (``fmt`` is ``"wav"`` or ``"mp3"``)."""
    if fmt == "wav":
        return wav_source(seed, name, size)
    if fmt == "mp3":
        return mp3_source(seed, name, size, title)
    raise ValueError(f"unknown audio format {fmt!r}")


def audio_duration_ms(fmt: str, size: int) -> int:
    """Playing time that matches the byte size of a recording of this format."""
    per_second = WAV_RATE * 2 if fmt == "wav" else MP3_BYTES_PER_SECOND
    return int(size * 1000 / per_second)


def letter_pdf(followup: dict[str, Any], debt: dict[str, Any]) -> bytes:
    """A one-page French reminder letter for a ``postmail`` followup (deterministic bytes)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, invariant=1)
    pdf.setTitle(f"Courrier {followup['id']}")
    pdf.setAuthor(str((debt.get("company") or {}).get("name", "getbill")))
    width, height = A4
    y = height - 72
    creditor = (debt.get("company") or {}).get("name", "")
    lines = [
        (14, creditor),
        (10, "Service recouvrement"),
        (10, ""),
        (10, f"{debt.get('civility', '')} {debt.get('firstname', '')} {debt.get('lastname', '')}"),
        (10, f"{debt.get('street_number', '')} {debt.get('street_address', '')}"),
        (10, f"{debt.get('postal_code', '')} {debt.get('city', '')}"),
        (10, ""),
        (10, f"Le {str(followup.get('scheduled_at') or '')[:10]}"),
        (12, "Objet : relance amiable — facture impayée"),
        (10, ""),
        (
            10,
            f"Référence dossier : {debt.get('invoice_reference', '')} (courrier {followup['id']})",
        ),
        (10, f"Montant restant dû : {debt.get('amount_text', '')}"),
        (10, ""),
        (10, "Madame, Monsieur,"),
        (10, "Sauf erreur de notre part, la facture référencée ci-dessus demeure impayée à ce"),
        (10, "jour. Nous vous remercions de bien vouloir régulariser la situation sous huit jours"),
        (10, "ou de prendre contact avec notre service pour convenir d'un échéancier."),
        (10, ""),
        (10, "Veuillez agréer, Madame, Monsieur, nos salutations distinguées."),
    ]
    for font_size, text in lines:
        pdf.setFont("Helvetica-Bold" if font_size > 10 else "Helvetica", font_size)
        pdf.drawString(72, y, text)
        y -= font_size + 8
    pdf.setFont("Helvetica", 7)
    pdf.drawString(72, 40, "Document généré par le simulateur getbill (données fictives).")
    pdf.showPage()
    pdf.save()
    return buf.getvalue()


def pdf_source(data: bytes) -> MediaSource:
    """Wrap already generated PDF bytes as a source."""
    return MediaSource("pdf", len(data), data)
