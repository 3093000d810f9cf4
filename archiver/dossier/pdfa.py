"""PDF/A-2b finishing of reportlab's output with pikepdf, deterministically.

reportlab embeds the TrueType fonts; this adds what PDF/A-2b also needs: an sRGB output
intent (the ICC profile that ships with pikepdf), XMP metadata declaring ``pdfaid:part=2``
``conformance=B`` that agrees with the Info dictionary, and a file id derived from the content.
pikepdf stamps ``xmp:MetadataDate`` with the clock; we replace it with the manifest's
``created_at`` so that the same input keeps giving the same bytes.
"""

from __future__ import annotations

import gc
import io
from dataclasses import dataclass
from datetime import UTC, datetime

import pikepdf
from pikepdf import pdfa

from archiver.common.time import parse_iso_lenient

FLAVOUR = "2b"


@dataclass(frozen=True)
class PdfMetadata:
    """Document metadata, written both to the Info dictionary and to XMP."""

    title: str
    subject: str
    keywords: str
    author: str
    creator: str
    created_at: str  # ISO 8601 from the manifest; never the clock


def _when(value: str) -> datetime:
    # A malformed manifest date still gives a deterministic document.
    dt = parse_iso_lenient(value) or datetime(2000, 1, 1, tzinfo=UTC)
    return dt.replace(microsecond=0)


def make_pdfa(raw: bytes, meta: PdfMetadata) -> bytes:
    """Turn reportlab's PDF bytes into PDF/A-2b bytes. Deterministic for the same input."""
    when = _when(meta.created_at)
    pdf_date = when.strftime("D:%Y%m%d%H%M%S+00'00'")
    with pikepdf.open(io.BytesIO(raw)) as pdf:
        info = pdf.docinfo
        info["/Title"] = pikepdf.String(meta.title)
        info["/Subject"] = pikepdf.String(meta.subject)
        info["/Keywords"] = pikepdf.String(meta.keywords)
        info["/Author"] = pikepdf.String(meta.author)
        info["/Creator"] = pikepdf.String(meta.creator)
        info["/CreationDate"] = pikepdf.String(pdf_date)
        info["/ModDate"] = pikepdf.String(pdf_date)
        for page in pdf.pages:
            # reportlab writes an empty /Trans (page transition) on every page; it means
            # nothing in print and the validator does not approve it.
            if "/Trans" in page.obj:
                del page.obj["/Trans"]
        # Output intent (sRGB ICC shipped with pikepdf), XMP from the Info dict, pdfaid.
        pdfa.prepare(pdf, FLAVOUR, output_intent="sRGB")
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as xmp:
            xmp["xmp:MetadataDate"] = when.isoformat()
        out = io.BytesIO()
        pdf.save(out, **pdfa.resolve_save_kwargs(FLAVOUR, deterministic_id=True))
    return out.getvalue()


def check_pdfa(data: bytes) -> pdfa.Report:
    """Validate PDF bytes as PDF/A-2b with pikepdf's validator (``report.passed``).

    The validator counts any warning raised while it parses content as a finding, whatever
    raised it: a ResourceWarning for some unrelated socket the collector finalises meanwhile
    (where such warnings are shown, as under pytest) would fail a good file. Garbage waiting
    for the collector is finalised first."""
    gc.collect()
    return pdfa.validate_written(io.BytesIO(data), FLAVOUR)
