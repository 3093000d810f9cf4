"""The seven sections of the dossier as platypus flowables, built from a ``DossierView``.

Long lists are laid out as many small tables (``CHUNK`` rows each) rather than one huge one:
reportlab re-measures the remainder of a table at every page split, so one 10,000-row table
would take quadratic time. Long texts are split into paragraphs of bounded size for the
same reason, and so that a 20 KB note flows across pages instead of raising LayoutError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape

import pikepdf
import reportlab
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from .charts import bar_chart, month_chart
from .data import (
    DossierView,
    FollowupView,
    MediaView,
    PurgeMark,
    fmt_duration,
    fmt_size,
    fmt_value,
    fmt_when,
    purge_note,
)
from .fonts import MONO, SANS, SANS_BOLD, FontSet
from .linetable import LineTable, Row
from .styles import (
    ACCENT,
    ALERT,
    BAND_BG,
    BASE_TABLE,
    CHUNK,
    GRID_RULE,
    HEAD_BG,
    HEADER_ROW,
    LAYOUT_TABLE,
    MAX_PARA,
    S_BODY,
    S_CELL,
    S_CELL_BOLD,
    S_CELL_MUTED,
    S_CODE,
    S_H1,
    S_H2,
    S_LABEL,
    S_MONO,
    S_MONO_CELL,
    S_NOTE,
    S_NOTICE,
    S_SUBTITLE,
    S_TEXT,
    S_TITLE,
    TX_ALERT,
    TX_BITS,
    TX_CELL,
    TX_HEAD,
    TX_ID,
    TX_LABEL,
    TX_MONO,
    TX_MUTED,
    TX_NOTICE,
    TX_NOTICE_MONO,
    TX_NOTICE_SMALL,
    TX_SMALL,
    WIDTH,
)


def _grid(header: list[str], rows: list[Row], widths: Sequence[float]) -> LineTable:
    """A LineTable with a shaded header row repeated on every page."""
    cells = [wrap(h, SANS_BOLD, 8, w - 6) for h, w in zip(header, widths, strict=True)]
    head = Row(cells, [TX_HEAD] * len(header), background=HEAD_BG)
    return LineTable([head, *rows], widths, header=1, grid=GRID_RULE)


class _Text:
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
        for word in raw.split(" "):
            # A word can only be wider than the cell if it is long (cheap test first).
            while len(word) * size * 1.25 > width and stringWidth(word, font, size) > width:
                # Cut an over-long token (a URL, a key) where it still fits.
                n = max(1, int(len(word) * width / stringWidth(word, font, size)))
                while n > 1 and stringWidth(word[:n], font, size) > width:
                    n -= 1
                words.append(word[:n])
                word = word[n:]
            words.append(word)
        lines.extend(simpleSplit(" ".join(words), font, size, width) or [""])
    return "\n".join(lines)


def _section_end(full: bool) -> Flowable:
    """A page break after a full section; after a near-empty one (a debt with no followups
    yet), the next section follows on the same page if half a page is left."""
    return PageBreak() if full else CondPageBreak(120 * mm)


class Heading(Paragraph):
    """A section title that also becomes a PDF outline entry."""

    def __init__(self, text: str, style: ParagraphStyle, key: str, level: int = 0) -> None:
        super().__init__(text, style)
        self.outline = (text, key, level)


def _table(
    rows: list[list[Any]],
    widths: Sequence[float],
    *,
    header: bool = True,
    extra: Iterable[tuple[Any, ...]] = (),
) -> Table:
    t = Table(rows, colWidths=list(widths), repeatRows=1 if header else 0, hAlign="LEFT")
    t.setStyle(TableStyle([*BASE_TABLE, *(HEADER_ROW if header else []), *extra]))
    return t


def _chunked(
    header: list[Any], rows: list[list[Any]], widths: Sequence[float], **kw: Any
) -> list[Flowable]:
    if not rows:
        return []
    return [
        _table([header, *rows[i : i + CHUNK]], widths, **kw) for i in range(0, len(rows), CHUNK)
    ]


def _facts(rows: list[tuple[str, Any]], t: _Text, label_width: float = 44 * mm) -> Table:
    """A two-column label/value table; values may be flowables already."""
    data = [
        [
            Paragraph(t(label), S_LABEL),
            value if isinstance(value, Flowable) else Paragraph(t(value), S_CELL),
        ]
        for label, value in rows
    ]
    return _table(data, [label_width, WIDTH - label_width], header=False)


def _mono(text: str, t: _Text, style: ParagraphStyle = S_MONO) -> Paragraph:
    return Paragraph(t(text), style)


def _long_text(text: str, t: _Text, style: ParagraphStyle) -> list[Flowable]:
    """Paragraphs of at most MAX_PARA characters, split at line breaks, then at spaces."""
    out: list[Flowable] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        while len(line) > MAX_PARA:
            cut = line.rfind(" ", MAX_PARA // 2, MAX_PARA)
            cut = cut if cut > 0 else MAX_PARA
            out.append(Paragraph(t(line[:cut]), style))
            line = line[cut:].lstrip()
        out.append(Paragraph(t(line), style))
    return out


# --------------------------------------------------------------------------- 1. cover


def cover(v: DossierView, t: _Text) -> list[Flowable]:
    out: list[Flowable] = [
        Spacer(1, 14 * mm),
        Heading("Collection audit dossier", S_TITLE, "cover"),
        Paragraph(f"Debt {t(v.debt_id)}", S_SUBTITLE),
        Paragraph(
            "This document tells the story of the collection of one debt, as archived by "
            f"{t(v.tool.split(' ')[0])}, and gives the means to prove that the archive behind "
            "it is intact. It was rendered from the archived manifest and records only, never "
            "from the live API: rendering the same manifest again gives the same bytes.",
            S_BODY,
        ),
        Spacer(1, 4 * mm),
        Paragraph("The debt", S_H2),
    ]
    facts: list[tuple[str, Any]] = [("Debt id", _mono(v.debt_id, t))]
    facts += v.debt_facts
    if v.debt_purged:
        note = _purged_at_max(v.debt_purged, "debt record")
        facts.append(("Debt record", Paragraph(t(note), S_NOTICE)))
    elif not v.debt_facts:
        why = v.debt_unavailable or "no debt record in this manifest"
        facts.append(("Debt record", f"not archived: {why}"))
    out.append(_facts(facts, t))
    out += [Paragraph("The manifest this dossier is rendered from", S_H2)]
    prev = v.previous
    out.append(
        _facts(
            [
                ("Sequence", str(v.sequence)),
                ("Key", _mono(v.manifest_key, t)),
                ("SHA-256", _mono(v.manifest_sha256, t)),
                ("Created at (= generated at)", fmt_when(v.created_at, seconds=True)),
                (
                    "Previous manifest",
                    _mono(f"{prev.get('key')}\n", t) if prev else "none: first manifest",
                ),
                ("Previous SHA-256", _mono(str(prev.get("sha256")), t) if prev else "—"),
                ("Archived by", v.tool),
                ("Records read from", v.source or "—"),
            ],
            t,
        )
    )
    out += [Paragraph("Retention", S_H2)]
    pol = v.policy
    out.append(
        _facts(
            [
                (
                    "Policy",
                    f"{pol.get('name', '?')}" + (f" — {pol['title']}" if pol.get("title") else ""),
                ),
                ("Object Lock mode", str(pol.get("mode", "?"))),
                ("Policy file SHA-256", _mono(str(pol.get("sha256", "")), t)),
            ],
            t,
        )
    )
    out += [
        Paragraph("Contents", S_H2),
        Paragraph(
            "1 Cover · 2 Summary · 3 Timeline · 4 Followups in detail · 5 Media inventory · "
            "6 Chain of custody · 7 How to verify",
            S_BODY,
        ),
        PageBreak(),
    ]
    return out


# --------------------------------------------------------------------------- 2. summary


def summary(v: DossierView, t: _Text) -> list[Flowable]:
    n = len(v.followups)
    out: list[Flowable] = [Heading("2  Summary", S_H1, "summary")]
    if n == 0:
        out.append(
            Paragraph(
                "No followup is archived for this debt in this manifest: there has been no "
                "recorded contact with the debtor so far.",
                S_BODY,
            )
        )
    payments = len(v.payments)
    unavailable = len(v.media_unavailable)
    out.append(
        _facts(
            [
                ("Followups archived", f"{n:,}"),
                ("First contact", fmt_when(v.first_contact)),
                ("Last contact", fmt_when(v.last_contact)),
                ("Total call time", fmt_duration(v.total_call_ms) if v.total_call_ms else "—"),
                ("Triggered a payment", f"{payments:,} followup{'s' if payments != 1 else ''}"),
                ("Media archived", f"{v.media_archived:,} files, {fmt_size(v.media_bytes)}"),
                *(
                    [
                        (
                            "Media purged",
                            f"{v.media_purged:,} file{'s' if v.media_purged != 1 else ''} "
                            "deleted at their maximum retention (see sections 5 and 6)",
                        )
                    ]
                    if v.media_purged
                    else []
                ),
                (
                    "Media unavailable",
                    Paragraph(
                        f"<font color='#b42318'>{unavailable:,}</font>"
                        " (see below and the chain of custody)"
                        if unavailable
                        else "0",
                        S_CELL,
                    ),
                ),
                ("Problems recorded by the run", f"{len(v.problems):,}"),
                *_lifecycle_facts(v),
            ],
            t,
        )
    )
    if v.by_type:
        left = 62 * mm
        type_rows = [[t.plain(k), f"{c:,}"] for k, c in v.by_type]
        type_table = _table(
            [["Type", "Followups"], *type_rows],
            [32 * mm, 22 * mm],
            extra=[("ALIGN", (1, 0), (1, -1), "RIGHT")],
        )
        chart = bar_chart([(t.plain(k), c) for k, c in v.by_type], WIDTH - left)
        status_rows = [[t.plain(k), f"{c:,}"] for k, c in v.by_status]
        status_table = _table(
            [["Status", "Followups"], *status_rows],
            [32 * mm, 22 * mm],
            extra=[("ALIGN", (1, 0), (1, -1), "RIGHT")],
        )
        out += [
            Paragraph("Followups by type", S_H2),
            Table(
                [[type_table, chart]],
                colWidths=[left, WIDTH - left],
                style=LAYOUT_TABLE,
                hAlign="LEFT",
            ),
            Paragraph("Followups by status", S_H2),
            Table(
                [
                    [
                        status_table,
                        bar_chart([(t.plain(k), c) for k, c in v.by_status], WIDTH - left),
                    ]
                ],
                colWidths=[left, WIDTH - left],
                style=LAYOUT_TABLE,
                hAlign="LEFT",
            ),
        ]
    if len(v.by_month) > 1:
        out += [Spacer(1, 4 * mm), month_chart(v.by_month, WIDTH)]
    if v.payments:
        by_id = {f.id: f for f in v.followups}
        rows = [
            [
                _mono(fid, t, S_MONO_CELL),
                fmt_when(by_id[fid].when),
                t.plain(by_id[fid].type),
                t.plain(by_id[fid].status),
            ]
            for fid in v.payments
        ]
        out += [CondPageBreak(30 * mm), Paragraph("Followups that triggered a payment", S_H2)]
        out += _chunked(
            ["Followup", "Date", "Type", "Status"], rows, [54 * mm, 40 * mm, 40 * mm, 40 * mm]
        )
    if v.media_unavailable:
        rows = [
            [_mono(fid, t, S_MONO_CELL), t.plain(kind), Paragraph(t(why), S_CELL)]
            for fid, kind, why in v.media_unavailable
        ]
        out += [CondPageBreak(30 * mm), Paragraph("Media not archived", S_H2)]
        out += _chunked(
            ["Followup", "Kind", "Why"],
            rows,
            [54 * mm, 18 * mm, WIDTH - 72 * mm],
            extra=[("TEXTCOLOR", (1, 1), (1, -1), ALERT)],
        )
    out.append(_section_end(bool(v.followups)))
    return out


def _lifecycle_facts(v: DossierView) -> list[tuple[str, Any]]:
    """Summary rows for purged records and followups gone from the API (only when any, so
    dossiers without them keep their exact bytes)."""
    rows: list[tuple[str, Any]] = []
    if v.records_purged:
        rows.append(
            (
                "Followup records purged",
                f"{v.records_purged:,} deleted at their maximum retention; shown from the "
                "manifest only (see section 6)",
            )
        )
    if v.upstream_missing:
        rows.append(
            (
                "No longer listed by getbill",
                f"{v.upstream_missing:,} followup{'s' if v.upstream_missing != 1 else ''}; "
                "their archived evidence is kept",
            )
        )
    return rows


def _purged_at_max(mark: PurgeMark, what: str = "record") -> str:
    return (
        f"{what} purged on {fmt_when(mark.at)} at its maximum retention "
        f"(deletion record {mark.event_key})"
    )


def _missing_note(since: str) -> str:
    return f"no longer listed by getbill since {fmt_when(since)}; archived evidence kept"


# --------------------------------------------------------------------------- 3. timeline


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _timeline_row(f: FollowupView, t: _Text, inner: list[float]) -> Row:
    status, status_style = t.cell(f.status, SANS, 8, inner[3]), TX_CELL
    if f.upstream_missing_since:
        # In the status cell: it is the followup's state in getbill that changed.
        # "unlisted" fits the column; section 4 gives the note in full.
        since = fmt_when(f.upstream_missing_since).split(" ")[0]
        status += "\n" + wrap(f"unlisted since\n{since}", SANS_BOLD, 8, inner[3])
        status_style = TX_NOTICE
    summary, summary_style = t.cell(_clip(f.summary, 220) or "—", SANS, 8, inner[4]), TX_CELL
    if f.record_purged:
        summary = wrap(
            f"record purged on {fmt_when(f.record_purged.at)} at its maximum retention "
            "(deletion record in sections 4 and 6)",
            SANS_BOLD,
            8,
            inner[4],
        )
        summary_style = TX_NOTICE
    return Row(
        [
            fmt_when(f.when) + "\n" + t.cell(f.id, SANS, 8, inner[0]),
            t.cell(f.type, SANS, 8, inner[1]),
            t.cell(f.direction or "—", SANS, 8, inner[2]),
            status,
            summary,
        ],
        [TX_CELL, TX_CELL, TX_CELL, status_style, summary_style],
    )


def timeline(v: DossierView, t: _Text) -> list[Flowable]:
    out: list[Flowable] = [
        Heading("3  Timeline", S_H1, "timeline"),
        Paragraph(
            "One row per followup, oldest first (call date, else scheduled or processed "
            "time; all times UTC). Summaries are shortened here; section 4 gives them in full.",
            S_NOTE,
        ),
        Spacer(1, 2 * mm),
    ]
    if not v.followups:
        out += [Paragraph("No followup archived.", S_BODY), _section_end(False)]
        return out
    widths = [36 * mm, 20 * mm, 18 * mm, 25 * mm, WIDTH - 99 * mm]
    inner = [w - 6 for w in widths]
    rows = [_timeline_row(f, t, inner) for f in v.followups]
    out.append(_grid(["Date (UTC) / id", "Type", "Direction", "Status", "Summary"], rows, widths))
    out.append(PageBreak())
    return out


# --------------------------------------------------------------------------- 4. detail


SHORT_TEXT = 700  # summary/notes up to this length sit in the field table


def _followup_block(f: FollowupView, t: _Text) -> list[Flowable]:
    """One table per followup: a header row (repeated if the table splits across pages),
    every record field, then where the record and its media are stored. Summary and notes
    too long for a table cell flow as paragraphs between two tables."""
    label_w = 40 * mm
    value_w = WIDTH - label_w - 6
    widths = [label_w, WIDTH - label_w]
    bits = " · ".join(x for x in (fmt_when(f.when), f.type, f.direction, f.status) if x)
    header = Row(
        [t.cell(f.id, MONO, 8, label_w - 6), t.cell(bits, SANS_BOLD, 8.5, value_w)],
        [TX_ID, TX_BITS],
        background=HEAD_BG,
        rule_above=(0.8, ACCENT),
    )
    field_style = [TX_LABEL, TX_CELL]
    rows: list[Row] = [header]
    if f.upstream_missing_since:
        note = wrap(_missing_note(f.upstream_missing_since), SANS_BOLD, 8, value_w)
        rows.append(Row(["getbill listing", note], [TX_LABEL, TX_NOTICE]))
    if f.record_purged:
        note = _purged_at_max(f.record_purged) + "; the fields below are from the manifest"
        rows.append(Row(["record", wrap(note, SANS_BOLD, 8, value_w)], [TX_LABEL, TX_NOTICE]))
    elif not f.record_loaded:
        rows.append(
            Row(
                ["record", "the stored record was not available to this render"],
                [TX_LABEL, TX_ALERT],
            )
        )
    rows += [
        Row([name, t.cell(value, SANS, 8, value_w)], field_style)
        for name, value in f.fields
        if value != "null"
    ]
    empty = [name for name, value in f.fields if value == "null"]
    if empty:
        # One row for all the null fields: every field is shown, at a fraction of the height.
        rows.append(Row(["null", t.cell(", ".join(empty), SANS, 8, value_w)], [TX_LABEL, TX_MUTED]))
    long_texts: list[tuple[str, str]] = []
    for label, text in (("summary", f.summary), ("notes", f.notes)):
        if not text.strip():
            continue
        if len(text) <= SHORT_TEXT:
            rows.append(Row([label, t.cell(text, SANS, 8, value_w)], field_style))
        else:
            rows.append(
                Row([label, f"{len(text):,} characters, in full below"], [TX_LABEL, TX_MUTED])
            )
            long_texts.append((label, text))
    mono = [TX_LABEL, TX_MONO]
    archive = [
        Row(["record", t.cell(f.record_key, MONO, 6.6, value_w)], mono, BAND_BG, GRID_RULE),
        Row(["record SHA-256", f.record_sha256], mono, BAND_BG),
        Row(
            [
                "record version",
                t.cell(
                    f"{f.record_version_id or '—'} · "
                    + (
                        purge_note(f.record_purged)
                        if f.record_purged
                        else f"retained until {fmt_when(f.record_retain_until)}"
                    ),
                    MONO,
                    6.6,
                    value_w,
                ),
            ],
            mono,
            BAND_BG,
        ),
    ]
    for m in f.media:
        where = m.sha256 + "\n" + t.cell(m.key, MONO, 6.6, value_w)
        if m.purged:
            where += "\n" + t.cell(purge_note(m.purged), MONO, 6.6, value_w)
        archive.append(
            Row(
                [f"{m.kind} · {fmt_size(m.size).split(' (')[0]}", where],
                [TX_LABEL, TX_NOTICE_MONO] if m.purged else mono,
                BAND_BG,
            )
        )
    for p in f.problems:
        archive.append(Row(["problem", t.cell(p, SANS, 8, value_w)], [TX_ALERT, TX_ALERT]))

    if not long_texts:
        return [LineTable(rows + archive, widths, grid=GRID_RULE), Spacer(1, 5 * mm)]
    out: list[Flowable] = [LineTable(rows, widths, grid=GRID_RULE)]
    for label, text in long_texts:
        para_label = Paragraph(label.capitalize(), S_LABEL)
        para_label.keepWithNext = True
        out += [Spacer(1, 1.5 * mm), para_label, *_long_text(text, t, S_TEXT)]
    out += [
        Spacer(1, 1.5 * mm),
        LineTable([header, *archive], widths, grid=GRID_RULE),
        Spacer(1, 5 * mm),
    ]
    return out


def details(v: DossierView, t: _Text) -> list[Flowable]:
    out: list[Flowable] = [
        Heading("4  Followups in detail", S_H1, "details"),
        Paragraph(
            "Every field of every archived followup record, as received from the getbill API "
            "(signed media links are shown without their secret query string), followed by "
            "where the record and its media are stored.",
            S_NOTE,
        ),
        Spacer(1, 3 * mm),
    ]
    if not v.followups:
        out.append(Paragraph("No followup archived.", S_BODY))
    for f in v.followups:
        out += _followup_block(f, t)
    out.append(_section_end(bool(v.followups)))
    return out


# --------------------------------------------------------------------------- 5. media


def media_inventory(v: DossierView, t: _Text) -> list[Flowable]:
    out: list[Flowable] = [
        Heading("5  Media inventory", S_H1, "media"),
        Paragraph(
            f"{v.media_archived:,} files archived ({fmt_size(v.media_bytes)}), stored under S3 "
            "Object Lock. Each file is named by its SHA-256."
            + (
                f" {v.media_purged:,} more {'were' if v.media_purged != 1 else 'was'} purged: "
                "deleted at the end of the maximum retention, with a deletion record "
                "(section 6). Purged rows below keep the SHA-256 and key of what was stored."
                if v.media_purged
                else ""
            ),
            S_BODY,
        ),
    ]
    if not v.media:
        out += [Paragraph("No media archived.", S_BODY), _section_end(False)]
        return out
    widths = [30 * mm, 26 * mm, 93 * mm, 25 * mm]
    inner = [w - 6 for w in widths]
    styles = [TX_SMALL, TX_SMALL, TX_MONO, TX_SMALL]
    rows = []
    for m in v.media:
        if m.purged:
            rows.append(_purged_media_row(m, t, inner))
            continue
        rows.append(
            Row(
                [
                    t.cell(m.followup_id, SANS, 7.5, inner[0])
                    + "\n"
                    + m.kind
                    + "\n"
                    + t.cell(m.sniffed_type or m.content_type or "", SANS, 7.5, inner[0]),
                    wrap(fmt_size(m.size).replace(" (", "\n("), SANS, 7.5, inner[1])
                    + ("\n" + fmt_duration(m.duration_ms) if m.duration_ms is not None else ""),
                    m.sha256
                    + "\n"
                    + t.cell(m.key, MONO, 6.6, inner[2])
                    + "\n"
                    + t.cell(f"version {m.version_id or '—'}", MONO, 6.6, inner[2]),
                    fmt_when(m.retain_until).replace(" UTC", "")
                    + "\n"
                    + (m.retention_mode or "")
                    + "\n"
                    + ("LEGAL HOLD ON" if m.legal_hold else "legal hold off"),
                ],
                styles,
            )
        )
    out.append(
        _grid(
            [
                "Followup / kind",
                "Size / duration",
                "SHA-256 · key · version",
                "Retained until (UTC)",
            ],
            rows,
            widths,
        )
    )
    out.append(PageBreak())
    return out


def _purged_media_row(m: MediaView, t: _Text, inner: list[float]) -> Row:
    """A purged medium: what it was, and that it is no longer stored (not a retention date)."""
    assert m.purged is not None
    return Row(
        [
            t.cell(m.followup_id, SANS, 7.5, inner[0])
            + "\n"
            + m.kind
            + "\n"
            + t.cell(m.sniffed_type or m.content_type or "", SANS, 7.5, inner[0]),
            wrap(fmt_size(m.size).replace(" (", "\n("), SANS, 7.5, inner[1])
            + ("\n" + fmt_duration(m.duration_ms) if m.duration_ms is not None else ""),
            m.sha256
            + "\n"
            + t.cell(m.key, MONO, 6.6, inner[2])
            + "\n"
            + t.cell(f"version {m.version_id or '—'}", MONO, 6.6, inner[2])
            + "\n"
            + t.cell(purge_note(m.purged), MONO, 6.6, inner[2]),
            wrap(
                f"PURGED {fmt_when(m.purged.at).replace(' UTC', '')}\nno longer stored",
                SANS_BOLD,
                7.5,
                inner[3],
            ),
        ],
        [TX_SMALL, TX_SMALL, TX_MONO, TX_NOTICE_SMALL],
    )


# --------------------------------------------------------------------------- 6. custody


def custody(v: DossierView, t: _Text) -> list[Flowable]:
    out: list[Flowable] = [Heading("6  Chain of custody", S_H1, "custody")]
    rows: list[list[Any]]
    out.append(Paragraph("Manifest chain", S_H2))
    prev = v.previous
    out.append(
        _facts(
            [
                ("This manifest", _mono(f"{v.manifest_key}\n{v.manifest_sha256}", t)),
                (
                    "Previous manifest",
                    _mono(f"{prev.get('key')} {prev.get('sha256')}", t)
                    if prev
                    else "none: this is the first manifest of the debt",
                ),
            ],
            t,
        )
    )
    out.append(Paragraph("Media downloads", S_H2))
    out.append(
        Paragraph(
            "Signed media links expire (about an hour after the API issues them). Each file was "
            "stored before its link expired, by the margin shown.",
            S_NOTE,
        )
    )
    if v.media:
        widths = [34 * mm, 40 * mm, 40 * mm, WIDTH - 114 * mm]
        inner = [w - 6 for w in widths]
        download_rows = [
            Row(
                [
                    t.cell(f"{m.followup_id}  {m.kind}", MONO, 6.6, inner[0]),
                    t.cell(fmt_when(m.downloaded_at, seconds=True), SANS, 8, inner[1]),
                    t.cell(fmt_when(m.url_expires_at, seconds=True), SANS, 8, inner[2]),
                    wrap(m.margin, SANS_BOLD if m.late else SANS, 8, inner[3]),
                ],
                [TX_MONO, TX_CELL, TX_CELL, TX_ALERT if m.late else TX_CELL],
            )
            for m in v.media
        ]
        out.append(
            _grid(
                ["Followup / kind", "Downloaded at", "Link expires at", "Margin"],
                download_rows,
                widths,
            )
        )
    else:
        out.append(Paragraph("No media archived.", S_BODY))

    out.append(Paragraph("Problems recorded by the run", S_H2))
    if v.problems:
        rows = [
            [
                Paragraph(t(p.get("type", "")), S_CELL_BOLD),
                _mono(str(p.get("followup_id", "—")), t, S_MONO_CELL),
                t.plain(p.get("kind", "—")),
                Paragraph(t(p.get("message", "")), S_CELL),
            ]
            for p in v.problems
        ]
        out += _chunked(
            ["Problem", "Followup", "Kind", "Message"],
            rows,
            [36 * mm, 38 * mm, 14 * mm, WIDTH - 88 * mm],
            extra=[("TEXTCOLOR", (0, 1), (0, -1), ALERT)],
        )
    else:
        out.append(Paragraph("No problem recorded.", S_BODY))

    out.append(Paragraph("Retention extensions", S_H2))
    if v.retention_extensions:
        rows = [
            [
                [
                    _mono(str(e.get("key", "")), t, S_MONO_CELL),
                    Paragraph("version " + t(e.get("version_id") or "—"), S_CELL_MUTED),
                ],
                fmt_when(e.get("from")),
                fmt_when(e.get("to")),
            ]
            for e in v.retention_extensions
        ]
        # Dates need 34.2 mm at 8 pt; the object column takes the rest.
        out += _chunked(
            ["Object", "Retained until (before)", "Extended to"],
            rows,
            [WIDTH - 76 * mm, 38 * mm, 38 * mm],
        )
    else:
        out.append(Paragraph("This run extended no retention period.", S_BODY))

    if v.purges:
        out += _purges(v, t)

    out.append(Paragraph("Legal holds", S_H2))
    out.append(
        Paragraph(
            "Hold and release events up to the manifest's creation; later events belong to a later "
            "dossier.",
            S_NOTE,
        )
    )
    if v.events:
        rows = [
            [
                fmt_when(e.get("at")),
                Paragraph(f"<b>{t(e.get('action', ''))}</b>", S_CELL),
                Paragraph(t(e.get("actor", "")), S_CELL),
                Paragraph(t(e.get("reason", "")), S_CELL),
                t.plain(e.get("objects", "")),
            ]
            for e in v.events
        ]
        out += _chunked(
            ["At", "Action", "Actor", "Reason", "Objects"],
            rows,
            [36 * mm, 17 * mm, 34 * mm, WIDTH - 101 * mm, 14 * mm],
            extra=[("ALIGN", (4, 0), (4, -1), "RIGHT")],
        )
    else:
        out.append(Paragraph("No legal hold was placed on this debt.", S_BODY))
    out.append(PageBreak())
    return out


def _purges(v: DossierView, t: _Text) -> list[Flowable]:
    out: list[Flowable] = [
        Paragraph("Purges", S_H2),
        Paragraph(
            "Objects this manifest names that `archiver purge` deleted at the end of their "
            "maximum retention. Each purge wrote its deletion record (keys, version ids, "
            "SHA-256s) before deleting; the record is kept in the archive.",
            S_NOTE,
        ),
    ]
    rows: list[list[Any]] = []
    for p in v.purges:
        parts = [f"{p.records:,} record{'s' if p.records != 1 else ''}"] if p.records else []
        parts += [f"{p.media:,} medi{'a' if p.media != 1 else 'um'}"] if p.media else []
        parts += ["the debt record"] if p.debt else []
        deleted = ", ".join(parts)
        if p.objects_in_purge is not None:
            deleted += f" (of {p.objects_in_purge:,} objects in that purge)"
        who = " — ".join(x for x in (p.actor, p.reason) if x) or "—"
        rows.append(
            [
                [Paragraph(fmt_when(p.at), S_CELL), _mono(p.event_key, t, S_MONO_CELL)],
                Paragraph(t(deleted), S_CELL),
                Paragraph(t(who), S_CELL),
            ]
        )
    # The deletion record's key needs about 82 mm in 6.6 pt mono; the rest share what is left.
    out += _chunked(
        ["Purged at · deletion record", "Deleted (this manifest)", "Actor / reason"],
        rows,
        [88 * mm, 44 * mm, WIDTH - 132 * mm],
    )
    return out


# --------------------------------------------------------------------------- 7. verify


def how_to_verify(v: DossierView, t: _Text) -> list[Flowable]:
    key = v.manifest_key
    # The example must name a medium that is still stored.
    first_media = next((m for m in v.media if m.purged is None), None)
    code = lambda s: Paragraph(t(s), S_CODE)  # noqa: E731
    out: list[Flowable] = [
        Heading("7  How to verify", S_H1, "verify"),
        Paragraph(
            "Everything in this dossier can be checked with standard tools, without "
            "getbill-archiver. Each archived object is immutable (S3 Object Lock) and is named, "
            "in this document and in the manifest, by the SHA-256 of its exact bytes.",
            S_BODY,
        ),
        Paragraph("1. The manifest", S_H2),
        Paragraph(
            "Fetch it and recompute its SHA-256; it must equal the value on the cover.", S_BODY
        ),
        code(f"aws s3api get-object --bucket $BUCKET --key {key} manifest.json"),
        code("sha256sum manifest.json        # macOS: shasum -a 256 manifest.json"),
        code(f"# expected: {v.manifest_sha256}"),
        Paragraph(
            "The manifest is canonical JSON (RFC 8785): it lists every followup record and "
            "medium with its key, version id, size and SHA-256, the retention policy, and the "
            "problems met during the run.",
            S_BODY,
        ),
        Paragraph("2. Each record and medium", S_H2),
        Paragraph(
            "Use the key and version id from section 4 or 5 (or from the manifest). Fetching "
            "a version id returns exactly the bytes that were locked.",
            S_BODY,
        ),
    ]
    if first_media is not None:
        out += [
            code(
                f"aws s3api get-object --bucket $BUCKET --key {first_media.key} "
                f"--version-id {first_media.version_id or 'VERSION'} media.bin"
            ),
            code("sha256sum media.bin"),
            code(f"# expected: {first_media.sha256}"),
        ]
    else:
        out += [
            code(
                "aws s3api get-object --bucket $BUCKET --key KEY --version-id VERSION "
                "object.bin && sha256sum object.bin"
            )
        ]
    out += [
        Paragraph("3. The lock", S_H2),
        code(f"aws s3api get-object-retention --bucket $BUCKET --key {key}"),
        code(f"aws s3api get-object-legal-hold --bucket $BUCKET --key {key}"),
        Paragraph("4. The manifest chain", S_H2),
        Paragraph(
            "Each archive run writes a new manifest (debts/ID/manifests/00000001.json, "
            "00000002.json, ...). Each manifest names the key and SHA-256 of the one before it "
            'in its "previous" field; the first has none. Fetch the previous manifest, '
            "hash it and compare, and repeat down to sequence 1: a removed, replaced or "
            "reordered manifest breaks the chain.",
            S_BODY,
        ),
        code("jq -r '.previous.key, .previous.sha256' manifest.json"),
        Paragraph("5. All at once", S_H2),
        Paragraph(
            "getbill-archiver does all of the above for every object of the debt, and also "
            "re-renders this dossier and compares its bytes:",
            S_BODY,
        ),
        code(f"archiver verify {v.debt_id} --bucket $BUCKET"),
    ]
    return out


def colophon(v: DossierView, t: _Text, fonts: FontSet, renderer: str) -> list[Flowable]:
    note = (
        f"Rendered by {t(renderer)} with reportlab {reportlab.Version} and pikepdf "
        f"{pikepdf.__version__}, as PDF/A-2b, text in {t(fonts.family)} (embedded)."
    )
    if t.replaced:
        note += (
            f" {t.replaced:,} character(s) of the archived text cannot be drawn in this font "
            f"and are shown as “{t(fonts.marker)}”; the archived records hold them exactly."
        )
    return [Spacer(1, 8 * mm), Paragraph(note, S_NOTE)]


def build_story(v: DossierView, fonts: FontSet, renderer: str = "") -> list[Flowable]:
    """Every flowable of the dossier, in order."""
    t = _Text(fonts)
    story: list[Flowable] = []
    for section in (cover, summary, timeline, details, media_inventory, custody, how_to_verify):
        story += section(v, t)
    story += colophon(v, t, fonts, renderer)
    return story


__all__ = ["Heading", "build_story"]
