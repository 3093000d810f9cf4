"""Paragraphs in any script: a flowable for text that reportlab's Paragraph cannot draw.

reportlab's Paragraph draws each run of its markup in one font, left to right, one glyph per
character. :func:`upgrade` walks the story once it is built and replaces each Paragraph whose
text its fonts cannot draw as is (Arabic, Hebrew, emoji, a character no font has) with a
:class:`RichText` holding the same styled runs, which :mod:`.textlayout` breaks into lines in
logical order and lays out line by line (bidi, font fallback, shaping). Every other
Paragraph stays as it is, so the section code keeps writing ``Paragraph(t(text), style)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, KeepTogether, Paragraph, Table

from .textlayout import Line, Mark, Style, TextLayout, draw_line, draw_marks

Spans = list[tuple[str, Style]]


class RichText(Flowable):
    """Styled runs of text laid out by :mod:`.textlayout`, as a Paragraph would place them
    (indents, leading, space before and after); it splits between lines."""

    def __init__(
        self,
        spans: Spans,
        style: ParagraphStyle,
        layout: TextLayout,
        lines: Sequence[Line] | None = None,
    ) -> None:
        super().__init__()
        self.spans = spans
        self.style = style
        self.layout = layout
        self._lines = list(lines) if lines is not None else None
        self._width = -1.0
        self.keepWithNext = getattr(style, "keepWithNext", 0)

    def _inner(self, avail: float) -> float:
        return avail - self.style.leftIndent - self.style.rightIndent

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        inner = self._inner(availWidth)
        if self._lines is None or (self.spans and inner != self._width):
            self._lines = [self.layout.line(s) for s in break_spans(self.layout, self.spans, inner)]
            self._width = inner
        self.width = availWidth
        self.height = len(self._lines) * self.style.leading
        return availWidth, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:  # noqa: N803
        self.wrap(availWidth, availHeight)
        assert self._lines is not None
        fit = int((availHeight + 1e-6) // self.style.leading)
        if fit >= len(self._lines):
            return [self]
        if fit <= 0:
            return []
        head = RichText([], self.style, self.layout, self._lines[:fit])
        tail = RichText([], self.style, self.layout, self._lines[fit:])
        head._space_after = 0.0
        tail._space_before = 0.0
        return [head, tail]

    def getSpaceBefore(self) -> float:  # noqa: N802 (reportlab API)
        return float(getattr(self, "_space_before", self.style.spaceBefore))

    def getSpaceAfter(self) -> float:  # noqa: N802 (reportlab API)
        return float(getattr(self, "_space_after", self.style.spaceAfter))

    def draw(self) -> None:
        assert self._lines is not None
        st = self.style
        inner = self._inner(self.width)
        tx = self.canv.beginText()
        tx.setFont(st.fontName, st.fontSize, st.leading)
        tx.setFillColor(st.textColor)
        marks: list[Mark] = []
        for i, line in enumerate(self._lines):
            x = st.leftIndent
            if line.rtl or st.alignment == TA_RIGHT:
                x += inner - line.width
            y = self.height - st.fontSize - i * st.leading
            draw_line(tx, line, x, y, st.textColor, marks)
        self.canv.drawText(tx)
        draw_marks(self.canv, marks)


def break_spans(layout: TextLayout, spans: Spans, width: float) -> list[Spans]:
    """Styled runs broken into lines of at most ``width`` points, in logical order: at line
    breaks, at spaces, and inside a word only when it is wider than a line."""
    lines: list[Spans] = []
    for para in _paragraphs(spans):
        words = _words(para)
        if not words:
            lines.append([])
            continue
        line: Spans = []
        used = 0.0
        for word in words:
            for part in _cut(layout, word, width):
                w = _width(layout, part)
                space = _width(layout, [(" ", part[0][1])])
                if line and used + space + w > width:
                    lines.append(line)
                    line, used = [], 0.0
                if line:
                    line = [*line, (" ", part[0][1])]
                    used += space
                line = [*line, *part]
                used += w
        lines.append(line)
    return lines


def _paragraphs(spans: Spans) -> list[Spans]:
    """Split at newlines."""
    out: list[Spans] = [[]]
    for text, st in spans:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                out.append([])
            if part:
                out[-1].append((part, st))
    return out


def _words(spans: Spans) -> list[Spans]:
    """Split at spaces (a word may span several styles); runs of spaces count as one, as in
    a Paragraph."""
    words: list[Spans] = []
    cur: Spans = []
    for text, st in spans:
        for i, part in enumerate(text.replace("\t", " ").split(" ")):
            if i and cur:
                words.append(cur)
                cur = []
            if part:
                cur.append((part, st))
    if cur:
        words.append(cur)
    return words


def _width(layout: TextLayout, spans: Spans) -> float:
    if len(spans) == 1:
        text, st = spans[0]
        return layout.width(text, st.font, st.size)
    return layout.line(spans).width


def _cut(layout: TextLayout, word: Spans, width: float) -> list[Spans]:
    """A word wider than a line, cut where it still fits (by style run, then characters)."""
    if _width(layout, word) <= width:
        return [word]
    parts: list[Spans] = []
    for text, st in word:
        parts += [[(p, st)] for p in layout.split(text, st.font, st.size, width)]
    return parts


# --------------------------------------------------------------------------- the story


def upgrade(story: list[Flowable], layout: TextLayout) -> list[Flowable]:
    """``story`` with every Paragraph its fonts cannot draw as is replaced by a RichText,
    inside tables and kept-together groups too."""
    return [_upgrade(f, layout) for f in story]


def _upgrade(f: Any, layout: TextLayout) -> Any:
    if type(f) is Paragraph:
        spans = _spans(f)
        if spans is not None and not all(layout.simple(t, st.font) for t, st in spans):
            rich = RichText(spans, f.style, layout)
            rich.keepWithNext = getattr(f, "keepWithNext", rich.keepWithNext)
            return rich
        return f
    if isinstance(f, Table):
        for row in f._cellvalues:
            for j, cell in enumerate(row):
                row[j] = _upgrade(cell, layout)
        return f
    if isinstance(f, KeepTogether):
        f._content = [_upgrade(c, layout) for c in f._content]
        return f
    if isinstance(f, list | tuple):
        return type(f)(_upgrade(c, layout) for c in f)
    return f


def _spans(p: Paragraph) -> Spans | None:
    """The styled runs of a Paragraph's markup; None for markup beyond plain styled text
    (images, links, bullets), which stays a Paragraph."""
    spans: Spans = []
    for frag in p.frags:
        if getattr(frag, "lineBreak", False):
            spans.append(("\n", Style(frag.fontName, frag.fontSize, frag.textColor)))
            continue
        if getattr(frag, "cbDefn", None) is not None or getattr(frag, "link", None):
            return None
        # In markup a newline is a space; only <br/> breaks the line.
        text = getattr(frag, "text", "").replace("\n", " ")
        if text:
            spans.append((text, Style(frag.fontName, frag.fontSize, frag.textColor)))
    return spans
