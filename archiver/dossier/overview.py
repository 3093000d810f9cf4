"""Sections 1-3 of the dossier: the cover, the summary and the timeline of followups."""

from __future__ import annotations

from typing import Any

from reportlab.lib.units import mm
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Paragraph,
    Spacer,
    Table,
)

from .blocks import (
    Heading,
    TextFilter,
    chunked,
    fact_table,
    grid,
    mono_para,
    purged_at_max,
    section_end,
    table,
    wrap,
)
from .charts import bar_chart, month_chart
from .data import (
    DossierView,
    FollowupView,
    fmt_duration,
    fmt_size,
    fmt_when,
)
from .fonts import SANS, SANS_BOLD
from .linetable import Row
from .outline import followup_title
from .styles import (
    ALERT,
    LAYOUT_TABLE,
    S_BODY,
    S_CELL,
    S_CELL_BOLD,
    S_H1,
    S_H2,
    S_LABEL_H,
    S_MONO_CELL,
    S_NOTE,
    S_NOTICE,
    S_SUBTITLE,
    S_TITLE,
    TX_CELL,
    TX_NOTICE,
    WIDTH,
)

# --------------------------------------------------------------------------- 1. cover


def cover(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 1: title, the debt, the manifest rendered from, its retention, contents."""
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
    facts: list[tuple[str, Any]] = [("Debt id", mono_para(v.debt_id, t))]
    facts += v.debt_facts
    if v.debt_purged:
        note = purged_at_max(v.debt_purged, "debt record")
        facts.append(("Debt record", Paragraph(t(note), S_NOTICE)))
    elif not v.debt_facts:
        why = v.debt_unavailable or "no debt record in this manifest"
        facts.append(("Debt record", f"not archived: {why}"))
    out.append(fact_table(facts, t))
    out += [Paragraph("The manifest this dossier is rendered from", S_H2)]
    prev = v.previous
    out.append(
        fact_table(
            [
                ("Sequence", str(v.sequence)),
                ("Key", mono_para(v.manifest_key, t)),
                ("SHA-256", mono_para(v.manifest_sha256, t)),
                ("Created at (= generated at)", fmt_when(v.created_at, seconds=True)),
                (
                    "Previous manifest",
                    mono_para(f"{prev.get('key')}\n", t) if prev else "none: first manifest",
                ),
                ("Previous SHA-256", mono_para(str(prev.get("sha256")), t) if prev else "—"),
                ("Tool and renderer", v.version_line),
                ("Records read from", v.source or "—"),
            ],
            t,
        )
    )
    out += [Paragraph("Retention", S_H2)]
    pol = v.policy
    out.append(
        fact_table(
            [
                (
                    "Policy",
                    f"{pol.get('name', '?')}" + (f" — {pol['title']}" if pol.get("title") else ""),
                ),
                ("Object Lock mode", str(pol.get("mode", "?"))),
                ("Policy file SHA-256", mono_para(str(pol.get("sha256", "")), t)),
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


def summary(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 2: figures, followups by type/status/month, payments, media not archived."""
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
        fact_table(
            [
                ("Followups archived", f"{n:,}"),
                ("First contact", fmt_when(v.first_contact)),
                ("Last contact", fmt_when(v.last_contact)),
                ("Total call time", fmt_duration(v.total_call_ms) if v.total_call_ms else "—"),
                ("Triggered a payment", f"{payments:,} followup{'s' if payments != 1 else ''}"),
                (
                    "Media archived",
                    f"{v.media_archived:,} file{'s' if v.media_archived != 1 else ''}, "
                    f"{fmt_size(v.media_bytes)}",
                ),
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
                ("Legal hold", _hold_cell(v, t)),
                *_lifecycle_facts(v),
            ],
            t,
        )
    )
    if v.by_type:
        left = 62 * mm
        type_rows = [[t.plain(k), f"{c:,}"] for k, c in v.by_type]
        type_table = table(
            [["Type", "Followups"], *type_rows],
            [32 * mm, 22 * mm],
            extra=[("ALIGN", (1, 0), (1, -1), "RIGHT")],
        )
        chart = bar_chart([(t.plain(k), c) for k, c in v.by_type], WIDTH - left)
        status_rows = [[t.plain(k), f"{c:,}"] for k, c in v.by_status]
        status_table = table(
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
    if v.statuses:
        out += _status_glossary(v, t)
    out += _payments(v, t)
    if v.media_unavailable:
        rows = [
            [mono_para(fid, t, S_MONO_CELL), t.plain(kind), Paragraph(t(why), S_CELL)]
            for fid, kind, why in v.media_unavailable
        ]
        out += [CondPageBreak(30 * mm), Paragraph("Media not archived", S_H2)]
        out += chunked(
            ["Followup", "Kind", "Why"],
            rows,
            [54 * mm, 18 * mm, WIDTH - 72 * mm],
            extra=[("TEXTCOLOR", (1, 1), (1, -1), ALERT)],
        )
    out.append(section_end(bool(v.followups)))
    return out


def _hold_cell(v: DossierView, t: TextFilter) -> Paragraph:
    """``on — open matters: D-2026-200 (since …), …`` in bold, or ``none open``."""
    if not v.open_matters:
        return Paragraph("off — no matter is open", S_CELL)
    names = ", ".join(
        f"{m.name} (since {fmt_when(m.since)})" if m.since else m.name for m in v.open_matters
    )
    return Paragraph(f"<b>ON</b> — open matters: {t(names)} (see section 6)", S_CELL)


def _status_glossary(v: DossierView, t: TextFilter) -> list[Flowable]:
    """What each status shown in this dossier means (getbill's words are terse)."""
    rows = [
        [Paragraph(t(status), S_CELL_BOLD), t.plain(whose), Paragraph(t(meaning), S_CELL)]
        for status, whose, meaning in v.statuses
    ]
    return [
        # The table is short: keep it on one page with its heading.
        CondPageBreak(min(24 * mm + len(rows) * 5.2 * mm, 150 * mm)),
        Paragraph("What the statuses mean", S_H2),
        Paragraph(
            "Statuses are shown as getbill gives them; the meanings are a plain-English reading "
            "of getbill's status names.",
            S_NOTE,
        ),
        *chunked(["Status", "Of", "Meaning"], rows, [40 * mm, 18 * mm, WIDTH - 58 * mm]),
    ]


def _payments(v: DossierView, t: TextFilter) -> list[Flowable]:
    """What the debt record says about payment, then the followups that triggered one."""
    if not v.payment_facts and not v.payments:
        return []
    out: list[Flowable] = [CondPageBreak(40 * mm), Paragraph("Payments", S_H2)]
    if v.payment_facts:
        out.append(fact_table(v.payment_facts, t, label_width=54 * mm))
    if not v.payments:
        return out
    rows = [
        [
            mono_para(p.followup_id, t, S_MONO_CELL),
            fmt_when(p.when),
            t.plain(p.type),
            t.plain(p.status),
            t.plain(p.amount) if p.amount else "not stated",
        ]
        for p in v.payments
    ]
    out += [
        Paragraph("Followups that triggered a payment", S_LABEL_H),
        *chunked(
            ["Followup", "Date", "Type", "Status", "Amount"],
            rows,
            [44 * mm, 38 * mm, 24 * mm, 28 * mm, WIDTH - 134 * mm],
            extra=[("ALIGN", (4, 0), (4, -1), "RIGHT")],
        ),
    ]
    if any(p.amount is None for p in v.payments):
        out += [
            Spacer(1, 1.5 * mm),
            Paragraph(
                "getbill records that a followup triggered a payment, not always how much; "
                "the amount owed is the debt's, above.",
                S_NOTE,
            ),
        ]
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


# --------------------------------------------------------------------------- 3. timeline


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _timeline_row(f: FollowupView, t: TextFilter, inner: list[float], n: int) -> Row:
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
        anchor=(f"timeline-{n}", followup_title(fmt_when(f.when), f.type, f.id)),
    )


def timeline(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 3: one row per followup, oldest first, with a shortened summary."""
    out: list[Flowable] = [
        Heading("3  Timeline", S_H1, "timeline", closed=bool(v.followups)),
        Paragraph(
            "One row per followup, oldest first (call date, else scheduled or processed "
            "time; all times UTC). Summaries are shortened here; section 4 gives them in full. "
            "What each status means is in section 2.",
            S_NOTE,
        ),
        Spacer(1, 2 * mm),
    ]
    if not v.followups:
        out += [Paragraph("No followup archived.", S_BODY), section_end(False)]
        return out
    widths = [36 * mm, 20 * mm, 18 * mm, 25 * mm, WIDTH - 99 * mm]
    inner = [w - 6 for w in widths]
    rows = [_timeline_row(f, t, inner, n) for n, f in enumerate(v.followups)]
    out.append(grid(["Date (UTC) / id", "Type", "Direction", "Status", "Summary"], rows, widths))
    out.append(PageBreak())
    return out


__all__ = ["cover", "summary", "timeline"]
