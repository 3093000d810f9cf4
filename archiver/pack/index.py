"""The two files a person reads first: ``data/index.html`` and ``data/VERIFY.txt``. Pure.

``index.html`` is one self-contained page (inline CSS, no script, no outside asset) that a
reviewer opens from the folder: the debt, the manifest chain, every followup in time order
with its record and media linked by relative path, every event, what was purged, each
file's SHA-256, and how to verify. Every value from a record or an event is escaped
(``html.escape``): records are untrusted input. ``VERIFY.txt`` says, in plain text, how to
check the pack with standard tools only.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote

from archiver.pack.contents import PackContents
from archiver.pack.layout import DATA, INDEX_PATH, VERIFY_PATH, Purged

__all__ = ["render_index", "render_verify"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;
margin:0;background:#f4f5f7}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:2px solid
#d8dde6;padding-bottom:4px}p.lead{color:#4a5568;margin:0 0 16px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{text-align:left;vertical-align:top;padding:5px 8px;border-bottom:1px solid #e6e9ef}
th{background:#f0f2f6;font-weight:600;font-size:12px;text-transform:uppercase;
letter-spacing:.03em;color:#4a5568}
table.facts th{width:210px;text-transform:none;font-size:13px;letter-spacing:0}
code,.hash{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.hash,td code{color:#4a5568;word-break:break-all}a{color:#1f5fbf}a code{color:#1f5fbf}
td.when,td.num{white-space:nowrap}details summary{cursor:pointer;color:#1f5fbf;margin:4px 0}
.muted{color:#718096}.purged{color:#9b2c2c;font-weight:600}.tag{display:inline-block;
padding:0 6px;border-radius:3px;background:#e8eef9;color:#234;font-size:12px}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:10px 12px;overflow-x:auto;
font:12px/1.5 ui-monospace,Menlo,Consolas,monospace}
.note{background:#fff8e1;border-left:4px solid #f0b429;padding:8px 12px;margin:8px 0}
@media print{body{background:#fff}main{padding:0}a{color:inherit}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(path: str) -> str:
    """A link from ``data/index.html`` to the pack file ``path`` (relative, quoted)."""
    rel = path[len(DATA) + 1 :] if path.startswith(f"{DATA}/") else f"../{path}"
    return _e(quote(rel, safe="/._-"))


def _link(path: str | None, text: str | None = None) -> str:
    if path is None:
        return '<span class="muted">—</span>'
    shown = text if text is not None else (path[len(DATA) + 1 :] if path.startswith(DATA) else path)
    return f'<a href="{_href(path)}"><code>{_e(shown)}</code></a>'


def _hash(digest: str | None) -> str:
    return f'<span class="hash">{_e(digest or "—")}</span>'


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _purged(p: Purged) -> str:
    return (
        f'<span class="purged">purged</span> {_e(p.at or "")} — deletion record '
        f"{_link(_event_path(p.event_key))}"
    )


def _event_path(event_key: str) -> str | None:
    # debts/{id}/events/N.json -> data/events/N.json
    parts = event_key.split("/", 2)
    return f"{DATA}/{parts[2]}" if len(parts) == 3 else None


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def render_index(c: PackContents) -> str:
    """The page (see the module docstring)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing from outside, ever: the page is read offline, from a pack of evidence.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src 'self'; media-src 'self'\">",
        f"<title>Evidence pack — debt {_e(c.debt_id)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>Evidence pack — debt <code>{_e(c.debt_id)}</code></h1>",
        f'<p class="lead">Handed over by {_e(c.organization)}. Every file of this folder is '
        "the exact bytes of an object of the archive (S3 Object Lock), named there by its "
        "SHA-256; the pack is a BagIt bag that proves itself.</p>",
        _facts(
            [
                ("Debt", f"<code>{_e(c.debt_id)}</code>"),
                ("Source organization", _e(c.organization)),
                ("Pack created", _e(c.created_at)),
                ("Manifest", f"#{c.sequence} <code>{_e(c.manifest_key)}</code>"),
                ("Manifest SHA-256", _hash(c.manifest_sha256)),
                ("Archive bucket", _e(c.bucket or "—")),
                (
                    "Audit dossier",
                    _link(c.dossier_path, "dossier.pdf")
                    if c.dossier_path
                    else f'<span class="purged">{_e(c.dossier_note)}</span>',
                ),
                ("How to verify", _link(VERIFY_PATH, "VERIFY.txt")),
                ("Made by", _e(c.tool)),
            ]
        ),
    ]
    parts += _debt(c)
    parts += _chain(c)
    parts += _followups(c)
    parts += _events(c)
    if c.purged:
        parts += _purged_section(c)
    parts += _files(c)
    parts += _how_to_verify(c)
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _debt(c: PackContents) -> list[str]:
    out = ["<h2>The debt</h2>"]
    if c.debt_path is None:
        out.append('<p class="muted">No debt record in the manifest (not archived or purged).</p>')
        return out
    out.append(f"<p>Debt record as archived: {_link(c.debt_path)}</p>")
    fields = dict(c.debt_fields)
    main = [(name, fields[name]) for name in _DEBT_SUMMARY if name in fields]
    out.append(_facts((name, _e(value)) for name, value in main))
    out.append(
        f"<details><summary>All {len(c.debt_fields)} fields of the debt record</summary>"
        + _facts((name, _e(value)) for name, value in c.debt_fields)
        + "</details>"
    )
    return out


# The fields of a getbill debt record a reviewer looks for first (those present are shown).
_DEBT_SUMMARY = (
    "id",
    "civility",
    "firstname",
    "lastname",
    "debtor_company",
    "debtor_reference",
    "amount_text",
    "currency",
    "status",
    "object",
    "invoice_reference",
    "invoice_date",
    "due_date",
)


def _chain(c: PackContents) -> list[str]:
    rows = [
        [
            str(m.sequence),
            _e(m.created_at or "—"),
            _link(m.path, m.path.rsplit("/", 1)[-1]),
            _hash(m.sha256),
            _hash(m.previous_sha256) if m.previous_sha256 else '<span class="muted">none</span>',
            " ".join(_link(t, t.rsplit("/", 1)[-1]) for t in m.tokens)
            or '<span class="muted">none</span>',
        ]
        for m in c.chain
    ]
    return [
        "<h2>Manifest chain</h2>",
        "<p>Each manifest names the SHA-256 of the one before it (<code>previous.sha256</code>);"
        " the first names none. A removed, changed or reordered manifest breaks the chain.</p>",
        _table(["#", "Created", "File", "SHA-256", "Previous SHA-256", "Timestamp"], rows),
    ]


def _followups(c: PackContents) -> list[str]:
    rows = []
    for n, f in enumerate(c.followups, 1):
        record = (
            _purged(f.record_purged)
            if f.record_purged
            else f"{_link(f.record_path, 'record (JSON)')}<br>{_hash(f.record_sha256)}"
        )
        media = []
        for m in f.media:
            if m.purged:
                media.append(f'<span class="tag">{_e(m.kind)}</span> {_purged(m.purged)}')
            else:
                ext = m.path.rsplit(".", 1)[-1] if m.path else ""
                media.append(
                    f'<span class="tag">{_e(m.kind)}</span> {_link(m.path, f"{ext} file")} '
                    f"({_e(_size(m.size))})<br>{_hash(m.sha256)}"
                )
        what = f"<b>{_e(f.type)}</b> · {_e(f.status)}"
        if f.direction:
            what += f" · {_e(f.direction)}"
        if f.duration_ms is not None:
            what += f" · {f.duration_ms / 1000:.0f} s"
        if f.summary:
            summary = f.summary if len(f.summary) <= 300 else f.summary[:299] + "…"
            what += f'<br><span class="muted">{_e(summary)}</span>'
        rows.append(
            [
                str(n),
                '<td class="when">'
                + (_e(f.when.strftime("%Y-%m-%d %H:%M UTC")) if f.when else "undated")
                + "</td>",
                f"<code>{_e(f.id)}</code><br>{what}",
                record,
                "<br>".join(media) or '<span class="muted">none</span>',
            ]
        )
    return [
        f"<h2>Followups ({len(c.followups)}), in time order</h2>",
        _table(["#", "When", "Followup", "Record", "Media"], rows),
    ]


def _events(c: PackContents) -> list[str]:
    out = [
        "<h2>Events: holds, releases, purges, exports</h2>",
        "<p>Immutable records of the debt's chain of custody, in the order the archive "
        "numbered them. Handing this pack over is recorded by an export event written after "
        "it was made, so it is not among them.</p>",
    ]
    if not c.events:
        out.append('<p class="muted">No event recorded.</p>')
        return out
    rows = [
        [
            _link(e.path),
            f"<b>{_e(e.action)}</b>",
            _e(e.at or "—"),
            _e(e.actor or "—"),
            _e(e.matter or "—"),
            _e(e.reason or "—"),
        ]
        for e in c.events
    ]
    out.append(_table(["Event", "Action", "At", "Actor", "Matter", "Reason"], rows))
    return out


def _purged_section(c: PackContents) -> list[str]:
    rows = [
        [
            _e(p.kind),
            f"<code>{_e(p.key)}</code>",
            _hash(p.sha256),
            _purged(p),
        ]
        for p in c.purged
    ]
    return [
        f"<h2>Purged objects ({len(c.purged)})</h2>",
        '<p class="note">Named by the manifest but deleted at the end of their maximum '
        "retention: their bytes are not in the pack, their deletion records are.</p>",
        _table(["Kind", "Key", "SHA-256", "Deletion"], rows),
    ]


def _files(c: PackContents) -> list[str]:
    rows = [
        [_link(path), f'<td class="num">{_e(_size(f.size))}</td>', _hash(f.sha256)]
        for path, f in sorted(c.files.items())
    ]
    return [
        f"<h2>Every file ({len(c.files) + 1})</h2>",
        "<p>SHA-256 of each payload file, as <code>manifest-sha256.txt</code> lists it (this "
        "page too, which cannot list itself).</p>",
        _table(["File", "Size", "SHA-256"], rows),
        f'<p class="muted">{_e(INDEX_PATH)}: see <code>manifest-sha256.txt</code>.</p>',
    ]


def _how_to_verify(c: PackContents) -> list[str]:
    return [
        "<h2>How to verify</h2>",
        f"<p>Step by step in {_link(VERIFY_PATH, 'VERIFY.txt')}; in short, from the pack "
        "folder (the one holding <code>bagit.txt</code>):</p>",
        "<pre>"
        + _e(
            "bagit.py --validate .                      # the bag: every file, both digests\n"
            "sha256sum -c manifest-sha256.txt           # the same with coreutils alone\n"
            f"sha256sum data/manifests/{c.sequence:08d}.json   # = {c.manifest_sha256}\n"
            "jq -r .previous.sha256 data/manifests/00000002.json   # = sha256 of 00000001.json"
        )
        + "</pre>",
    ]


def render_verify(c: PackContents) -> str:
    """VERIFY.txt (see the module docstring)."""
    seq = f"{c.sequence:08d}"
    lines = [
        f"EVIDENCE PACK OF DEBT {c.debt_id}",
        "",
        f"Handed over by:   {c.organization}",
        f"Made:             {c.created_at} by {c.tool}",
        f"From manifest:    #{c.sequence} {c.manifest_key}",
        f"Manifest SHA-256: {c.manifest_sha256}",
        f"BagIt profile:    {c.profile_id}",
        "",
        "This folder is a BagIt 1.0 bag (RFC 8493). Every file under data/ is the exact bytes of",
        "an object of the archive (S3 Object Lock), checked against the manifests while copied:",
        "  data/manifests/   the whole manifest chain, 1 to N, and the timestamp tokens",
        "                    (NNNNNNNN.tsr, RFC 3161) when the archive has them",
        "  data/records/     the followup records the manifest names",
        "  data/media/       the recordings and letters the manifest names",
        "  data/debt/        the debt record (when archived)",
        "  data/events/      holds, releases, purges and exports",
        "  data/dossier.pdf  the audit dossier stored with the manifest, and its receipt",
        "  data/index.html   a page to read all of this in a browser",
        "Each file keeps the archive's name: data/X is the object debts/" + c.debt_id + "/X.",
        "Handing this pack over is recorded in the archive by an export event naming the",
        "SHA-256 of tagmanifest-sha256.txt (which names bag-info.txt and both payload",
        "manifests, which name every file).",
        "",
    ]
    if c.dossier_path is None:
        lines += [f"NOTE: {c.dossier_note}", ""]
    if c.purged:
        lines.append("PURGED: named by the manifest, deleted at their maximum retention; the")
        lines.append("deletion record (an event in data/events/) stands for each:")
        for p in c.purged:
            lines.append(f"  {p.key}  sha256 {p.sha256}  purged {p.at} by {p.event_key}")
        lines.append("")
    lines += [
        "HOW TO VERIFY, with standard tools (run from this folder, the one with bagit.txt)",
        "",
        "1. The bag: every file present, nothing added, both digests right.",
        "     pip install bagit && bagit.py --validate .",
        "   or with coreutils alone:",
        "     sha256sum -c manifest-sha256.txt && sha512sum -c manifest-sha512.txt",
        "     sha256sum -c tagmanifest-sha256.txt",
        "     find data -type f | wc -l     # = the second number of Payload-Oxum in bag-info.txt",
        "",
        "2. The manifest this pack is made from: its SHA-256 must be the one above (and the one",
        "   bag-info.txt names as Archive-Manifest-SHA256).",
        f"     sha256sum data/manifests/{seq}.json",
        "",
        "3. The manifest chain: each manifest names the SHA-256 of the one before.",
        "     for f in data/manifests/*.json; do",
        '       echo "$f $(sha256sum < "$f" | cut -c1-64) previous=$(jq -r .previous.sha256 "$f")"',
        "     done",
        "   Each line's previous= must equal the SHA-256 of the line before; manifest 1 says null.",
        "",
        "4. Each record, medium and the debt record against the manifest (the object",
        "   debts/" + c.debt_id + "/X of the archive is the file data/X here):",
        f"     M=data/manifests/{seq}.json",
        "     jq -r '(.followups[] | select(.record_purged == null)",
        '              | .record_sha256 + "  " + .record_key),',
        '            (.followups[].media[] | select(.purged == null) | .sha256 + "  " + .key),',
        '            (.debt // empty | select(.purged == null) | .sha256 + "  " + .key)\' $M \\',
        "       | sed 's|  debts/[^/]*/|  data/|' | sha256sum -c",
        "   (objects marked purged are not in the pack: see PURGED above).",
        "",
        "5. The dossier: its receipt names its SHA-256 and the manifest it renders.",
        "     sha256sum data/dossier.pdf; jq -r .dossier.sha256 data/dossier.receipt.json",
        "     jq -r .manifest.sha256 data/dossier.receipt.json   # = the manifest SHA-256 above",
        "",
        "6. Timestamp tokens (RFC 3161), when data/manifests/ has NNNNNNNN.tsr files: each",
        "   proves the manifest's SHA-256 existed at the time the TSA signed.",
        "     openssl ts -reply -in data/manifests/NNNNNNNN.tsr -text     # the time, the TSA",
        "     openssl ts -verify -data data/manifests/NNNNNNNN.json \\",
        "        -in data/manifests/NNNNNNNN.tsr -CAfile data/tsa-ca.pem",
        "   (data/tsa-ca.pem: the TSA root certificates the archive trusts, when the pack",
        "   carries them; compare their fingerprints with the TSA's own:",
        "     openssl x509 -in data/tsa-ca.pem -noout -subject -fingerprint -sha256",
        "   add -token_in when a file holds the bare token rather than the TSA's whole reply.)",
        "",
        "7. With getbill-archiver: archiver pack verify PATH   (this folder or its .zip)",
        "",
    ]
    return "\n".join(lines)
