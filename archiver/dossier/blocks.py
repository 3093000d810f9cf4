"""Building blocks shared by the dossier sections: text filtering, wrapped cells, tables.

Archived text keeps every character: what no font has is shown as a red ``[U+XXXX]``
marker (and counted for the colophon); text in other scripts, right to left or with emoji is
measured, wrapped and drawn by :mod:`.textlayout` (in table cells) or :mod:`.richtext`
(paragraphs).

Long lists are laid out as many small tables (``CHUNK`` rows each) rather than one huge one:
reportlab re-measures the remainder of a table at every page split, so one 10,000-row table
would take quadratic time. Long texts are split into paragraphs of bounded size for the
same reason, and so that a 20 KB note flows across pages instead of raising LayoutError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Paragraph,
    Table,
    TableStyle,
)

from .data import (
    PurgeMark,
    fmt_value,
    fmt_when,
)
from .fonts import SANS, SANS_BOLD, FontSet, marker_text
from .linetable import LineTable, Row
from .outline import outline_entry
from .styles import (
    BASE_TABLE,
    CHUNK,
    GRID_RULE,
    HEAD_BG,
    HEADER_ROW,
    MAX_PARA,
    S_CELL,
    S_LABEL,
    S_MONO,
    TX_HEAD,
    WIDTH,
)
from .textlayout import MARKER_COLOR, text_layout


def grid(header: list[str], rows: list[Row], widths: Sequence[float]) -> LineTable:
    """A LineTable with a shaded header row repeated on every page."""
    cells = [wrap(h, SANS_BOLD, 8, w - 6) for h, w in zip(header, widths, strict=True)]
    head = Row(cells, [TX_HEAD] * len(header), background=HEAD_BG)
    return LineTable([head, *rows], widths, header=1, grid=GRID_RULE)


_MARKER_HEX = "#" + MARKER_COLOR.hexval()[2:]


class TextFilter:
    """Prepares archived text for the dossier and counts the characters no font can draw."""

    def __init__(self, fonts: FontSet) -> None:
        self.fonts = fonts
        self.replaced = 0

    def __call__(self, value: Any) -> str:
        """Paragraph markup for ``value``: escaped, each character no font has replaced by
        a red ``[U+XXXX]`` marker. Other scripts stay as they are (see :mod:`.richtext`)."""
        text = value if isinstance(value, str) else fmt_value(value)
        undrawable = self.fonts.undrawable
        if undrawable.search(text) is None:  # the common case, at C speed
            return escape(text)
        out: list[str] = []
        pos = 0
        for m in undrawable.finditer(text):
            out.append(escape(text[pos : m.start()]))
            out.append(f'<font color="{_MARKER_HEX}">{marker_text(m.group())}</font>')
            pos = m.end()
            self.replaced += 1
        out.append(escape(text[pos:]))
        return "".join(out)

    def cell(self, value: Any, font: str, size: float, width: float) -> str:
        """Cell text for a LineTable, wrapped to ``width`` (the cell's inner width) in
        ``font``/``size``; the table draws the markers."""
        text = value if isinstance(value, str) else fmt_value(value)
        self.replaced += len(self.fonts.undrawable.findall(text))
        return wrap(text, font, size, width)

    def plain(self, value: Any) -> str:
        """For strings drawn by reportlab itself (table cells, chart labels) in the text
        face: a character the face does not have is replaced by its ``[U+XXXX]`` marker."""
        text = value if isinstance(value, str) else fmt_value(value)
        covers = self.fonts.covers[SANS]
        if all(ord(c) in covers for c in text):
            return text
        out = []
        for c in text:
            if ord(c) in covers:
                out.append(c)
            else:
                out.append(marker_text(c))
                self.replaced += 1
        return "".join(out)


def wrap(text: str, font: str, size: float, width: float) -> str:
    """``text`` broken into lines that fit ``width`` points, as one plain string.

    Plain strings in table cells cost a third of a Paragraph (no markup parsing), which is
    what keeps a 10,000-followup dossier linear and fast. Words wider than the cell are cut.
    Lines the font cannot draw as is are measured and broken by :mod:`.textlayout`.
    """
    layout = text_layout()
    if "\n" not in text and layout.simple(text, font) and stringWidth(text, font, size) <= width:
        return text  # the common case: one line
    lines: list[str] = []
    for raw in text.split("\n"):
        if not layout.simple(raw, font):
            lines.extend(layout.split(raw, font, size, width))
            continue
        words = []
        for token in raw.split(" "):
            rest = token
            # A word can only be wider than the cell if it is long (cheap test first).
            while len(rest) * size * 1.25 > width and stringWidth(rest, font, size) > width:
                # Cut an over-long token (a URL, a key) where it still fits.
                n = max(1, int(len(rest) * width / stringWidth(rest, font, size)))
                while n > 1 and stringWidth(rest[:n], font, size) > width:
                    n -= 1
                words.append(rest[:n])
                rest = rest[n:]
            words.append(rest)
        lines.extend(simpleSplit(" ".join(words), font, size, width) or [""])
    return "\n".join(lines)


def section_end(full: bool) -> Flowable:
    """A page break after a full section; after a near-empty one (a debt with no followups
    yet), the next section follows on the same page if half a page is left."""
    return PageBreak() if full else CondPageBreak(120 * mm)


class Heading(Paragraph):
    """A section title that also becomes a PDF outline entry (``closed``: the followups
    listed under it start folded)."""

    def __init__(
        self, text: str, style: ParagraphStyle, key: str, level: int = 0, *, closed: bool = False
    ) -> None:
        super().__init__(text, style)
        self.outline = (text, key, level, closed)

    def draw(self) -> None:
        super().draw()
        title, key, level, closed = self.outline
        outline_entry(self.canv, key, title, level, y=self.height, closed=closed)


def table(
    rows: list[list[Any]],
    widths: Sequence[float],
    *,
    header: bool = True,
    extra: Iterable[tuple[Any, ...]] = (),
) -> Table:
    """A platypus Table in the house style, its header row (if any) repeated on every page."""
    t = Table(rows, colWidths=list(widths), repeatRows=1 if header else 0, hAlign="LEFT")
    t.setStyle(TableStyle([*BASE_TABLE, *(HEADER_ROW if header else []), *extra]))
    return t


def chunked(
    header: list[Any], rows: list[list[Any]], widths: Sequence[float], **kw: Any
) -> list[Flowable]:
    """``rows`` as tables of at most ``CHUNK`` rows each, every one with ``header``."""
    if not rows:
        return []
    return [table([header, *rows[i : i + CHUNK]], widths, **kw) for i in range(0, len(rows), CHUNK)]


def fact_table(rows: list[tuple[str, Any]], t: TextFilter, label_width: float = 44 * mm) -> Table:
    """A two-column label/value table; values may be flowables already."""
    data = [
        [
            Paragraph(t(label), S_LABEL),
            value if isinstance(value, Flowable) else Paragraph(t(value), S_CELL),
        ]
        for label, value in rows
    ]
    return table(data, [label_width, WIDTH - label_width], header=False)


def mono_para(text: str, t: TextFilter, style: ParagraphStyle = S_MONO) -> Paragraph:
    """``text`` as a monospaced paragraph (keys, hashes, ids)."""
    return Paragraph(t(text), style)


def long_text(text: str, t: TextFilter, style: ParagraphStyle) -> list[Flowable]:
    """Paragraphs of at most MAX_PARA characters, split at line breaks, then at spaces."""
    out: list[Flowable] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        rest = line
        while len(rest) > MAX_PARA:
            cut = rest.rfind(" ", MAX_PARA // 2, MAX_PARA)
            cut = cut if cut > 0 else MAX_PARA
            out.append(Paragraph(t(rest[:cut]), style))
            rest = rest[cut:].lstrip()
        out.append(Paragraph(t(rest), style))
    return out


def purged_at_max(mark: PurgeMark, what: str = "record") -> str:
    """Says that ``what`` was purged at its maximum retention, and by which deletion record."""
    return (
        f"{what} purged on {fmt_when(mark.at)} at its maximum retention "
        f"(deletion record {mark.event_key})"
    )


def missing_note(since: str) -> str:
    """Says that a followup is no longer listed by getbill, and that its evidence is kept."""
    return f"no longer listed by getbill since {fmt_when(since)}; archived evidence kept"


__all__ = [
    "Heading",
    "TextFilter",
    "chunked",
    "fact_table",
    "grid",
    "long_text",
    "missing_note",
    "mono_para",
    "purged_at_max",
    "section_end",
    "table",
    "wrap",
]
