"""Sections 4-5 of the dossier: every followup record in detail and the media inventory."""

from __future__ import annotations

from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    Spacer,
)

from .blocks import (
    Heading,
    TextFilter,
    grid,
    long_text,
    missing_note,
    purged_at_max,
    section_end,
    wrap,
)
from .data import (
    DossierView,
    FollowupView,
    MediaView,
    fmt_duration,
    fmt_size,
    fmt_when,
    purge_note,
)
from .fonts import MONO, SANS, SANS_BOLD
from .linetable import LineTable, Row
from .outline import followup_title
from .styles import (
    ACCENT,
    BAND_BG,
    GRID_RULE,
    HEAD_BG,
    S_BODY,
    S_H1,
    S_LABEL,
    S_NOTE,
    S_TEXT,
    TX_ALERT,
    TX_BITS,
    TX_CELL,
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

# --------------------------------------------------------------------------- 4. detail


SHORT_TEXT = 700  # summary/notes up to this length sit in the field table


def _followup_block(f: FollowupView, t: TextFilter, n: int) -> list[Flowable]:
    """One table per followup: a header row (repeated if the table splits across pages),
    every record field, then where the record and its media are stored. Summary and notes
    too long for a table cell flow as paragraphs between two tables. The first table is the
    followup's entry in the PDF outline."""
    anchor = (f"followup-{n}", followup_title(fmt_when(f.when), f.type, f.id))
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
        note = wrap(missing_note(f.upstream_missing_since), SANS_BOLD, 8, value_w)
        rows.append(Row(["getbill listing", note], [TX_LABEL, TX_NOTICE]))
    if f.record_purged:
        note = purged_at_max(f.record_purged) + "; the fields below are from the manifest"
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
        # One row for all the fields the API sent as null: every field is shown, at a fraction
        # of the height.
        rows.append(
            Row(
                [
                    wrap("fields without a value", SANS_BOLD, 7.5, label_w - 6),
                    t.cell(", ".join(empty), SANS, 8, value_w),
                ],
                [TX_LABEL, TX_MUTED],
            )
        )
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
        return [LineTable(rows + archive, widths, grid=GRID_RULE, anchor=anchor), Spacer(1, 5 * mm)]
    out: list[Flowable] = [LineTable(rows, widths, grid=GRID_RULE, anchor=anchor)]
    for label, text in long_texts:
        para_label = Paragraph(label.capitalize(), S_LABEL)
        para_label.keepWithNext = True
        out += [Spacer(1, 1.5 * mm), para_label, *long_text(text, t, S_TEXT)]
    out += [
        Spacer(1, 1.5 * mm),
        LineTable([header, *archive], widths, grid=GRID_RULE),
        Spacer(1, 5 * mm),
    ]
    return out


def details(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 4: every field of every followup record and where it is stored."""
    out: list[Flowable] = [
        Heading("4  Followups in detail", S_H1, "details", closed=bool(v.followups)),
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
    for n, f in enumerate(v.followups):
        out += _followup_block(f, t, n)
    out.append(section_end(bool(v.followups)))
    return out


# --------------------------------------------------------------------------- 5. media


def media_inventory(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 5: every archived (or purged) medium with its hash, key, version and lock."""
    out: list[Flowable] = [
        Heading("5  Media inventory", S_H1, "media"),
        Paragraph(
            f"{v.media_archived:,} file{'s' if v.media_archived != 1 else ''} archived "
            f"({fmt_size(v.media_bytes)}), stored under S3 "
            "Object Lock. Each file is named by its SHA-256."
            + (
                f" {v.media_purged:,} more {'were' if v.media_purged != 1 else 'was'} purged: "
                "deleted at the end of the maximum retention, with a deletion record "
                "(section 6). Purged rows below keep the SHA-256 and key of what was stored."
                if v.media_purged
                else ""
            )
            + (
                " The debt is on legal hold (open matters: "
                + t(", ".join(m.name for m in v.open_matters))
                + "): every stored file is held, whatever its row said at archive time."
                if v.open_matters
                else ""
            ),
            S_BODY,
        ),
    ]
    if not v.media:
        out += [Paragraph("No media archived.", S_BODY), section_end(False)]
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
                    *_media_cells(m, t, inner),
                    fmt_when(m.retain_until).replace(" UTC", "")
                    + "\n"
                    + (m.retention_mode or "")
                    + "\n"
                    + ("LEGAL HOLD ON" if _held(v, m.legal_hold) else "legal hold off"),
                ],
                styles,
            )
        )
    out.append(
        grid(
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


def _media_cells(
    m: MediaView, t: TextFilter, inner: list[float], *, extra: str | None = None
) -> list[str]:
    """The first three cells of an inventory row: who/what, size/duration, hash/key/version
    (``extra`` is one more line under the version, e.g. a purge note)."""
    ident = (
        m.sha256
        + "\n"
        + t.cell(m.key, MONO, 6.6, inner[2])
        + "\n"
        + t.cell(f"version {m.version_id or '—'}", MONO, 6.6, inner[2])
    )
    if extra is not None:
        ident += "\n" + t.cell(extra, MONO, 6.6, inner[2])
    return [
        t.cell(m.followup_id, SANS, 7.5, inner[0])
        + "\n"
        + m.kind
        + "\n"
        + t.cell(m.sniffed_type or m.content_type or "", SANS, 7.5, inner[0]),
        wrap(fmt_size(m.size).replace(" (", "\n("), SANS, 7.5, inner[1])
        + ("\n" + fmt_duration(m.duration_ms) if m.duration_ms is not None else ""),
        ident,
    ]


def _purged_media_row(m: MediaView, t: TextFilter, inner: list[float]) -> Row:
    """A purged medium: what it was, and that it is no longer stored (not a retention date)."""
    assert m.purged is not None
    return Row(
        [
            *_media_cells(m, t, inner, extra=purge_note(m.purged)),
            wrap(
                f"PURGED {fmt_when(m.purged.at).replace(' UTC', '')}\nno longer stored",
                SANS_BOLD,
                7.5,
                inner[3],
            ),
        ],
        [TX_SMALL, TX_SMALL, TX_MONO, TX_NOTICE_SMALL],
    )


__all__ = ["details", "media_inventory"]


def _held(v: DossierView, flagged: bool) -> bool:
    """Whether a medium is shown as held: while a matter is open, whatever its row said; after
    events recorded since the manifest (rendered on demand), as those events leave it."""
    if v.later_events:
        return bool(v.open_matters)
    return flagged or bool(v.open_matters)
