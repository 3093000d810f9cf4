"""The summary's bar charts (reportlab.graphics), every string in an embedded TrueType font."""

from __future__ import annotations

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

from .fonts import SANS, SANS_BOLD
from .styles import ACCENT, GRID, INK, MUTED


def _drawing(width: float, height: float) -> Drawing:
    d = Drawing(width, height)
    # The renderer otherwise starts each drawing in base-14 Helvetica, which PDF/A forbids.
    d.initialFontName = SANS
    return d


def bar_chart(pairs: list[tuple[str, int]], width: float) -> Drawing:
    """Horizontal bars, one per category; every string in an embedded TrueType font."""
    n = max(len(pairs), 1)
    bar_h = 13
    height = n * bar_h + 30
    d = _drawing(width, height)
    chart = HorizontalBarChart()
    chart.x, chart.y = 62, 18
    chart.width, chart.height = width - 80, n * bar_h
    chart.data = [[c for _, c in pairs] or [0]]
    chart.categoryAxis.categoryNames = [k for k, _ in pairs] or ["—"]
    chart.categoryAxis.reverseDirection = 1  # first category on top, like the table
    chart.valueAxis.valueMin = 0
    top = max((c for _, c in pairs), default=1)
    chart.valueAxis.valueMax = max(top, 1) * 1.12
    step = max(1, _nice_step(top))
    chart.valueAxis.valueStep = step
    chart.valueAxis.labelTextFormat = "%d"
    for labels in (chart.categoryAxis.labels, chart.valueAxis.labels, chart.barLabels):
        labels.fontName = SANS
        labels.fontSize = 7
        labels.fillColor = INK
    chart.barLabelFormat = "%d"
    chart.barLabels.nudge = 7
    chart.barLabels.boxAnchor = "w"
    chart.bars[0].fillColor = ACCENT
    chart.bars[0].strokeColor = None
    chart.barWidth = bar_h * 0.6
    chart.valueAxis.strokeColor = GRID
    chart.categoryAxis.strokeColor = GRID
    d.add(chart)
    return d


def month_chart(pairs: list[tuple[str, int]], width: float) -> Drawing:
    height = 110
    d = _drawing(width, height)
    chart = VerticalBarChart()
    chart.x, chart.y = 28, 30
    chart.width, chart.height = width - 40, height - 45
    chart.data = [[c for _, c in pairs]]
    every = max(1, len(pairs) // 18)
    chart.categoryAxis.categoryNames = [
        m if i % every == 0 else "" for i, (m, _) in enumerate(pairs)
    ]
    chart.categoryAxis.labels.angle = 45
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.categoryAxis.labels.dy = -2
    top = max(c for _, c in pairs)
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max(top, 1) * 1.1
    chart.valueAxis.valueStep = max(1, _nice_step(top))
    chart.valueAxis.labelTextFormat = "%d"
    for labels in (chart.categoryAxis.labels, chart.valueAxis.labels, chart.barLabels):
        labels.fontName = SANS
        labels.fontSize = 6.5
        labels.fillColor = INK
    chart.bars[0].fillColor = ACCENT
    chart.bars[0].strokeColor = None
    chart.valueAxis.strokeColor = GRID
    chart.categoryAxis.strokeColor = GRID
    chart.valueAxis.visibleGrid = 1
    chart.valueAxis.gridStrokeColor = colors.HexColor("#e5e7eb")
    d.add(chart)
    d.add(
        String(
            0, height - 8, "Followups per month", fontName=SANS_BOLD, fontSize=7.5, fillColor=MUTED
        )
    )
    return d


def _nice_step(top: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if top / step <= 6:
            return step
    return max(1, top // 5)
