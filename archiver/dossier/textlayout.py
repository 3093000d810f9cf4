"""Lays out a line of text in any script: per-character font fallback, right-to-left ordering,
shaping, visible markers; and draws it so that copy and search give the text back.

reportlab draws a string in one font, left to right, one glyph per character. A collection
note can hold French, Arabic and an emoji in one line, so a line that the text face cannot
draw that simply goes through four steps:

1. Bidi: python-bidi resolves the embedding level of each character (UAX #9); a line whose
   characters are all left-to-right skips it.
2. Fonts: each character goes to the first font of its face's chain that has it (Arabic
   script to Noto Sans Arabic first, pictographs to Noto Emoji first); combining marks,
   joiners and variation selectors stay with the character before them. A character no
   font has becomes a ``[U+XXXX]`` marker, drawn in red.
3. Runs (same font, same level) are put in visual order (UAX #9 rule L2) and shaped with
   HarfBuzz: right-to-left runs come back in visual order, mirrored, joined (Arabic
   contextual forms), with mark positions; emoji sequences become their ligature glyph.
4. Drawing: each glyph is placed where HarfBuzz put it, in visual order, which is what PDF
   readers expect: pdftotext and pypdf rebuild the logical order of a right-to-left run.
   :class:`~archiver.dossier.fonts.DossierFont` maps each glyph back to the characters of
   its cluster. The dots HarfBuzz splits off Arabic letters stand for no character: they are
   filled as outlines after the text, so that extraction reads each word whole and finds no
   stray code. (An ActualText span holding the logical line was tried: poppler reverses it
   as if it were visual.)

Text the text face draws as is (the common case: Latin, Greek, Cyrillic) stays on
reportlab's own fast path, byte for byte as before.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import uharfbuzz
from bidi import get_base_level, get_display
from reportlab.lib import colors
from reportlab.lib.colors import Color
from reportlab.lib.rl_accel import fp_str
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject

from .fonts import (
    EMOJI,
    SANS,
    FontSet,
    invisible,
    is_arabic,
    is_emoji,
    load_fonts,
    marker_text,
)

# How a character no font has is drawn (the dossier's alert red).
MARKER_COLOR = colors.HexColor("#b42318")

# Bidi classes that make a line need the bidi algorithm.
_RTL_CLASSES = frozenset({"R", "AL", "AN", "RLE", "RLO", "RLI"})
_LEVEL = re.compile(r"Level\(\s*(\d+),?\s*\)")
_WIDTH_CACHE_MAX = 50_000


@dataclass(frozen=True)
class Style:
    """How a span of text is drawn: a text face (``SANS``, ``SANS_BOLD``, ...), size, colour
    (None: the colour already set)."""

    font: str
    size: float
    color: Color | None = None


@dataclass(frozen=True)
class Piece:
    """One run of a laid-out line, in one font. Plain runs draw ``text`` at the glyphs' own
    advances; shaped runs place ``glyphs`` (``x, y, char, advance`` from the run's start) one
    by one, and ``marks`` (``x, y, glyph id``: glyphs that stand for no character, the dots
    of Arabic letters) as outlines."""

    font: str
    size: float
    color: Color | None
    text: str
    width: float
    glyphs: tuple[tuple[float, float, str, float], ...] | None = None
    marks: tuple[tuple[float, float, int], ...] = ()
    marker: bool = False


@dataclass(frozen=True)
class Line:
    """A laid-out line: its runs in visual order, its width, its logical text, and whether
    its base direction is right to left (then it is aligned right)."""

    pieces: tuple[Piece, ...]
    width: float
    text: str
    rtl: bool = False


class TextLayout:
    """Measures, breaks and lays out text with the dossier's fonts."""

    def __init__(self, fonts: FontSet) -> None:
        self.fonts = fonts
        self._simple = {face: _pattern(fonts, face).search for face in fonts.chains}
        self._widths: dict[tuple[str, str, float], float] = {}

    # ------------------------------------------------------------------ measuring

    def face(self, font: str) -> str:
        """The text face whose chain draws text set in ``font`` (SANS for other fonts)."""
        return font if font in self._simple else SANS

    def simple(self, text: str, font: str) -> bool:
        """Whether ``font`` draws ``text`` as is: every character its own, left to right."""
        search = self._simple.get(font) or self._simple[SANS]
        return search(text) is None

    def width(self, text: str, font: str, size: float) -> float:
        """The width of ``text`` (one line) in points."""
        if self.simple(text, font):
            return stringWidth(text, font, size)
        key = (text, font, size)
        found = self._widths.get(key)
        if found is None:
            if len(self._widths) > _WIDTH_CACHE_MAX:
                self._widths.clear()
            found = self._widths[key] = self.line([(text, Style(font, size))]).width
        return found

    def split(self, text: str, font: str, size: float, width: float) -> list[str]:
        """``text`` (no newline) broken into lines that fit ``width`` points, in logical
        order: at spaces, and inside a word only when the word alone is too wide."""
        space = self.width(" ", font, size)
        lines: list[str] = []
        words: list[str] = []
        used = 0.0
        for token in text.split(" "):
            for part in self._cut(token, font, size, width):
                w = self.width(part, font, size)
                if words and used + space + w > width:
                    lines.append(" ".join(words))
                    words, used = [], 0.0
                used = used + space + w if words else w
                words.append(part)
        lines.append(" ".join(words))
        return lines

    def _cut(self, token: str, font: str, size: float, width: float) -> list[str]:
        """A token wider than ``width`` cut where it still fits (a URL, a key)."""
        parts: list[str] = []
        rest = token
        while len(rest) > 1 and self.width(rest, font, size) > width:
            lo, hi = 1, len(rest) - 1  # the longest prefix that fits, at least one character
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.width(rest[:mid], font, size) <= width:
                    lo = mid
                else:
                    hi = mid - 1
            parts.append(rest[:lo])
            rest = rest[lo:]
        parts.append(rest)
        return parts

    # ------------------------------------------------------------------ layout

    def line(self, spans: Sequence[tuple[str, Style]]) -> Line:
        """Lay out one line given as styled spans in logical order."""
        text = "".join(s for s, _ in spans).replace("\t", " ")
        styles: list[Style] = []
        for s, st in spans:
            styles += [st] * len(s)
        if not text:
            return Line((), 0.0, "")
        if all(self.simple(s, st.font) for s, st in spans):
            pieces = tuple(
                Piece(st.font, st.size, st.color, s, stringWidth(s, st.font, st.size))
                for s, st in spans
                if s
            )
            return Line(pieces, sum(p.width for p in pieces), text)
        levels, rtl = _levels(text)
        fonts = self._assign(text, styles)
        runs = _runs(text, styles, fonts, levels)
        pieces = tuple(self._piece(run_text, st, font, level) for run_text, st, font, level in runs)
        return Line(pieces, sum(p.width for p in pieces), text, rtl)

    def _assign(self, text: str, styles: list[Style]) -> list[str | None]:
        """The font of each character (None: no font has it; a marker)."""
        fonts = self.fonts
        out: list[str | None] = []
        attach: list[int] = []  # invisible characters at the start, before any font
        for i, ch in enumerate(text):
            cp = ord(ch)
            face = self.face(styles[i].font)
            prev = out[-1] if out else None
            cat = unicodedata.category(ch)
            hidden = cat == "Cf" or 0xFE00 <= cp <= 0xFE0F  # as fonts.invisible
            # Marks, joiners, variation selectors and skin-tone modifiers join their base.
            joins = hidden or cat in ("Mn", "Me", "Mc") or 0x1F3FB <= cp <= 0x1F3FF
            if joins and prev is not None and (hidden or cp in fonts.covers[prev]):
                out.append(prev)
                continue
            if hidden:
                attach.append(i)
                out.append(None)
                continue
            chain = fonts.chains[face]
            if is_arabic(cp):
                chain = (fonts.arabic[face], *chain)
            elif is_emoji(cp) or text[i + 1 : i + 2] == "\ufe0f":
                chain = (EMOJI, *chain)
            out.append(next((f for f in chain if cp in fonts.covers[f]), None))
        for i in attach:
            # Give a leading invisible character the font of what follows it.
            out[i] = next((f for f in out[i + 1 :] if f is not None), None) or ""
        return out

    def _piece(self, text: str, st: Style, font: str | None, level: int) -> Piece:
        size = st.size
        if font is None:  # no font has it: a visible marker in the face itself
            face = self.face(st.font)
            mark = marker_text(text)
            w = stringWidth(mark, face, size)
            return Piece(face, size, MARKER_COLOR, mark, w, marker=True)
        if font == st.font and level % 2 == 0 and self.simple(text, font):
            return Piece(font, size, st.color, text, stringWidth(text, font, size))
        return _shape(self.fonts, text, st, font, level % 2 == 1)


def _pattern(fonts: FontSet, face: str) -> re.Pattern[str]:
    """A regex matching any character ``face`` does not draw as is."""
    ok = {
        cp
        for cp in fonts.covers[face]
        if unicodedata.bidirectional(chr(cp)) not in _RTL_CLASSES
        and unicodedata.category(chr(cp)) not in ("Mn", "Me", "Mc", "Cf")
        and not is_arabic(cp)
        and not is_emoji(cp)
        and not 0xFE00 <= cp <= 0xFE0F
    }
    ranges = sorted(ok)
    body: list[str] = []
    start = prev = ranges[0]
    for cp in [*ranges[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        body.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
        start = prev = cp
    return re.compile("[^" + "".join(body) + "]")


def _levels(text: str) -> tuple[list[int], bool]:
    """The bidi embedding level of each character of one line (UAX #9 up to rule L1), and
    whether its base direction is right to left."""
    if not any(unicodedata.bidirectional(c) in _RTL_CLASSES for c in text):
        return [0] * len(text), False
    base = get_base_level(text)
    # python-bidi returns the levels it resolved (one per UTF-8 byte) when asked to debug.
    dump = str(get_display(text, base_dir="R" if base else "L", debug=True))
    start = dump.index("levels:")
    per_byte = [int(n) for n in _LEVEL.findall(dump, start, dump.index("paragraphs:", start))]
    levels: list[int] = []
    pos = 0
    for ch in text:
        levels.append(per_byte[pos])
        pos += len(ch.encode("utf-8"))
    if pos != len(per_byte):
        raise RuntimeError("python-bidi gave levels for another text")
    # L1: trailing whitespace goes back to the paragraph level.
    i = len(text)
    while i > 0 and (text[i - 1].isspace() or invisible(text[i - 1])):
        i -= 1
        levels[i] = base
    return levels, bool(base)


def _runs(
    text: str, styles: list[Style], fonts: list[str | None], levels: list[int]
) -> list[tuple[str, Style, str | None, int]]:
    """Runs of one font, style and level, in visual order (rule L2). A marker is a run of one
    character."""
    runs: list[tuple[str, Style, str | None, int]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if (
            i == len(text)
            or fonts[i] != fonts[start]
            or styles[i] != styles[start]
            or levels[i] != levels[start]
            or fonts[start] is None
        ):
            if fonts[start] != "":  # invisible characters alone: nothing to draw
                runs.append((text[start:i], styles[start], fonts[start], levels[start]))
            start = i
    if not runs:
        return runs
    top = max(r[3] for r in runs)
    lowest_odd = min((r[3] for r in runs if r[3] % 2), default=top + 1)
    for level in range(top, lowest_odd - 1, -1):
        i = 0
        while i < len(runs):
            if runs[i][3] >= level:
                j = i
                while j < len(runs) and runs[j][3] >= level:
                    j += 1
                runs[i:j] = runs[i:j][::-1]
                i = j
            else:
                i += 1
    return runs


def _shape(fonts: FontSet, text: str, st: Style, name: str, rtl: bool) -> Piece:
    """Shape ``text`` in font ``name`` with HarfBuzz; glyphs in visual order."""
    font = fonts.font(name)
    buf = uharfbuzz.Buffer()
    buf.add_str(text)
    buf.guess_segment_properties()
    buf.direction = "rtl" if rtl else "ltr"
    # Marks join their base's cluster: the letter stands for both, the mark is an outline.
    buf.cluster_level = uharfbuzz.BufferClusterLevel.MONOTONE_GRAPHEMES
    uharfbuzz.shape(font.hb, buf, {})
    infos, positions = buf.glyph_infos, buf.glyph_positions
    starts = sorted({info.cluster for info in infos})
    ends = dict(zip(starts, [*starts[1:], len(text)], strict=True))
    scale = st.size / font.units_per_em
    # The glyph standing for a cluster's characters: its first glyph with an advance (a
    # letter, not one of the dots HarfBuzz places on it), else its first glyph.
    bearer: dict[int, int] = {}
    for i, (info, pos) in enumerate(zip(infos, positions, strict=True)):
        c = info.cluster
        if c not in bearer or (pos.x_advance and not positions[bearer[c]].x_advance):
            bearer[c] = i
    glyphs: list[tuple[float, float, str, float]] = []
    marks: list[tuple[float, float, int]] = []
    pen = 0.0
    for i, (info, pos) in enumerate(zip(infos, positions, strict=True)):
        gid, cluster = info.codepoint, info.cluster
        x, y = pen + pos.x_offset * scale, pos.y_offset * scale
        pen += pos.x_advance * scale
        if gid == 0:  # never draw .notdef (an invisible character the font lacks)
            continue
        if bearer[cluster] == i:
            ch = font.char_for(gid, text[cluster : ends[cluster]])
            glyphs.append((x, y, ch, font.glyph_width(gid) * st.size / 1000))
        else:
            marks.append((x, y, gid))
    return Piece(name, st.size, st.color, text, pen, tuple(glyphs), tuple(marks))


# A glyph drawn as an outline: font, glyph id, origin, size, colour.
Mark = tuple[str, int, float, float, float, Color | None]


def draw_line(
    tx: PDFTextObject, line: Line, x: float, y: float, color: Color | None, marks: list[Mark]
) -> None:
    """Draw ``line`` with its left end at ``(x, y)`` (baseline) into text object ``tx``, its
    glyphs in visual order (as PDF readers expect, rebuilding the logical order of a
    right-to-left run themselves). ``color`` is the text colour in effect, set again after a
    run of another colour. Glyphs standing for no character are added to ``marks``, for
    :func:`draw_marks` once the text object is drawn."""
    code = tx._code
    px = x
    for piece in line.pieces:
        if piece.color is not None:
            tx.setFillColor(piece.color)
        if piece.glyphs is None:
            code.append(f"1 0 0 1 {fp_str(px, y)} Tm")
            _show(tx, piece, piece.text)
        else:
            _place(tx, piece, px, y)
            marks += [
                (piece.font, gid, px + mx, y + my, piece.size, piece.color or color)
                for mx, my, gid in piece.marks
            ]
        if piece.color is not None and color is not None:
            tx.setFillColor(color)
        px += piece.width
    # reportlab must select its font again before its next text.
    tx._curSubset = -1


def draw_marks(canv: Canvas, marks: list[Mark]) -> None:
    """Fill the outlines of ``marks`` (after the text object that placed them)."""
    code = canv._code
    for name, gid, x, y, size, color in marks:
        if color is not None:
            canv.setFillColor(color)
        scale = size / load_fonts().font(name).units_per_em
        # The outline in font units, scaled and moved into place; nonzero fill (TrueType).
        code.append(f"q {fp_str(scale)} 0 0 {fp_str(scale)} {fp_str(x, y)} cm")
        code.append(f"{_outline(name, gid)} f Q")


class _Pen:
    """Collects a glyph outline as PDF path operators (quadratic curves made cubic)."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self._at = (0.0, 0.0)

    def moveTo(self, p: tuple[float, float]) -> None:  # noqa: N802 (pen protocol)
        self.ops.append(f"{fp_str(*p)} m")
        self._at = p

    def lineTo(self, p: tuple[float, float]) -> None:  # noqa: N802
        self.ops.append(f"{fp_str(*p)} l")
        self._at = p

    def curveTo(  # noqa: N802
        self, c1: tuple[float, float], c2: tuple[float, float], p: tuple[float, float]
    ) -> None:
        self.ops.append(f"{fp_str(*c1, *c2, *p)} c")
        self._at = p

    def qCurveTo(self, c: tuple[float, float], p: tuple[float, float]) -> None:  # noqa: N802
        (x0, y0), (cx, cy), (x, y) = self._at, c, p
        c1 = (x0 + 2 * (cx - x0) / 3, y0 + 2 * (cy - y0) / 3)
        c2 = (x + 2 * (cx - x) / 3, y + 2 * (cy - y) / 3)
        self.curveTo(c1, c2, p)

    def closePath(self) -> None:  # noqa: N802
        self.ops.append("h")


@cache
def _outline(font: str, gid: int) -> str:
    """The outline of glyph ``gid`` of ``font`` as PDF path operators, in font units."""
    pen = _Pen()
    load_fonts().font(font).hb.draw_glyph_with_pen(gid, pen)
    return " ".join(pen.ops)


def _show(tx: PDFTextObject, piece: Piece, chars: str) -> None:
    """``chars`` of ``piece``'s font at the current point, at their own advances."""
    canv = tx._canvas
    font = load_fonts().font(piece.font)
    for subset, data in font.splitString(chars, canv._doc):
        name = font.getSubsetInternalName(subset, canv._doc)
        tx._code.append(f"{name} {fp_str(piece.size)} Tf ({canv._escape(data)}) Tj")


def _place(tx: PDFTextObject, piece: Piece, x: float, y: float) -> None:
    """The glyphs of a shaped run as one sequence of TJ arrays: HarfBuzz's horizontal
    positions as kerning adjustments, its vertical ones as text rise."""
    assert piece.glyphs is not None
    canv = tx._canvas
    doc = canv._doc
    code = tx._code
    font = load_fonts().font(piece.font)
    code.append(f"1 0 0 1 {fp_str(x, y)} Tm")
    items: list[str] = []
    subset = -1
    rise = cursor = 0.0

    def flush() -> None:
        if items:
            code.append("[" + " ".join(items) + "] TJ")
            items.clear()

    for gx, gy, ch, advance in piece.glyphs:
        if gy != rise:
            flush()
            code.append(f"{fp_str(gy)} Ts")
            rise = gy
        ((sub, data),) = font.splitString(ch, doc)
        if sub != subset:
            flush()
            code.append(f"{font.getSubsetInternalName(sub, doc)} {fp_str(piece.size)} Tf")
            subset = sub
        shift = gx - cursor
        if abs(shift) > 1e-4:
            items.append(fp_str(-shift * 1000 / piece.size))
        items.append(f"({canv._escape(data)})")
        cursor = gx + advance
    flush()
    if rise:
        code.append("0 Ts")


@cache
def text_layout() -> TextLayout:
    """The layout over the dossier's fonts (registered on first use)."""
    return TextLayout(load_fonts())
