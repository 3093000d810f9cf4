"""The TrueType fonts of the dossier, and what they can draw.

PDF/A forbids unembedded fonts (so none of the base-14 Helvetica family) and forbids drawing
the ``.notdef`` glyph. We use DejaVu Sans (Latin, Greek, Cyrillic, ...), shipped in
``font_files/`` so that every machine renders the same bytes; the system's DejaVu and then
Bitstream Vera (shipped with reportlab, Latin-1 only) are fallbacks for a stripped install.
A character the chosen font cannot draw is replaced by a visible marker and counted
(:meth:`FontSet.drawable`), so the PDF stays valid and the reader is told; the archived
record keeps the exact text.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import reportlab
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

_DEJAVU_DIRS = (
    # Shipped with the package first: the same font files on every machine give
    # byte-identical re-renders, which verify relies on.
    Path(__file__).parent / "font_files",
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

# Names registered with reportlab; stable whatever files back them.
SANS = "DossierSans"
SANS_BOLD = "DossierSans-Bold"
SANS_ITALIC = "DossierSans-Italic"
MONO = "DossierMono"

# Characters we allow through even though they are not "printable" glyphs.
_KEEP = {"\n", "\t"}


@dataclass(frozen=True)
class FontSet:
    """The four faces used by the dossier, registered with reportlab under fixed names."""

    family: str  # "DejaVu Sans" or "Bitstream Vera Sans"
    files: dict[str, Path]
    coverage: frozenset[int] = field(repr=False)
    marker: str = "?"

    undrawable: re.Pattern[str] = field(repr=False, default=re.compile("(?!)"))

    def drawable(self, text: str) -> tuple[str, int]:
        """Return ``text`` with every character the fonts cannot draw replaced by
        :attr:`marker`, and how many were replaced. Control characters are replaced too."""
        if self.undrawable.search(text) is None:  # the common case, at C speed
            return text, 0
        return self.undrawable.subn(self.marker, text)


def _undrawable_pattern(coverage: frozenset[int]) -> re.Pattern[str]:
    """A regex matching any character outside ``coverage`` (newline and tab allowed)."""
    cps = sorted(coverage | {ord(c) for c in _KEEP})
    ranges: list[str] = []
    start = prev = cps[0]
    for cp in [*cps[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
        start = prev = cp
    return re.compile("[^" + "".join(ranges) + "]")


def _dejavu_dir() -> Path | None:
    override = os.environ.get("ARCHIVER_DOSSIER_FONT_DIR")
    candidates = (Path(override),) if override else _DEJAVU_DIRS
    for d in candidates:
        if all((d / name).is_file() for name in _DEJAVU.values()):
            return d
    return None


def _coverage(paths: list[Path]) -> frozenset[int]:
    """Code points every face can draw (the intersection), minus control characters."""
    common: set[int] | None = None
    for p in paths:
        face = TTFont("_probe", str(p))
        cps = set(face.face.charToGlyph)
        common = cps if common is None else common & cps
    assert common is not None
    return frozenset(cp for cp in common if cp >= 0x20 and not 0x7F <= cp < 0xA0)


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


@cache
def load_fonts() -> FontSet:
    """Register the dossier fonts with reportlab (once per process) and return them.

    ``ARCHIVER_DOSSIER_FONT_DIR`` may point at a directory holding the DejaVu files.
    """
    d = _dejavu_dir()
    if d is not None:
        family, files = "DejaVu Sans", {k: d / v for k, v in _DEJAVU.items()}
    else:
        family, files = "Bitstream Vera Sans", {k: _VERA_DIR / v for k, v in _VERA.items()}
    for name, key in (
        (SANS, "regular"),
        (SANS_BOLD, "bold"),
        (SANS_ITALIC, "italic"),
        (MONO, "mono"),
    ):
        font = TTFont(name, str(files[key]))
        _fix_trailing_hmetrics(font)
        pdfmetrics.registerFont(font)
    addMapping(SANS, 0, 0, SANS)
    addMapping(SANS, 1, 0, SANS_BOLD)
    addMapping(SANS, 0, 1, SANS_ITALIC)
    addMapping(SANS, 1, 1, SANS_BOLD)
    # Mono only ever draws hashes, keys and ids (ASCII), so it does not narrow the coverage.
    coverage = _coverage([files["regular"], files["bold"], files["italic"]])
    marker = "\ufffd" if 0xFFFD in coverage else "?"
    return FontSet(
        family=family,
        files=files,
        coverage=coverage,
        marker=marker,
        undrawable=_undrawable_pattern(coverage),
    )
