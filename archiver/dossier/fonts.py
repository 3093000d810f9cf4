"""The TrueType fonts of the dossier, what each can draw, and how their glyphs are encoded.

PDF/A forbids unembedded fonts (so none of the base-14 Helvetica family) and forbids drawing
the ``.notdef`` glyph. Every font is shipped in ``font_files/`` (``SOURCES.txt`` there says
where each comes from) so that every machine renders the same bytes:

- DejaVu Sans (regular, bold, oblique) and DejaVu Sans Mono: the text faces (Latin, Greek,
  Cyrillic, Hebrew, most symbols). The system's DejaVu and then Bitstream Vera (shipped with
  reportlab, Latin-1 only) stand in for a stripped install.
- Noto Sans Arabic (regular, bold): Arabic script, shaped with HarfBuzz.
- Noto Emoji (monochrome outlines): emoji and pictographs.

Each text face has a fallback chain (:attr:`FontSet.chains`); :mod:`.textlayout` picks, for
each character, the first font of the chain that has it. A character no font has is drawn as
a visible ``[U+XXXX]`` marker and counted; the archived record keeps the exact text.

:class:`DossierFont` draws the glyphs HarfBuzz chooses (contextual Arabic forms, emoji
sequences), which have no character of their own, under private code points, and writes a
ToUnicode map that gives every drawn glyph back as the text it stands for, characters outside
the Basic Multilingual Plane as UTF-16 surrogate pairs: copy and search return the record's
text.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import reportlab
import uharfbuzz
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import SUBSETN, TTFont

FONT_DIR = Path(__file__).parent / "font_files"
_DEJAVU_DIRS = (
    # Shipped with the package first: the same font files on every machine give
    # byte-identical re-renders, which verify relies on.
    FONT_DIR,
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian / Ubuntu: fonts-dejavu-core
    Path("/usr/share/fonts/dejavu"),  # Fedora, Arch
    Path("/usr/local/share/fonts/dejavu"),
)
_DEJAVU = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "italic": "DejaVuSans-Oblique.ttf",
    "mono": "DejaVuSansMono.ttf",
}
_VERA_DIR = Path(reportlab.__file__).parent / "fonts"
_VERA = {"regular": "Vera.ttf", "bold": "VeraBd.ttf", "italic": "VeraIt.ttf", "mono": "Vera.ttf"}
_NOTO = {
    "arabic": "NotoSansArabic-Regular.ttf",
    "arabic_bold": "NotoSansArabic-Bold.ttf",
    "emoji": "NotoEmoji-Regular.ttf",
}

# Names registered with reportlab; stable whatever files back them.
SANS = "DossierSans"
SANS_BOLD = "DossierSans-Bold"
SANS_ITALIC = "DossierSans-Italic"
MONO = "DossierMono"
ARABIC = "DossierArabic"
ARABIC_BOLD = "DossierArabic-Bold"
EMOJI = "DossierEmoji"

# Private code points standing for glyphs that have no character (plane 15, which no font
# of ours maps); each font family has its own numbering.
_PRIVATE_FIRST, _PRIVATE_LAST = 0xF0000, 0xFFFFD


class GlyphCodes:
    """Code points for glyphs without a character of their own, shared by the faces of one
    family (regular and bold Noto Sans Arabic have the same glyph order, so a shaped word
    means the same code points in both). The numbering only lives in this process: what
    reaches the PDF is the glyph and, in ToUnicode, the text it stands for."""

    def __init__(self) -> None:
        self.fonts: list[DossierFont] = []
        self.text: dict[int, str] = {}  # private code point -> the text its glyph stands for
        self._codes: dict[tuple[int, str], int] = {}
        self._next = _PRIVATE_FIRST
        self._lock = threading.Lock()

    def code(self, gid: int, text: str) -> int:
        """The code point drawing glyph ``gid`` of these fonts, standing for ``text``."""
        key = (gid, text)
        found = self._codes.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._codes.get(key)
            if found is not None:
                return found
            cp = self._next
            while any(cp in f.face.charToGlyph for f in self.fonts):
                cp += 1
            if cp > _PRIVATE_LAST:
                raise RuntimeError("no private code point left for shaped glyphs")
            self._next = cp + 1
            for f in self.fonts:
                f.add_code(cp, gid)
            self.text[cp] = text
            self._codes[key] = cp
            return cp


class DossierFont(TTFont):
    """A TrueType font that also draws shaped glyphs and writes a truthful ToUnicode map."""

    def __init__(self, name: str, path: Path, codes: GlyphCodes | None = None) -> None:
        # shapable=False: reportlab's own shaping never runs; :mod:`.textlayout` shapes.
        super().__init__(name, str(path), shapable=False)
        _fix_trailing_hmetrics(self)
        self.codes = codes if codes is not None else GlyphCodes()
        self.codes.fonts.append(self)
        self.units_per_em = int(self.face.unitsPerEm)
        self._hb: uharfbuzz.Font | None = None

    @property
    def hb(self) -> uharfbuzz.Font:
        """The HarfBuzz font over the same bytes (positions in font units)."""
        if self._hb is None:
            self._hb = uharfbuzz.Font(uharfbuzz.Face(uharfbuzz.Blob(self.face._ttf_data)))
        return self._hb

    def glyph_width(self, gid: int) -> float:
        """Advance of glyph ``gid`` in thousandths of the font size (as PDF /Widths)."""
        return float(self.face.hmetrics[gid][0]) * 1000 / self.units_per_em

    def add_code(self, cp: int, gid: int) -> None:
        """Make code point ``cp`` draw glyph ``gid``."""
        face = self.face
        face.charToGlyph[cp] = gid
        face.glyphToChar.setdefault(gid, []).append(cp)
        face.charWidths[cp] = self.glyph_width(gid)

    def char_for(self, gid: int, text: str) -> str:
        """The character to draw glyph ``gid`` standing for ``text``: the glyph's own
        character when it is that text, else a private code point of the family."""
        if len(text) == 1 and self.face.charToGlyph.get(ord(text)) == gid:
            return text
        return chr(self.codes.code(gid, text))

    def source_text(self, cp: int) -> str:
        """The text code point ``cp`` of this font stands for."""
        return self.codes.text.get(cp, chr(cp))

    def splitString(  # noqa: N802 (reportlab API)
        self, text: str, doc: Any, encoding: str = "utf-8"
    ) -> list[tuple[int, bytes]]:
        """reportlab's (subset, codes) runs of ``text``, remembered per document: a dossier
        draws the same labels, dates and statuses thousands of times, and reportlab walks
        every character again each time. Exact: a character keeps the code it was first
        given in a document, so a text seen before splits the same way again. (The split
        also asks whether the font has each character; the private code points that
        :meth:`add_code` adds for shaped glyphs exist before any text holds them; record
        text never holds one otherwise, :meth:`FontSet.drawable` marks them, and ids are
        ASCII, checked safe before anything is drawn.)"""
        state = self.state.get(doc)
        seen: dict[str, tuple[tuple[int, bytes], ...]] | None = getattr(state, "splits", None)
        if seen is not None and (runs := seen.get(text)) is not None:
            return list(runs)
        result: list[tuple[int, bytes]] = super().splitString(text, doc, encoding)
        if seen is None:
            seen = self.state[doc].splits = {}
        seen[text] = tuple(result)
        return result

    def addObjects(self, doc: Any) -> None:  # noqa: N802 (reportlab API)
        """reportlab's subsets, with our ToUnicode maps in place of reportlab's (which write
        code points above U+FFFF as 5 hex digits, an invalid string, and shaped glyphs as
        private code points)."""
        state = self.state.get(doc)
        subsets = [list(s) for s in state.subsets] if state is not None else []
        super().addObjects(doc)
        for n, subset in enumerate(subsets):
            base = b"".join((SUBSETN(n), b"+", self.face.name, self.face.subfontNameX)).decode(
                "pdfdoc"
            )
            stream = doc.idToObject.get("toUnicodeCMap:" + base)
            if isinstance(stream, pdfdoc.PDFStream):
                stream.content = to_unicode_cmap(base, subset, self.source_text)


def _utf16_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def to_unicode_cmap(name: str, subset: list[int], text_of: Callable[[int], str]) -> str:
    """A ToUnicode CMap for a one-byte font ``subset`` (code -> code point), each code mapped
    to ``text_of(code point)`` in UTF-16BE. Code 0 (``.notdef``) and glyphs that stand for
    nothing (the second glyph of a cluster) get no entry. At most 100 entries per block."""
    entries = []
    for code, cp in enumerate(subset):
        text = text_of(cp) if cp else ""
        if text:
            entries.append(f"<{code:02X}> <{_utf16_hex(text)}>")
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo",
        f"<< /Registry ({name})",
        f"/Ordering ({name})",
        "/Supplement 0",
        ">> def",
        f"/CMapName /{name} def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        f"<00> <{max(len(subset) - 1, 0):02X}>",
        "endcodespacerange",
    ]
    for i in range(0, len(entries), 100):
        block = entries[i : i + 100]
        lines += [f"{len(block)} beginbfchar", *block, "endbfchar"]
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines)


# Arabic script blocks: their characters go to the Arabic font first (DejaVu has unjoined
# Arabic too, which Noto Sans Arabic does far better).
ARABIC_RANGES = (
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x0870, 0x08FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
)


def is_arabic(cp: int) -> bool:
    """Whether code point ``cp`` is in an Arabic script block."""
    if cp < 0x0600:
        return False
    return any(lo <= cp <= hi for lo, hi in ARABIC_RANGES)


def is_emoji(cp: int) -> bool:
    """Pictographs the emoji font draws first (the text faces keep BMP symbols: ☺ ✓ ★)."""
    return 0x1F000 <= cp <= 0x1FAFF


@dataclass(frozen=True)
class FontSet:
    """The dossier's fonts, registered with reportlab under fixed names."""

    family: str  # what the colophon names: "DejaVu Sans, Noto Sans Arabic and Noto Emoji"
    text_family: str  # the text faces: "DejaVu Sans" or "Bitstream Vera Sans"
    files: dict[str, Path]
    # Fallback chain of each text face: first the face, then what draws what it lacks.
    chains: dict[str, tuple[str, ...]] = field(repr=False)
    arabic: dict[str, str] = field(repr=False)  # text face -> its Arabic font
    covers: dict[str, frozenset[int]] = field(repr=False)  # font -> code points it has
    # Code points the body text (SANS and its fallbacks) can draw; control characters excluded.
    coverage: frozenset[int] = field(repr=False)
    marker: str = "[U+XXXX]"  # how a character no font has is shown

    undrawable: re.Pattern[str] = field(repr=False, default=re.compile("(?!)"))

    def drawable(self, text: str) -> tuple[str, int]:
        """Return ``text`` with every character no font can draw replaced by its visible
        marker ``[U+XXXX]``, and how many were replaced. Control characters are replaced
        too (tab and newline are kept)."""
        if self.undrawable.search(text) is None:  # the common case, at C speed
            return text, 0
        return self.undrawable.subn(lambda m: marker_text(m.group()), text)

    def font(self, name: str) -> DossierFont:
        """The registered font called ``name``."""
        font = pdfmetrics.getFont(name)
        assert isinstance(font, DossierFont), name
        return font


def marker_text(ch: str) -> str:
    """The visible stand-in for a character that cannot be drawn: ``[U+4E2D]``."""
    return f"[U+{ord(ch):04X}]"


# Characters allowed through although they are not printable glyphs.
_KEEP = {"\n", "\t"}


def invisible(ch: str) -> bool:
    """Characters that draw nothing (format controls, joiners, variation selectors): never
    a marker, handed to HarfBuzz with their neighbours."""
    return unicodedata.category(ch) == "Cf" or 0xFE00 <= ord(ch) <= 0xFE0F


def _char_class(cps: set[int]) -> str:
    """A regex character class body matching exactly ``cps``."""
    ranges: list[str] = []
    ordered = sorted(cps)
    if not ordered:
        return ""
    start = prev = ordered[0]
    for cp in [*ordered[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
        start = prev = cp
    return "".join(ranges)


def _undrawable_pattern(coverage: frozenset[int]) -> re.Pattern[str]:
    """A regex matching any character outside ``coverage`` (newline, tab and the invisible
    format characters allowed)."""
    allowed = set(coverage) | {ord(c) for c in _KEEP}
    allowed |= {cp for cp in range(0x2000, 0x2070) if invisible(chr(cp))}
    allowed |= set(range(0xFE00, 0xFE10)) | {0xFEFF, 0x00AD}
    return re.compile("[^" + _char_class(allowed) + "]")


def _dejavu_dir() -> Path | None:
    override = os.environ.get("ARCHIVER_DOSSIER_FONT_DIR")
    candidates = (Path(override),) if override else _DEJAVU_DIRS
    for d in candidates:
        if all((d / name).is_file() for name in _DEJAVU.values()):
            return d
    return None


def _printable(font: DossierFont) -> frozenset[int]:
    """Code points ``font`` can draw, minus control characters."""
    return frozenset(
        cp for cp in font.face.charToGlyph if cp >= 0x20 and not 0x7F <= cp < 0xA0 and cp < 0xF0000
    )


def _fix_trailing_hmetrics(font: TTFont) -> None:
    """Work around a reportlab (5.1) subsetting bug.

    For glyphs after ``numberOfHMetrics`` (all glyphs of a monospaced font share the last
    advance), reportlab keeps the advance already scaled to 1000 units and writes it unscaled
    into the embedded subset, so the program's widths disagree with the PDF /Widths: a PDF/A
    violation (ISO 19005-2 6.2.11.5). Put the raw advance back.
    """
    face = font.face
    (count,) = struct.unpack(">H", face.get_table("hhea")[34:36])
    if 0 < count < len(face.hmetrics):
        raw = face.hmetrics[count - 1][0]
        face.hmetrics[count:] = [(raw, lsb) for _aw, lsb in face.hmetrics[count:]]


_LOADING = threading.Lock()


def load_fonts() -> FontSet:
    """Register the dossier fonts with reportlab (once per process) and return them.

    ``ARCHIVER_DOSSIER_FONT_DIR`` may point at a directory holding the DejaVu files. Safe
    from several threads (a run loads them in the background while another renders): the
    first caller loads, the others wait for the same fonts.
    """
    with _LOADING:
        return _load_fonts()


@cache
def _load_fonts() -> FontSet:
    d = _dejavu_dir()
    if d is not None:
        text_family, files = "DejaVu Sans", {k: d / v for k, v in _DEJAVU.items()}
    else:
        text_family, files = "Bitstream Vera Sans", {k: _VERA_DIR / v for k, v in _VERA.items()}
    files |= {k: FONT_DIR / v for k, v in _NOTO.items()}
    arabic_codes = GlyphCodes()
    fonts = {
        SANS: DossierFont(SANS, files["regular"]),
        SANS_BOLD: DossierFont(SANS_BOLD, files["bold"]),
        SANS_ITALIC: DossierFont(SANS_ITALIC, files["italic"]),
        MONO: DossierFont(MONO, files["mono"]),
        ARABIC: DossierFont(ARABIC, files["arabic"], arabic_codes),
        ARABIC_BOLD: DossierFont(ARABIC_BOLD, files["arabic_bold"], arabic_codes),
        EMOJI: DossierFont(EMOJI, files["emoji"]),
    }
    for font in fonts.values():
        pdfmetrics.registerFont(font)
    addMapping(SANS, 0, 0, SANS)
    addMapping(SANS, 1, 0, SANS_BOLD)
    addMapping(SANS, 0, 1, SANS_ITALIC)
    addMapping(SANS, 1, 1, SANS_BOLD)
    chains = {
        SANS: (SANS, ARABIC, EMOJI),
        SANS_BOLD: (SANS_BOLD, ARABIC_BOLD, EMOJI, SANS),
        SANS_ITALIC: (SANS_ITALIC, ARABIC, EMOJI, SANS),
        MONO: (MONO, SANS, ARABIC, EMOJI),
    }
    arabic = {SANS: ARABIC, SANS_BOLD: ARABIC_BOLD, SANS_ITALIC: ARABIC, MONO: ARABIC}
    covers = {name: _printable(font) for name, font in fonts.items()}
    coverage = frozenset().union(*(covers[n] for n in chains[SANS]))
    return FontSet(
        family=f"{text_family}, Noto Sans Arabic and Noto Emoji",
        text_family=text_family,
        files=files,
        chains=chains,
        arabic=arabic,
        covers=covers,
        coverage=coverage,
        undrawable=_undrawable_pattern(coverage),
    )
