"""PDF outline (bookmarks) of the dossier: its sections, and each followup under the timeline
and under the details, so that a long dossier can be navigated from the reader's sidebar."""

from __future__ import annotations

from reportlab.pdfgen.canvas import Canvas


def outline_entry(
    canv: Canvas, key: str, title: str, level: int, *, y: float = 0.0, closed: bool = False
) -> None:
    """Bookmark the current position (``y`` points above the flowable's origin) as ``key``
    and add it to the outline at ``level`` (0: a section; 1: a followup within it).
    ``closed``: its children start folded (a section listing thousands of followups)."""
    canv.bookmarkHorizontal(key, 0, y)
    canv.addOutlineEntry(title, key, level=level, closed=closed)


def followup_title(when: str, kind: str, followup_id: str) -> str:
    """The outline title of a followup: ``2025-01-03 09:30 · call · fu_123``."""
    return " · ".join(x for x in (when, kind, followup_id) if x)
