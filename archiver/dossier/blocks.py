"""Building blocks shared by the dossier sections: text filtering, wrapped cells, tables.

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
from .fonts import SANS_BOLD, FontSet
from .linetable import LineTable, Row
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


def grid(header: list[str], rows: list[Row], widths: Sequence[float]) -> LineTable:
    """A LineTable with a shaded header row repeated on every page."""
    cells = [wrap(h, SANS_BOLD, 8, w - 6) for h, w in zip(header, widths, strict=True)]
    head = Row(cells, [TX_HEAD] * len(header), background=HEAD_BG)
    return LineTable([head, *rows], widths, header=1, grid=GRID_RULE)


class TextFilter:
    """Escapes text for platypus markup and replaces what the fonts cannot draw (counted)."""

    def __init__(self, fonts: FontSet) -> None:
        self.fonts = fonts
        self.replaced = 0

    def __call__(self, value: Any) -> str:
        text, n = self.fonts.drawable(value if isinstance(value, str) else fmt_value(value))
        self.replaced += n
        return escape(text)

    def cell(self, value: Any, font: str, size: float, width: float) -> str:
        """Plain cell text wrapped to ``width`` (the cell's inner width) in ``font``/``size``."""
        return wrap(self.plain(value), font, size, width)

    def plain(self, value: Any) -> str:
        """For table cells holding plain strings (no markup)."""
        text, n = self.fonts.drawable(value if isinstance(value, str) else fmt_value(value))
        self.replaced += n
        return text


def wrap(text: str, font: str, size: float, width: float) -> str:
    """``text`` broken into lines that fit ``width`` points, as one plain string.

    Plain strings in table cells cost a third of a Paragraph (no markup parsing), which is
    what keeps a 10,000-followup dossier linear and fast. Words wider than the cell are cut.
    """
    if "\n" not in text and stringWidth(text, font, size) <= width:
        return text  # the common case: one line
    lines: list[str] = []
    for raw in text.split("\n"):
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
    """A section title that also becomes a PDF outline entry."""

    def __init__(self, text: str, style: ParagraphStyle, key: str, level: int = 0) -> None:
        super().__init__(text, style)
        self.outline = (text, key, level)


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
