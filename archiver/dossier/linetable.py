"""A lean table flowable for the dossier's long, uniform tables.

reportlab's ``Table`` is general (spans, nested flowables, per-cell commands) and spends most
of a large dossier's time applying styles to cells and drawing each cell line by line with a
fresh text object. Our big tables (timeline, followup details, media, custody) only hold
pre-wrapped plain text, so this flowable keeps rows of lines, splits between rows (cutting a
row between its lines only when it is taller than a whole frame), repeats its header row on
each page, and draws a page's text in one text object. Output is fully deterministic.

A line the cell's font cannot draw as is (another script, right-to-left text, an emoji, a
character no font has) is laid out and drawn by :mod:`.textlayout`; the others stay on
reportlab's fast path. A row (or the table) may carry an outline entry for the PDF outline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reportlab.lib.colors import Color
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.textobject import PDFTextObject
from reportlab.platypus import Flowable

from .outline import outline_entry
from .textlayout import Mark, Style, draw_line, draw_marks, text_layout

PAD_X = 3.0
PAD_TOP = 2.5
PAD_BOTTOM = 3.0


@dataclass(frozen=True)
class Text:
    """How one cell's text is drawn."""

    font: str
    size: float
    leading: float
    color: Color
    align: str = "LEFT"  # or "RIGHT"


@dataclass(frozen=True)
class Row:
    """One table row: already wrapped cell texts (``\\n`` separates lines) and their styles."""

    cells: Sequence[str]
    styles: Sequence[Text]
    background: Color | None = None
    rule_above: tuple[float, Color] | None = None
    # (bookmark key, title): the row is an entry of the PDF outline, under the section.
    anchor: tuple[str, str] | None = None
    lines: tuple[tuple[str, ...], ...] = field(init=False, repr=False)
    height: float = field(init=False)

    def __post_init__(self) -> None:
        lines = tuple(tuple(c.split("\n")) for c in self.cells)
        object.__setattr__(self, "lines", lines)
        h = max(
            (len(ls) * st.leading for ls, st in zip(lines, self.styles, strict=True)), default=0.0
        )
        object.__setattr__(self, "height", h + PAD_TOP + PAD_BOTTOM)

    def cut(self, avail: float) -> tuple[Row, Row] | None:
        """Split this row so its first part fits ``avail`` points; None if no line fits."""
        room = avail - PAD_TOP - PAD_BOTTOM
        keep = [int(room // st.leading) for st in self.styles]
        if min(keep) < 1:
            return None
        head = ["\n".join(ls[:k]) for ls, k in zip(self.lines, keep, strict=True)]
        tail = ["\n".join(ls[k:]) for ls, k in zip(self.lines, keep, strict=True)]
        return (
            Row(head, self.styles, self.background, self.rule_above, self.anchor),
            Row(tail, self.styles, self.background, None),
        )


class LineTable(Flowable):
    """Rows of plain text in fixed columns; ``header`` rows repeat after each page break."""

    def __init__(
        self,
        rows: Sequence[Row],
        widths: Sequence[float],
        *,
        header: int = 1,
        grid: tuple[float, Color] | None = None,
        anchor: tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.rows = list(rows)
        self.widths = list(widths)
        self.header = header
        self.grid = grid
        # (bookmark key, title): the table's top is an entry of the PDF outline; after a
        # split only the first part keeps it.
        self.anchor = anchor
        self.width = sum(self.widths)
        self.height = sum(r.height for r in self.rows)
        self.hAlign = "LEFT"

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:  # noqa: N803
        # reportlab sets ``_frame`` while it asks for a split. Its full height decides whether
        # a row that does not fit here could fit on a fresh page; without a frame (a caller
        # splitting by hand) the space offered is taken as the whole page.
        frame = getattr(self, "_frame", None)
        full = float(getattr(frame, "_aH", availHeight))
        return self.split_rows(availHeight, max(full, availHeight))

    def split_rows(self, avail: float, full: float) -> list[Flowable]:
        """Split into what fits in ``avail`` points and the rest; ``full`` is a whole frame.

        The table splits between rows. A row is cut between its lines only when, under the
        repeated header, it is taller than a whole frame: any other row that does not fit in
        ``avail`` moves whole to the next frame. (After a split reportlab offers the rest the
        space left on the same page; cutting there would strand a row's first lines, such as
        a medium's hash without its key, at the foot of the page.) ``[]`` means "nothing
        fits here, try the next frame".
        """
        head = self.rows[: self.header]
        body = self.rows[self.header :]
        head_height = used = sum(r.height for r in head)
        n = 0
        while n < len(body) and used + body[n].height <= avail:
            used += body[n].height
            n += 1
        if n == len(body):
            return [self]
        if head_height + body[n].height > full:
            # Taller than a whole frame even alone: fill the space left, continue overleaf.
            parts = body[n].cut(avail - used)
            if parts is not None:
                return [
                    self._with([*head, *body[:n], parts[0]], self.anchor),
                    self._with([*head, parts[1], *body[n + 1 :]]),
                ]
        if n == 0:
            return []  # nothing fits here: the next frame takes the table
        return [self._with([*head, *body[:n]], self.anchor), self._with([*head, *body[n:]])]

    def _with(self, rows: list[Row], anchor: tuple[str, str] | None = None) -> LineTable:
        """A table like this one holding ``rows``."""
        return LineTable(rows, self.widths, header=self.header, grid=self.grid, anchor=anchor)

    def draw(self) -> None:
        canv = self.canv
        top = self.height
        # Backgrounds and rules first, then all the text in one text object.
        y = top
        for row in self.rows:
            if row.background is not None:
                canv.setFillColor(row.background)
                canv.rect(0, y - row.height, self.width, row.height, stroke=0, fill=1)
            if row.rule_above is not None:
                canv.setStrokeColor(row.rule_above[1])
                canv.setLineWidth(row.rule_above[0])
                canv.line(0, y, self.width, y)
            y -= row.height
            if self.grid is not None:
                canv.setStrokeColor(self.grid[1])
                canv.setLineWidth(self.grid[0])
                canv.line(0, y, self.width, y)
        tx = canv.beginText()
        layout = text_layout()
        marks: list[Mark] = []
        y = top
        current: tuple[str, float, float] | None = None
        color: Color | None = None
        for row in self.rows:
            x = 0.0
            for lines, st, w in zip(row.lines, row.styles, self.widths, strict=True):
                if (st.font, st.size, st.leading) != current:
                    tx.setFont(st.font, st.size, st.leading)
                    current = (st.font, st.size, st.leading)
                if st.color != color:
                    tx.setFillColor(st.color)
                    color = st.color
                baseline = y - PAD_TOP - st.size
                if not all(layout.simple(line, st.font) for line in lines):
                    for i, line in enumerate(lines):
                        self._rich_line(tx, line, st, x, w, baseline - i * st.leading, marks)
                elif st.align == "RIGHT":
                    for i, line in enumerate(lines):
                        lx = x + w - PAD_X - stringWidth(line, st.font, st.size)
                        tx.setTextOrigin(lx, baseline - i * st.leading)
                        tx.textOut(line)
                elif any(lines):
                    tx.setTextOrigin(x + PAD_X, baseline)
                    tx.textLines(list(lines), trim=0)
                x += w
            y -= row.height
        canv.drawText(tx)
        draw_marks(canv, marks)
        self._outline(top)

    def _rich_line(
        self,
        tx: PDFTextObject,
        line: str,
        st: Text,
        x: float,
        w: float,
        y: float,
        marks: list[Mark],
    ) -> None:
        """One line the cell's font cannot draw as is; right-to-left lines align right."""
        laid = text_layout().line([(line, Style(st.font, st.size))])
        right = st.align == "RIGHT" or laid.rtl
        lx = x + w - PAD_X - laid.width if right else x + PAD_X
        draw_line(tx, laid, lx, y, st.color, marks)

    def _outline(self, top: float) -> None:
        """The table's and its rows' entries in the PDF outline, in order."""
        if self.anchor is not None:
            outline_entry(self.canv, self.anchor[0], self.anchor[1], 1, y=top)
        y = top
        for row in self.rows:
            if row.anchor is not None:
                outline_entry(self.canv, row.anchor[0], row.anchor[1], 1, y=y)
            y -= row.height
