"""Colours, paragraph styles and table styles of the dossier (one place to restyle it)."""

from __future__ import annotations

from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm

from .fonts import MONO, SANS, SANS_BOLD, SANS_ITALIC
from .linetable import Text

CHUNK = 40  # rows per table
MAX_PARA = 1500  # characters per paragraph of a long text
WIDTH = 174 * mm  # A4 width minus margins (see render.MARGIN_X)

INK = colors.HexColor("#1f2937")
MUTED = colors.HexColor("#6b7280")
ACCENT = colors.HexColor("#1e3a5f")
HEAD_BG = colors.HexColor("#e8edf3")
BAND_BG = colors.HexColor("#f5f7fa")
GRID = colors.HexColor("#cbd5e1")
ALERT = colors.HexColor("#b42318")
OK = colors.HexColor("#067647")
# Lawful but notable facts (a purge at maximum retention, a followup gone from the API):
# stand out without reading as errors.
NOTICE = colors.HexColor("#93370d")


def _style(name: str, **kw: Any) -> ParagraphStyle:
    base: dict[str, Any] = {
        "fontName": SANS,
        "fontSize": 8.5,
        "leading": 11.5,
        "textColor": INK,
        "alignment": TA_LEFT,
        "splitLongWords": 1,
    }
    base.update(kw)
    return ParagraphStyle(name, **base)


S_BODY = _style("body", fontSize=9, leading=12.5, spaceAfter=4)
S_CELL = _style("cell", fontSize=8, leading=10)
S_CELL_BOLD = _style("cellb", fontName=SANS_BOLD, fontSize=8, leading=10)
S_CELL_MUTED = _style("cellm", fontSize=7.5, leading=9.5, textColor=MUTED)
S_MONO = _style("mono", fontName=MONO, fontSize=7, leading=9)
S_MONO_CELL = _style("monocell", fontName=MONO, fontSize=6.6, leading=8.4)
S_CODE = _style(
    "code",
    fontName=MONO,
    fontSize=7.3,
    leading=9.6,
    backColor=BAND_BG,
    borderColor=GRID,
    borderWidth=0.4,
    borderPadding=(3, 4, 3, 4),
    leftIndent=4,
    rightIndent=4,
    spaceBefore=3,
    spaceAfter=7,
)
S_TITLE = _style("title", fontName=SANS_BOLD, fontSize=24, leading=29, textColor=ACCENT)
S_SUBTITLE = _style("subtitle", fontSize=13, leading=17, textColor=MUTED, spaceAfter=10)
S_H1 = _style(
    "h1",
    fontName=SANS_BOLD,
    fontSize=15,
    leading=19,
    textColor=ACCENT,
    spaceBefore=14,
    spaceAfter=8,
)
S_H2 = _style(
    "h2",
    fontName=SANS_BOLD,
    fontSize=10.5,
    leading=14,
    textColor=ACCENT,
    spaceBefore=8,
    spaceAfter=4,
)
S_LABEL = _style("label", fontName=SANS_BOLD, fontSize=7.5, leading=10, textColor=MUTED)
# A small heading inside a subsection (above a table that belongs to it).
S_LABEL_H = _style(
    "labelh", fontName=SANS_BOLD, fontSize=8.5, leading=11, textColor=ACCENT, spaceBefore=6
)
S_TEXT = _style("text", fontSize=8.5, leading=11.5, spaceAfter=2, leftIndent=2 * mm)
S_ALERT = _style("alert", fontSize=8, leading=10.5, textColor=ALERT)
S_NOTICE = _style("notice", fontName=SANS_BOLD, fontSize=8, leading=10, textColor=NOTICE)
S_NOTE = _style("note", fontName=SANS_ITALIC, fontSize=8, leading=10.5, textColor=MUTED)

# Few per-cell commands: reportlab applies each one to every cell it covers, and that is
# most of the cost of building a large table. Top/bottom padding keep the default (3 pt).
BASE_TABLE = [
    ("FONT", (0, 0), (-1, -1), SANS, 8, 10),
    ("LEFTPADDING", (0, 0), (-1, -1), 3),
    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID),
]
# For tables that only place other flowables side by side. FONTNAME matters even then: a
# table sets its cells' font (base-14 Helvetica by default, which PDF/A forbids).
LAYOUT_TABLE = [
    ("FONTNAME", (0, 0), (-1, -1), SANS),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), 0),
]
HEADER_ROW = [
    ("FONT", (0, 0), (-1, 0), SANS_BOLD, 8, 10),
    ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG),
    ("LINEBELOW", (0, 0), (-1, 0), 0.6, ACCENT),
]


TX_CELL = Text(SANS, 8, 10, INK)
TX_MUTED = Text(SANS, 8, 10, MUTED)
TX_SMALL = Text(SANS, 7.5, 9.2, INK)
TX_LABEL = Text(SANS_BOLD, 7.5, 10, MUTED)
TX_HEAD = Text(SANS_BOLD, 8, 10, INK)
TX_MONO = Text(MONO, 6.6, 8.4, INK)
TX_ALERT = Text(SANS_BOLD, 8, 10, ALERT)
TX_NOTICE = Text(SANS_BOLD, 8, 10, NOTICE)
TX_NOTICE_SMALL = Text(SANS_BOLD, 7.5, 9.2, NOTICE)
TX_NOTICE_MONO = Text(MONO, 6.6, 8.4, NOTICE)
TX_ID = Text(MONO, 8, 10.5, ACCENT)
TX_BITS = Text(SANS_BOLD, 8.5, 10.5, ACCENT)
HEAD_RULE = (0.6, ACCENT)
GRID_RULE = (0.25, GRID)
