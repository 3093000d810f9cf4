"""Sections 6-7 of the dossier and its colophon: the chain of custody (manifest chain,
media downloads, problems, retention extensions, purges, legal holds), how to verify the
archive with standard tools, and how the PDF was rendered."""

from __future__ import annotations

import shlex
from typing import Any

import pikepdf
import reportlab
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    Spacer,
)

from archiver.store import keys

from .blocks import (
    Heading,
    TextFilter,
    chunked,
    fact_table,
    grid,
    mono_para,
    wrap,
)
from .data import (
    DossierView,
    event_matter,
    fmt_when,
)
from .fonts import MONO, SANS, SANS_BOLD, FontSet
from .linetable import Row
from .styles import (
    ALERT,
    S_BODY,
    S_CELL,
    S_CELL_BOLD,
    S_CELL_MUTED,
    S_CODE,
    S_H1,
    S_H2,
    S_MONO_CELL,
    S_NOTE,
    TX_ALERT,
    TX_CELL,
    TX_MONO,
    WIDTH,
)

# --------------------------------------------------------------------------- 6. custody


def custody(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 6: manifest chain, download margins, problems, retention extensions,
    purges and legal holds."""
    out: list[Flowable] = [Heading("6  Chain of custody", S_H1, "custody")]
    rows: list[list[Any]]
    out.append(Paragraph("Manifest chain", S_H2))
    prev = v.previous
    out.append(
        fact_table(
            [
                ("This manifest", mono_para(f"{v.manifest_key}\n{v.manifest_sha256}", t)),
                (
                    "Previous manifest",
                    mono_para(f"{prev.get('key')} {prev.get('sha256')}", t)
                    if prev
                    else "none: this is the first manifest of the debt",
                ),
            ],
            t,
        )
    )
    if v.timestamps:
        out += _timestamps(v, t)
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
            grid(
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
                Paragraph(t(p.get("type") or "problem"), S_CELL_BOLD),
                mono_para(str(p.get("followup_id") or "—"), t, S_MONO_CELL),
                t.plain(p.get("kind") or "—"),
                Paragraph(t(p.get("message") or ""), S_CELL),
            ]
            for p in v.problems
        ]
        out += chunked(
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
                    mono_para(str(e.get("key", "")), t, S_MONO_CELL),
                    Paragraph("version " + t(e.get("version_id") or "—"), S_CELL_MUTED),
                ],
                fmt_when(e.get("from")),
                fmt_when(e.get("to")),
            ]
            for e in v.retention_extensions
        ]
        # Dates need 34.2 mm at 8 pt; the object column takes the rest.
        out += chunked(
            ["Object", "Retained until (before)", "Extended to"],
            rows,
            [WIDTH - 76 * mm, 38 * mm, 38 * mm],
        )
    else:
        out.append(Paragraph("This run extended no retention period.", S_BODY))

    if v.purges:
        out += _purges(v, t)

    out += _legal_holds(v, t)
    out += _exports(v, t)
    out.append(PageBreak())
    return out


def _timestamps(v: DossierView, t: TextFilter) -> list[Flowable]:
    """The trusted timestamp of each manifest up to this one: the TSA's time and name."""
    out: list[Flowable] = [
        Paragraph("Trusted timestamps (RFC 3161)", S_H2),
        Paragraph(
            "A time-stamping authority, a third party, signed the SHA-256 of each manifest "
            "listed: that manifest's exact bytes existed at the time shown, and through the "
            "chain everything it names and every manifest before it. The token is stored "
            "beside the manifest; section 7 shows how to check it.",
            S_NOTE,
        ),
    ]
    stamped = {ts.sequence: ts for ts in v.timestamps}
    rows: list[list[Any]] = []
    for seq in range(1, v.sequence + 1):
        ts = stamped.get(seq)
        if ts is None:
            rows.append([t.plain(f"{seq:08d}"), "no token", Paragraph("—", S_CELL)])
            continue
        when = fmt_when(ts.gen_time, seconds=True) if ts.gen_time else "—"
        name: list[Any] = [Paragraph(t(ts.tsa), S_CELL)]
        if ts.note:
            name.append(Paragraph(t(ts.note), S_CELL_BOLD))
        rows.append([mono_para(f"{seq:08d}", t, S_MONO_CELL), when, name])
    out += chunked(
        ["Manifest", "TSA time", "Time-stamping authority"],
        rows,
        [24 * mm, 40 * mm, WIDTH - 64 * mm],
    )
    return out


_EXPORT = "export"  # the action of an evidence pack handed over (archiver pack)


def _exports(v: DossierView, t: TextFilter) -> list[Flowable]:
    """The evidence packs handed over (export events), those recorded after the manifest
    included and said so; nothing when there are none."""
    shown = [(e, False) for e in v.events if e.get("action") == _EXPORT]
    shown += [(e, True) for e in v.later_events if e.get("action") == _EXPORT]
    if not shown:
        return []
    rows = []
    for e, later in shown:
        manifest = e.get("manifest")
        manifest = manifest if isinstance(manifest, dict) else {}
        pack = e.get("pack")
        pack = pack if isinstance(pack, dict) else {}
        seq = manifest.get("sequence")
        rows.append(
            [
                fmt_when(e.get("at")) + ("\n(after this manifest)" if later else ""),
                Paragraph(t(e.get("actor") or "—"), S_CELL),
                t.plain(f"#{seq}" if seq is not None else "—"),
                mono_para(str(pack.get("tagmanifest_sha256") or "—"), t, S_MONO_CELL),
                Paragraph(t(e.get("reason") or "—"), S_CELL),
            ]
        )
    return [
        Paragraph("Evidence packs handed over", S_H2),
        Paragraph(
            "Each `archiver pack` recorded who made an evidence pack of this debt, when, from "
            "which manifest, and the SHA-256 of the pack's tagmanifest-sha256.txt, which "
            "identifies every file of the pack.",
            S_NOTE,
        ),
        *chunked(
            ["At", "Actor", "Manifest", "SHA-256 of tagmanifest-sha256.txt", "Reason"],
            rows,
            [34 * mm, 28 * mm, 16 * mm, 60 * mm, WIDTH - 138 * mm],
        ),
    ]


def _legal_holds(v: DossierView, t: TextFilter) -> list[Flowable]:
    """The matters open at the dossier's time, then every hold and release event, then (on
    demand) the events recorded after the manifest (exports apart: :func:`_exports`)."""
    events = [e for e in v.events if e.get("action") != _EXPORT]
    later_events = [e for e in v.later_events if e.get("action") != _EXPORT]
    note = (
        "Hold and release events up to the manifest's creation, then the events recorded "
        "after it: this dossier was rendered after them, and the open matters are those after "
        "the last event."
        if later_events
        else "Hold and release events up to the manifest's creation; later events belong to a "
        "later dossier."
    )
    out: list[Flowable] = [
        Paragraph("Legal holds", S_H2),
        Paragraph(
            f"{note} A matter is open from its hold until its release; while any matter is open "
            "the whole archive of the debt is held.",
            S_NOTE,
        ),
    ]
    if v.open_matters:
        rows = [
            [
                Paragraph(f"<b>{t(m.name)}</b>", S_CELL),
                fmt_when(m.since),
                Paragraph(t(m.actor or "—"), S_CELL),
                Paragraph(t(m.reason or "—"), S_CELL),
            ]
            for m in v.open_matters
        ]
        out.append(Paragraph("Open matters: the debt is on legal hold", S_CELL_BOLD))
        out += chunked(
            ["Open matter", "Held since", "Actor", "Reason"],
            rows,
            [34 * mm, 36 * mm, 34 * mm, WIDTH - 104 * mm],
        )
    else:
        out.append(Paragraph("<b>Open matters: none.</b> The debt is not on legal hold.", S_CELL))
    if events:
        out += [Spacer(1, 2 * mm), *_event_table(events, t)]
    elif not later_events:
        out.append(Paragraph("No legal hold was placed on this debt.", S_BODY))
    else:
        out.append(Paragraph("No legal hold was placed before this manifest.", S_BODY))
    if later_events:
        out += [
            Paragraph("Events recorded after this manifest", S_H2),
            Paragraph(
                "Recorded in the archive after the manifest was written, so not part of it: "
                "the next archive run records them in a new manifest and its dossier. A purge "
                "listed here may have deleted objects this dossier names.",
                S_NOTE,
            ),
            *_event_table(later_events, t),
        ]
    return out


def _event_table(events: list[dict[str, Any]], t: TextFilter) -> list[Flowable]:
    rows = [
        [
            fmt_when(e.get("at")),
            Paragraph(f"<b>{t(e.get('action') or '')}</b>", S_CELL),
            Paragraph(t(event_matter(e) or "unnamed matter"), S_CELL),
            Paragraph(t(e.get("actor") or "—"), S_CELL),
            Paragraph(t(e.get("reason") or "—"), S_CELL),
            t.plain(e.get("objects") if e.get("objects") is not None else "—"),
        ]
        for e in events
    ]
    return chunked(
        ["At", "Action", "Matter", "Actor", "Reason", "Objects"],
        rows,
        [34 * mm, 16 * mm, 28 * mm, 30 * mm, WIDTH - 122 * mm, 14 * mm],
        extra=[("ALIGN", (5, 0), (5, -1), "RIGHT")],
    )


def _purges(v: DossierView, t: TextFilter) -> list[Flowable]:
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
                [Paragraph(fmt_when(p.at), S_CELL), mono_para(p.event_key, t, S_MONO_CELL)],
                Paragraph(t(deleted), S_CELL),
                Paragraph(t(who), S_CELL),
            ]
        )
    # The deletion record's key needs about 82 mm in 6.6 pt mono; the rest share what is left.
    out += chunked(
        ["Purged at · deletion record", "Deleted (this manifest)", "Actor / reason"],
        rows,
        [88 * mm, 44 * mm, WIDTH - 132 * mm],
    )
    return out


# --------------------------------------------------------------------------- 7. verify


def how_to_verify(v: DossierView, t: TextFilter) -> list[Flowable]:
    """Section 7: how to check the archive with standard tools (aws, sha256sum, jq)."""
    key = v.manifest_key
    dossier = keys.dossier_key(v.debt_id, v.sequence)
    receipt = keys.dossier_receipt_key(v.debt_id, v.sequence)
    # The example must name a medium that is still stored.
    first_media = next((m for m in v.media if m.purged is None), None)
    code = lambda s: Paragraph(t(s), S_CODE)  # noqa: E731
    s3 = f"--bucket {shlex.quote(v.bucket) if v.bucket else '$BUCKET'}"
    if v.endpoint:
        s3 += f" --endpoint-url {shlex.quote(v.endpoint)}"
    out: list[Flowable] = [
        Heading("7  How to verify", S_H1, "verify"),
        Paragraph(
            "Everything in this dossier can be checked with standard tools, without "
            "getbill-archiver. Each archived object is immutable (S3 Object Lock) and is named, "
            "in this document and in the manifest, by the SHA-256 of its exact bytes.",
            S_BODY,
        ),
        Paragraph(_where(v, t), S_NOTE),
        Paragraph("1. The manifest", S_H2),
        Paragraph(
            "Fetch it and recompute its SHA-256; it must equal the value on the cover.", S_BODY
        ),
        code(f"aws s3api get-object {s3} --key {key} manifest.json"),
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
                f"aws s3api get-object {s3} --key {first_media.key} "
                f"--version-id {first_media.version_id or 'VERSION'} media.bin"
            ),
            code("sha256sum media.bin"),
            code(f"# expected: {first_media.sha256}"),
        ]
    else:
        out += [
            code(
                f"aws s3api get-object {s3} --key KEY --version-id VERSION "
                "object.bin && sha256sum object.bin"
            )
        ]
    out += [
        Paragraph("3. The lock", S_H2),
        code(f"aws s3api get-object-retention {s3} --key {key}"),
        code(f"aws s3api get-object-legal-hold {s3} --key {key}"),
        Paragraph("4. The manifest chain", S_H2),
        Paragraph(
            "Each archive run writes a new manifest (debts/ID/manifests/00000001.json, "
            "00000002.json, ...). Each manifest names the key and SHA-256 of the one before it "
            'in its "previous" field, and of that one\'s dossier in "previous_dossier"; the '
            "first has none. Fetch the previous manifest, hash it and compare, and repeat "
            "down to sequence 1: a removed, replaced or reordered manifest breaks the chain.",
            S_BODY,
        ),
        code("jq -r '.previous.key, .previous.sha256, .previous_dossier.sha256' manifest.json"),
        Paragraph("5. This dossier", S_H2),
        Paragraph(
            "A document cannot show its own SHA-256: its receipt, locked beside it, does, and "
            'so does the next manifest\'s "previous_dossier". A copy of this file is the '
            "archived dossier if both match.",
            S_BODY,
        ),
        code(f"aws s3api get-object {s3} --key {dossier} dossier.pdf"),
        code(f"aws s3api get-object {s3} --key {receipt} receipt.json"),
        code("sha256sum dossier.pdf; jq -r .dossier.sha256 receipt.json    # the same"),
        Paragraph("6. All at once", S_H2),
        Paragraph(
            "getbill-archiver does all of the above for every object and dossier of the debt; "
            "--rerender also renders each dossier again (a difference from bytes matching "
            "their receipt means a newer renderer or library):",
            S_BODY,
        ),
        code(
            (f"AWS_ENDPOINT_URL_S3={shlex.quote(v.endpoint)} " if v.endpoint else "")
            + f"archiver verify {v.debt_id} --bucket "
            + (shlex.quote(v.bucket) if v.bucket else "$BUCKET")
        ),
    ]
    own = next((ts for ts in v.timestamps if ts.sequence == v.sequence), None)
    if own is not None:
        tsr = own.key.rsplit("/", 1)[-1]
        out += [
            Paragraph("7. The trusted timestamp", S_H2),
            Paragraph(
                "The time-stamping authority's token for this manifest is stored beside it. "
                "OpenSSL checks that it stamps the manifest's bytes and that a TSA certified "
                "by your trusted TSA root certificates (tsa-ca.pem) signed it:",
                S_BODY,
            ),
            code(f"aws s3api get-object {s3} --key {own.key} {tsr}"),
            code(f"openssl ts -verify -data manifest.json -in {tsr} -CAfile tsa-ca.pem"),
            code(f"openssl ts -reply -in {tsr} -text    # its time and TSA"),
        ]
    return out


def _where(v: DossierView, t: TextFilter) -> str:
    """Where the archive is, as the commands of this section name it."""
    if v.bucket and v.endpoint:
        return (
            f"The archive is in bucket {t(v.bucket)} at {t(v.endpoint)}; the commands below "
            "name both. Credentials come from your usual AWS configuration."
        )
    if v.bucket:
        return (
            f"The archive is in bucket {t(v.bucket)}, at the S3 endpoint of your AWS "
            "configuration (add --endpoint-url URL for another S3 service)."
        )
    return (
        "Replace $BUCKET with the name of the archive's bucket (and add --endpoint-url URL "
        "for an S3 service other than AWS)."
    )


# --------------------------------------------------------------------------- colophon


def colophon(v: DossierView, t: TextFilter, fonts: FontSet) -> list[Flowable]:
    """The closing note: libraries, font, undrawable characters (the tool and renderer
    versions are on the cover, once)."""
    note = (
        f"Rendered with reportlab {reportlab.Version} and pikepdf {pikepdf.__version__} "
        f"as PDF/A-2b, text in {t(fonts.family)} (embedded); tool and renderer versions are "
        "on the cover."
    )
    if t.replaced:
        note += (
            f" {t.replaced:,} character(s) of the archived text cannot be drawn in this font "
            f"and are shown as “{t(fonts.marker)}”; the archived records hold them exactly."
        )
    return [Spacer(1, 8 * mm), Paragraph(note, S_NOTE)]


__all__ = ["colophon", "custody", "how_to_verify"]
