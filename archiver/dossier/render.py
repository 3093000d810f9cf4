"""Lays out a :class:`~archiver.dossier.data.DossierView` as a PDF with reportlab platypus.

The output is a function of the input only: reportlab runs with ``invariant=1`` (fixed ids,
no clock), every date shown comes from the manifest, and :mod:`.pdfa` post-processes with
pikepdf deterministically. Bump :data:`RENDERER_VERSION` whenever the bytes would change.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate

from .. import TOOL_NAME
from . import sections
from .data import DossierInput, build_view, fmt_when
from .fonts import MONO, SANS, SANS_BOLD, load_fonts
from .pdfa import PdfMetadata, make_pdfa

# Recorded in the PDF metadata and colophon. Bump on any change that alters the output bytes,
# so `verify` can tell "rendered by another version" from "tampered with".
RENDERER_VERSION = "1.4.0"

PAGE_SIZE = A4
MARGIN_X = 18 * mm
MARGIN_TOP = 22 * mm
MARGIN_BOTTOM = 20 * mm
INK = colors.HexColor("#1f2937")
MUTED = colors.HexColor("#6b7280")
RULE = colors.HexColor("#cbd5e1")


@dataclass(frozen=True)
class DossierInfo:
    """What a render produced: page count, SHA-256 and size of the PDF, renderer version."""

    pages: int
    sha256: str
    size: int
    renderer_version: str = RENDERER_VERSION


def _numbered_canvas(
    debt_id: str, sha12: str, sequence: int, created_at: str, pages: list[int]
) -> type[Canvas]:
    """A canvas that holds every page until the end, so each can say "page x of y"."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._held: list[dict[str, Any]] = []
            # Bookmarks of the page being laid out: a destination names its page, which
            # only exists once the held pages are written out in save().
            self._marks: list[tuple[str, float, float]] = []

        def bookmarkHorizontalAbsolute(  # noqa: N802 (reportlab API)
            self, key: str, top: float, left: float = 0, fit: str = "XYZ", **kw: Any
        ) -> None:
            self._marks.append((key, top, left))

        def showPage(self) -> None:  # noqa: N802 (reportlab API)
            self._held.append(dict(self.__dict__))
            self._marks = []
            self._startPage()

        def save(self) -> None:
            total = len(self._held)
            pages.append(total)
            for number, state in enumerate(self._held, start=1):
                self.__dict__.update(state)
                for key, top, left in self._marks:
                    super().bookmarkHorizontalAbsolute(key, top, left=left)
                self._furniture(number, total)
                super().showPage()
            encode_page_streams(self._doc)
            super().save()

        def _furniture(self, number: int, total: int) -> None:
            width, height = PAGE_SIZE
            self.saveState()
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            top = height - MARGIN_TOP + 6 * mm
            self.line(MARGIN_X, top, width - MARGIN_X, top)
            self.line(MARGIN_X, MARGIN_BOTTOM - 6 * mm, width - MARGIN_X, MARGIN_BOTTOM - 6 * mm)
            self.setFillColor(MUTED)
            title = "Collection audit dossier"
            self.setFont(SANS_BOLD, 7.5)
            self.drawString(MARGIN_X, top + 2.2 * mm, title)
            self.setFont(SANS, 7.5)
            self.drawString(
                MARGIN_X + stringWidth(title, SANS_BOLD, 7.5) + 3 * mm,
                top + 2.2 * mm,
                f"·  debt {debt_id}  ·  manifest #{sequence}",
            )
            self.setFont(MONO, 7.5)
            self.drawRightString(width - MARGIN_X, top + 2.2 * mm, f"SHA-256 {sha12}…")
            foot = MARGIN_BOTTOM - 10 * mm
            self.setFont(SANS, 7.5)
            # The versions are on the cover, once; a page read alone says which snapshot it is.
            self.drawString(MARGIN_X, foot, f"Archive as of {fmt_when(created_at)}")
            self.drawRightString(width - MARGIN_X, foot, f"Page {number} of {total}")
            self.restoreState()

    return NumberedCanvas


# What reportlab's PDFDocEncoding codec ("extpdfdoc") does not write as the character's own
# ASCII byte: anything outside ASCII, and U+0018-U+001F, which it refuses.
_NOT_ASCII_PDFDOC = re.compile("[^\x00-\x17\x20-\x7f]")


def encode_page_streams(doc: Any) -> None:
    """Give reportlab the pages' content streams as bytes. Left as text, each is encoded with
    reportlab's PDFDocEncoding codec, a dictionary lookup per character: a twentieth of the
    render of a large dossier. Content streams are ASCII (text is drawn as escaped glyph
    codes), where that codec's bytes are the ASCII bytes, so the file is byte for byte the
    same; a stream with anything else is left to reportlab."""
    for page in doc.Pages.pages:
        stream = page.stream
        if isinstance(stream, str) and not _NOT_ASCII_PDFDOC.search(stream):
            page.stream = stream.encode("ascii")


def _render_raw(inp: DossierInput, on_progress: Callable[[str], None] | None) -> tuple[bytes, int]:
    fonts = load_fonts()
    view = build_view(inp, renderer_version=RENDERER_VERSION)
    story = sections.build_story(view, fonts)
    pages: list[int] = []
    buf = io.BytesIO()
    doc = BaseDocTemplate(
        buf,
        pagesize=PAGE_SIZE,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        invariant=1,
        # pikepdf compresses every stream when it saves; compressing (and ASCII85-encoding)
        # here too would only cost time.
        pageCompression=0,
        # The canvas otherwise starts every page in base-14 Helvetica, which PDF/A forbids.
        initialFontName=SANS,
        title=f"Audit dossier — debt {view.debt_id}",
        author=TOOL_NAME,
        subject=f"debt {view.debt_id}",
        keywords=view.manifest_sha256,
        creator=f"{TOOL_NAME} dossier renderer {RENDERER_VERSION}",
        lang="en",
    )
    frame = Frame(
        MARGIN_X, MARGIN_BOTTOM, doc.width, doc.height, id="body", leftPadding=0, rightPadding=0
    )
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    if on_progress:
        on_progress(f"laying out {len(view.followups)} followups")
    doc.build(
        story,
        canvasmaker=_numbered_canvas(
            view.debt_id, view.manifest_sha256[:12], view.sequence, view.created_at, pages
        ),
    )
    return buf.getvalue(), pages[-1]


def render_dossier_bytes(
    inp: DossierInput, *, on_progress: Callable[[str], None] | None = None
) -> bytes:
    """Render the dossier of ``inp`` as PDF/A-2b bytes. Same input, same bytes."""
    raw, _pages = _render_raw(inp, on_progress)
    return _finish(inp, raw)


def render_dossier(
    inp: DossierInput, out: BinaryIO, *, on_progress: Callable[[str], None] | None = None
) -> DossierInfo:
    """Render the dossier of ``inp`` into ``out``; return page count, SHA-256 and size."""
    raw, pages = _render_raw(inp, on_progress)
    pdf = _finish(inp, raw)
    out.write(pdf)
    return DossierInfo(pages=pages, sha256=hashlib.sha256(pdf).hexdigest(), size=len(pdf))


def _finish(inp: DossierInput, raw: bytes) -> bytes:
    man = inp.manifest
    debt_id = str(man.get("debt_id", ""))
    meta = PdfMetadata(
        title=f"Audit dossier — debt {debt_id}",
        subject=f"debt {debt_id}",
        keywords=inp.manifest_sha256,
        author=TOOL_NAME,
        creator=f"{TOOL_NAME} dossier renderer {RENDERER_VERSION}",
        created_at=str(man.get("created_at", "")),
    )
    return make_pdfa(raw, meta)
