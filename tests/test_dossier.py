"""The PDF audit dossier: content, reproducibility, PDF/A-2b, fonts, loading from the archive."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pikepdf
import pypdf
import pytest
from click.testing import CliRunner
from fixtures.dossier_sample import (
    SampleArchive,
    make_archive,
    with_lifecycle,
    with_payments_and_matters,
)
from reportlab.lib.colors import black
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Spacer

from archiver.cli import main
from archiver.common.canonical import canonical_json, sha256_hex
from archiver.dossier import (
    RENDERER_VERSION,
    DossierInput,
    build_view,
    load_dossier_input,
    render_dossier,
    render_dossier_bytes,
)
from archiver.dossier.charts import month_chart
from archiver.dossier.data import custody_margin, fmt_value, fmt_when, open_matters
from archiver.dossier.fonts import SANS, load_fonts
from archiver.dossier.linetable import LineTable, Row, Text
from archiver.dossier.money import UNREADABLE_MARK, fmt_money, parse_amount
from archiver.dossier.pdfa import check_pdfa
from archiver.dossier.statuses import DEBT_STATUSES, FOLLOWUP_STATUSES, UNKNOWN
from archiver.errors import IntegrityError, StorageError


def _input(a: SampleArchive, **changes: Any) -> DossierInput:
    # Events up to the manifest's creation, as load_dossier_input gives them.
    inp = DossierInput(
        a.manifest, a.manifest_key, a.manifest_sha256, a.records, a.debt, a.events[:2]
    )
    return replace(inp, **changes)


def _pages_text(pdf: bytes) -> list[str]:
    return [p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture(scope="module")
def sample() -> SampleArchive:
    return make_archive(24, long_notes_chars=20_000)


@pytest.fixture(scope="module")
def pdf(sample: SampleArchive) -> bytes:
    return render_dossier_bytes(_input(sample))


@pytest.fixture(scope="module")
def text(pdf: bytes) -> str:
    return "\n".join(_pages_text(pdf))


# --------------------------------------------------------------------------- content


def test_every_followup_id_and_hash_is_in_the_text(sample: SampleArchive, text: str) -> None:
    assert sample.manifest_sha256 in text
    followups = sample.manifest["followups"]
    assert len(followups) == 24
    media = [m for f in followups for m in f["media"]]
    assert media, "the sample should archive some media"
    for f in followups:
        assert f["id"] in text
        assert f["record_sha256"] in text
    for m in media:
        assert m["sha256"] in text, m["key"]


def test_cover_shows_debt_manifest_and_policy(sample: SampleArchive, text: str) -> None:
    for expected in (
        "Collection audit dossier",
        "Mme Zoé Łukasiewicz-Müller",
        "CLI-2024-00042",
        "Crédit Exemple SAS",
        "1,250.00 EUR",  # 1250.0 in memory, 1250 in the canonical bytes: shown the same way
        sample.manifest_key,
        "fr-cnil-5y",
        "COMPLIANCE",
        "2025-02-11 09:00:00 UTC",  # generated-at is the manifest's created_at
        f"{sample.manifest['tool']['name']} {sample.manifest['tool']['version']}",
        sample.manifest["previous"]["sha256"],
    ):
        assert expected in text, expected


def test_recorded_problems_and_holds_appear(sample: SampleArchive, text: str) -> None:
    assert sample.manifest["problems"]
    for p in sample.manifest["problems"]:
        assert p["type"] in text
        assert p["message"] in text
    assert "Litige ouvert par le débiteur" in text  # hold before the manifest
    assert "Regulator inquiry" not in text  # hold after it: not in this snapshot
    ext = sample.manifest["retention_extensions"][0]
    assert "2030-02-11 09:00 UTC" in text and ext["key"][:40] in text


def test_without_bucket_the_verify_steps_say_bucket(text: str) -> None:
    verify = text[text.index("7 How to verify") :]
    assert (
        "--bucket $BUCKET --key" in verify
        and "archiver verify dbt7f3k9q2 --bucket $BUCKET" in verify
    )
    assert "--endpoint-url http" not in verify


def test_custody_margin_and_summary_figures(text: str) -> None:
    assert re.search(r"stored \d+ min before its link expired", text)
    assert "Followups by type" in text and "Total call time" in text
    assert "Triggered a payment" in text


def test_accented_greek_cyrillic_polish_text_is_extracted(text: str) -> None:
    fonts = load_fonts()
    samples = (
        "Le débiteur confirme la réception de la facture",
        "zażółć gęślą jaźń",
        "Ο οφειλέτης ζήτησε επανάκληση",
        "Должник обещал оплатить",
        "€1 250,00",
    )
    for s in samples:
        # With DejaVu (fonts-dejavu-core) every sample is drawn as is; with the Vera
        # fallback (Latin-1 only) what Vera lacks shows as the marker.
        assert fonts.drawable(s)[0] in text, s
    if fonts.text_family == "DejaVu Sans":
        assert all(s in text for s in samples)
    assert "Le débiteur confirme la réception de la facture" in text  # Latin-1 always


def test_every_page_has_header_and_page_x_of_y(sample: SampleArchive, pdf: bytes) -> None:
    pages = _pages_text(pdf)
    n = len(pages)
    assert n > 5
    for i, page in enumerate(pages, start=1):
        assert f"Page {i} of {n}" in page
        assert sample.manifest_sha256[:12] in page
        assert sample.manifest["debt_id"] in page


def test_long_notes_continue_across_pages(sample: SampleArchive, pdf: bytes) -> None:
    notes = sample.records[sample.manifest["followups"][0]["id"]]["notes"]
    assert len(notes) == 20_000
    pages = _pages_text(pdf)
    first = next(i for i, p in enumerate(pages) if "[0] Appel long" in p)
    last = next(i for i, p in enumerate(pages) if "[20] Appel long" in p)
    assert last > first, "a 20 KB note spans several pages"
    joined = "".join(pages).replace("\n", "")
    assert "X" * 300 in joined  # the unbroken 600-character token is wrapped, not dropped


def _layout(story: list[Any], monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, list[str]]]:
    """Lay ``story`` out on 200 x 200 pt pages; return (page, first cells) of each table drawn."""
    load_fonts()
    drawn: list[tuple[int, list[str]]] = []
    draw = LineTable.draw

    def recording_draw(self: LineTable) -> None:
        drawn.append((self.canv.getPageNumber(), [r.cells[0] for r in self.rows]))
        draw(self)

    monkeypatch.setattr(LineTable, "draw", recording_draw)
    doc = BaseDocTemplate(io.BytesIO(), pagesize=(200, 200), invariant=1)
    doc.addPageTemplates(
        [PageTemplate(frames=[Frame(0, 0, 200, 200, 0, 0, 0, 0, id="f")])]  # 200 pt high
    )
    doc.build(story)
    return drawn


def _rows(spec: list[tuple[str, int]]) -> list[Row]:
    style = Text(SANS, 8, 10, black)  # a row of k lines is 10 k + 5.5 pt high
    return [Row(["\n".join(f"{name}:{i}" for i in range(k))], [style]) for name, k in spec]


def test_table_splits_between_rows_and_moves_a_row_that_fits_a_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Header 15.5 pt, row a 25.5, rows b-e 55.5 each. Under 110 pt of spacer the header and a
    # fit (41 of 90 pt); reportlab then offers the rest the 49 pt left, where the repeated
    # header and b's first two lines would fit. b fits a page whole, so it must move whole.
    rows = _rows([("head", 1), ("a", 2), ("b", 5), ("c", 5), ("d", 5), ("e", 5)])
    drawn = _layout([Spacer(1, 110), LineTable(rows, [200])], monkeypatch)
    body = [(page, cell) for page, cells in drawn for cell in cells[1:]]
    assert [cells[0] for _, cells in drawn] == ["head:0"] * len(drawn), "header on every page"
    # Every row is drawn once, whole (its first cell holds all its lines).
    assert [cell.split("\n")[0] for _, cell in body] == ["a:0", "b:0", "c:0", "d:0", "e:0"]
    assert all(cell.count("\n") == (1 if cell.startswith("a") else 4) for _, cell in body)
    assert [page for page, _ in body] == [1, 2, 2, 2, 3]


def test_row_taller_than_a_page_is_cut_between_its_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = _rows([("head", 1), ("a", 2), ("giant", 40), ("z", 1)])
    drawn = _layout([LineTable(rows, [200])], monkeypatch)
    giant = [
        (page, line)
        for page, cells in drawn
        for cell in cells[1:]
        for line in cell.split("\n")
        if line.startswith("giant")
    ]
    assert [line for _, line in giant] == [f"giant:{i}" for i in range(40)]  # no line lost
    assert len({page for page, _ in giant}) == 3
    # It fills page 1 after row a (no empty space left), then continues under the header.
    assert drawn[0][1][:2] == ["head:0", "a:0\na:1"]
    assert drawn[0][1][2].startswith("giant:0")
    assert all(cells[0] == "head:0" for _, cells in drawn)


def test_no_field_row_of_a_followup_is_cut_at_a_page_end() -> None:
    """Notes of a few hundred characters stay in the followup's table as one tall row; near a
    page end that row used to be cut, its first lines left under the previous page's rows."""
    a = make_archive(30)
    tagged: dict[str, list[str]] = {}
    for i, fid in enumerate(sorted(a.records)):
        if i % 3 == 1:
            words = [f"q{i:02d}w{j:02d}" for j in range(55)]
            a.records[fid]["notes"] = " ".join(words)  # about 440 characters, 6 lines
            tagged[fid] = words
    pdf = render_dossier_bytes(_input(a))
    pages = [p.split() for p in _pages_text(pdf)]
    for fid, words in tagged.items():
        on = {n for n, page in enumerate(pages) for w in words if w in page}
        assert len(on) == 1, f"the notes of {fid} are cut across pages {sorted(on)}"


def test_debt_without_followups_or_debt_record_renders() -> None:
    a = make_archive(0, with_debt=False, sequence=1)
    pdf = render_dossier_bytes(_input(a))
    text = "\n".join(_pages_text(pdf))
    assert "No followup archived" in text
    assert "403: token lacks debts:read" in text
    assert "none: first manifest" in text
    assert check_pdfa(pdf).passed


def test_missing_record_is_said_not_hidden(sample: SampleArchive) -> None:
    fid = sample.manifest["followups"][3]["id"]
    records = {k: v for k, v in sample.records.items() if k != fid}
    text = "\n".join(_pages_text(render_dossier_bytes(_input(sample, records=records))))
    assert "the stored record was not available to this render" in text


# --------------------------------------------------------------------------- purges, gone upstream


@pytest.fixture(scope="module")
def lifecycle() -> SampleArchive:
    return with_lifecycle(make_archive(12), purge_debt=True)


@pytest.fixture(scope="module")
def lifecycle_pdf(lifecycle: SampleArchive) -> bytes:
    inp = load_dossier_input(lifecycle.to_store(), lifecycle.manifest["debt_id"])
    return render_dossier_bytes(inp)


def _lifecycle_parts(a: SampleArchive) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    entries = a.manifest["followups"]
    medium = next(m for f in entries for m in f["media"] if m.get("purged"))
    bare = next(f for f in entries if f.get("record_purged"))
    gone = next(f for f in entries if f.get("upstream_missing_since"))
    return medium, bare, gone


def test_purged_and_unlisted_followups_are_said(
    lifecycle: SampleArchive, lifecycle_pdf: bytes
) -> None:
    medium, bare, gone = _lifecycle_parts(lifecycle)
    assert bare["id"] not in lifecycle.records  # the loader has nothing for it: must not crash
    pages = _pages_text(lifecycle_pdf)
    text = "\n".join(pages)
    flat = text.replace("\n", " ")
    ekey = medium["purged"]["event_key"]
    assert ekey in text
    assert "record purged on 2025-01-22 09:00 UTC at its maximum retention" in flat
    assert f"purged 2025-01-22 09:00 UTC (deletion record {ekey})" in flat  # media rows
    assert "debt record purged on 2025-01-22 09:00 UTC" in flat  # cover
    assert "no longer listed by getbill since 2025-02-09 09:00 UTC; archived evidence kept" in flat
    assert "the stored record was not available" not in text  # purged is not "missing"
    # The purged record is shown from its manifest entry.
    for value in (bare["id"], bare["type"], bare["status"], bare["call_date"]):
        assert value in text
    # The media inventory does not claim the purged medium is retained.
    media_page = next(p for p in pages if "SHA-256 · key · version" in p).replace("\n", " ")
    assert "PURGED 2025-01-22 09:00 no longer stored" in media_page
    assert fmt_when(medium["retain_until"]).replace(" UTC", "") not in media_page


def test_purges_listed_in_custody_not_among_holds(
    lifecycle: SampleArchive, lifecycle_pdf: bytes
) -> None:
    text = "\n".join(_pages_text(lifecycle_pdf))
    custody = text[text.index("Manifest chain") : text.index("1. The manifest")]
    medium, _, _ = _lifecycle_parts(lifecycle)
    assert "Purges" in custody and medium["purged"]["event_key"] in custody
    flat = custody.replace("\n", " ")
    assert "1 record, 1 medium, the debt record (of 6 objects in that purge)" in flat
    assert "retention-bot@ex" in flat
    holds = custody[custody.index("Legal holds") :]
    assert "Dispute settled" in holds  # the release is there, the deletion record is not
    assert "retention-bot@ex" not in holds and "maximum retention reached" not in holds


def test_view_counts_purged_media_separately(lifecycle: SampleArchive) -> None:
    inp = load_dossier_input(lifecycle.to_store(), lifecycle.manifest["debt_id"])
    view = build_view(inp)
    base = build_view(_input(make_archive(12)))
    assert view.media_purged == 1 and base.media_purged == 0
    assert view.media_archived == base.media_archived - 1
    medium, bare, gone = _lifecycle_parts(lifecycle)
    assert view.media_bytes == base.media_bytes - medium["size"]
    assert view.records_purged == 1 and view.upstream_missing == 1
    assert view.debt_purged is not None and view.debt_facts == []
    assert [(p.records, p.media, p.debt, p.objects) for p in view.purges] == [(1, 1, True, 3)]
    assert all(e.get("action") != "purge" for e in view.events)
    # Purged media are not "unavailable": they were archived, then lawfully deleted.
    assert {fid for fid, _, _ in view.media_unavailable} == {
        fid for fid, _, _ in base.media_unavailable
    }
    # A caller still holding the purged record in memory renders the same as the loader.
    records = {**inp.records, bare["id"]: make_archive(12).records[bare["id"]]}
    assert build_view(replace(inp, records=records)) == view


def test_lifecycle_dossier_is_pdfa_and_reproducible(
    lifecycle: SampleArchive, lifecycle_pdf: bytes
) -> None:
    report = check_pdfa(lifecycle_pdf)
    assert report.passed, report.summary()
    inp = load_dossier_input(lifecycle.to_store(), lifecycle.manifest["debt_id"])
    assert render_dossier_bytes(inp) == lifecycle_pdf
    # The verify example names a medium that is still stored.
    medium, _, _ = _lifecycle_parts(lifecycle)
    verify_page = next(p for p in _pages_text(lifecycle_pdf) if "7 How to verify" in p)
    assert medium["sha256"] not in verify_page


def test_ordinary_dossier_bytes_are_unchanged() -> None:
    """Purge/unlisted markers add to the dossier only where present: a manifest without them
    renders to the bytes renderer 1.3.0 always gives (stored dossiers still verify). 1.1.0
    moved a table row that fits a page to the next page whole instead of cutting it; 1.2.0
    shows amounts as money, payments, status meanings, open legal-hold matters, every month
    on the chart's axis, the bucket and endpoint in the verify steps and one version line;
    1.3.0 adds the dossier's receipt and the manifests' previous_dossier to the verify steps;
    1.4.0 draws notes in every script (font fallback, right-to-left order, shaping), shows what
    no font has as [U+XXXX] markers, writes valid ToUnicode maps and lists every followup in
    the PDF outline, whose entries point at their pages."""
    a = make_archive(6)
    pdf = render_dossier_bytes(_input(a))
    assert RENDERER_VERSION == "1.4.0"
    assert sha256_hex(pdf) == (
        "26ace3188661549c0b7b1a06c23fb049f7637e009e14dd129e6b4a688d1f0495"
    ), "ordinary output changed: bump RENDERER_VERSION"


# --------------------------------------------------------------------------- properties


def test_two_renders_are_byte_identical(sample: SampleArchive, pdf: bytes) -> None:
    assert render_dossier_bytes(_input(sample)) == pdf


def test_render_from_storage_equals_render_at_archive_time(sample: SampleArchive) -> None:
    # At archive time the records are in memory (floats like 1250.0); at verify time they are
    # parsed back from canonical JSON (1250). Both renders must give the same bytes.
    small = make_archive(6)
    loaded = load_dossier_input(small.to_store(), small.manifest["debt_id"])
    assert loaded.debt == json.loads(canonical_json(small.debt))
    assert render_dossier_bytes(loaded) == render_dossier_bytes(_input(small))


def test_render_dossier_reports_pages_and_sha(sample: SampleArchive, pdf: bytes) -> None:
    out = io.BytesIO()
    info = render_dossier(_input(sample), out)
    assert out.getvalue() == pdf
    assert info.sha256 == sha256_hex(pdf)
    assert info.pages == len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert info.renderer_version == RENDERER_VERSION


def test_pdfa_2b_validator_passes(pdf: bytes) -> None:
    report = check_pdfa(pdf)
    assert report.passed, report.summary()


def test_every_font_is_embedded_truetype(pdf: bytes) -> None:
    seen = 0
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        for obj in doc.objects:
            if not isinstance(obj, pikepdf.Dictionary) or obj.get("/Type") != "/Font":
                continue
            seen += 1
            assert obj.get("/Subtype") == "/TrueType", obj.get("/BaseFont")
            assert "Helvetica" not in str(obj.get("/BaseFont"))
            assert "/FontFile2" in obj["/FontDescriptor"], obj.get("/BaseFont")
    assert seen >= 3  # regular, bold, mono (italic only where used)


def test_metadata_title_subject_keywords_and_xmp(sample: SampleArchive, pdf: bytes) -> None:
    debt_id = sample.manifest["debt_id"]
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        info = doc.docinfo
        assert str(info["/Title"]) == f"Audit dossier — debt {debt_id}"
        assert str(info["/Subject"]) == f"debt {debt_id}"
        assert str(info["/Keywords"]) == sample.manifest_sha256
        assert RENDERER_VERSION in str(info["/Creator"])
        assert str(info["/CreationDate"]).startswith("D:20250211090000")
        meta = doc.open_metadata()
        assert meta["pdfaid:part"] == "2"
        assert meta["pdfaid:conformance"] == "B"
        assert meta["pdf:Keywords"] == sample.manifest_sha256
        assert meta["xmp:MetadataDate"].startswith("2025-02-11T09:00:00")  # never the clock
        assert len(doc.Root.OutputIntents) == 1
        assert doc.Root.Outlines.Count != 0  # section bookmarks


def test_undrawable_characters_are_replaced_and_counted(sample: SampleArchive) -> None:
    fonts = load_fonts()
    fid = sample.manifest["followups"][2]["id"]
    records = dict(sample.records)
    records[fid] = {**records[fid], "summary": "Paiement reçu 漢字 \x07 ok"}
    assert ord("漢") not in fonts.coverage
    pdf = render_dossier_bytes(_input(sample, records=records))
    text = "\n".join(_pages_text(pdf))
    assert fonts.marker == "[U+XXXX]"
    assert "Paiement reçu [U+6F22][U+5B57] [U+0007] ok" in text
    assert "character(s) of the archived text cannot be drawn" in text
    assert check_pdfa(pdf).passed  # no .notdef glyph drawn


# --------------------------------------------------------------------------- pure data


def test_view_is_chronological_and_counts(sample: SampleArchive) -> None:
    view = build_view(_input(sample))
    whens = [f.when for f in view.followups if f.when is not None]
    assert len(whens) == len(view.followups) and whens == sorted(whens)
    assert sum(c for _, c in view.by_type) == 24
    assert view.media_archived == sample.manifest["summary"]["media"]
    assert view.media_bytes == sample.manifest["summary"]["media_bytes"]
    assert {fid for fid, _, _ in view.media_unavailable} == {
        p["followup_id"] for p in sample.manifest["problems"] if p.get("kind")
    }
    assert view.first_contact is not None and view.last_contact is not None
    assert view.first_contact < view.last_contact


def test_view_does_not_depend_on_input_order(sample: SampleArchive) -> None:
    shuffled = dict(reversed(list(sample.records.items())))
    man = {**sample.manifest, "followups": list(reversed(sample.manifest["followups"]))}
    assert build_view(_input(sample, records=shuffled, manifest=man)) == build_view(_input(sample))


def test_custody_margin_words() -> None:
    t0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    iso = lambda d: d.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert custody_margin(iso(t0), iso(t0 + timedelta(minutes=41))) == (
        "stored 41 min before its link expired",
        False,
    )
    text, late = custody_margin(iso(t0 + timedelta(minutes=3)), iso(t0))
    assert late and "AFTER" in text
    assert custody_margin(iso(t0), None)[0] == "link expiry not stated by the API"


def test_fmt_value_matches_canonical_json() -> None:
    assert fmt_value(1250.0) == fmt_value(1250) == "1250"
    assert fmt_value(0.5) == "0.5"
    assert fmt_value(None) == "null" and fmt_value(True) == "true"
    assert fmt_value({"b": 1.0, "a": [2.0]}) == '{"a": [2], "b": 1}'


# --------------------------------------------------------------------------- loading


def test_load_reads_latest_manifest_and_checks_hashes(sample: SampleArchive) -> None:
    store = sample.to_store()
    inp = load_dossier_input(store, sample.manifest["debt_id"])
    assert inp.manifest == sample.manifest
    assert inp.manifest_sha256 == sample.manifest_sha256 == sha256_hex(sample.manifest_bytes)
    assert inp.manifest_key.endswith("/manifests/00000003.json")
    assert inp.records == json.loads(json.dumps(sample.records))
    assert [e["action"] for e in inp.events] == ["hold", "release"]  # not the later hold


def test_load_collects_every_mismatch(sample: SampleArchive) -> None:
    store = sample.to_store()
    keys = [f["record_key"] for f in sample.manifest["followups"][:2]]
    for key in keys:
        store.objects[key] = store.objects[key].replace(b'"status"', b'"Status"')
    del store.objects[sample.manifest["followups"][5]["record_key"]]
    with pytest.raises(IntegrityError) as err:
        load_dossier_input(store, sample.manifest["debt_id"], 3)
    types = sorted(p["type"] for p in err.value.problems)
    assert types == ["ChecksumMismatch", "ChecksumMismatch", "RecordMissing"]
    assert {p["key"] for p in err.value.problems} >= set(keys)


def test_load_without_manifest_fails_clearly() -> None:
    with pytest.raises(StorageError, match="no manifest"):
        load_dossier_input(make_archive(2).to_store(), "some-other-debt")


# --------------------------------------------------------------------------- CLI


def test_cli_writes_the_pdf(
    sample: SampleArchive, pdf: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sample.to_store()
    monkeypatch.setattr("archiver.wiring.open_configured_store", lambda config: store)
    out = tmp_path / "d" / "dossier.pdf"
    debt_id = sample.manifest["debt_id"]
    # As archived: the events up to the manifest only, the stored dossier's bytes.
    result = CliRunner().invoke(
        main, ["dossier", debt_id, "--as-archived", "-o", str(out), "--bucket", "b"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == pdf
    assert sha256_hex(pdf) in result.output
    result = CliRunner().invoke(
        main,
        ["dossier", debt_id, "--sequence", "3", "--as-archived", "-o", str(out), "--bucket", "b"]
        + ["--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pages"] == len(_pages_text(pdf))
    assert json.loads(result.output)["events_after_manifest"] == 0
    # By default the hold recorded after the manifest is shown too, and said so.
    result = CliRunner().invoke(main, ["dossier", debt_id, "-o", str(out), "--bucket", "b"])
    assert result.exit_code == 0, result.output
    assert "1 event recorded after this manifest shown apart" in result.output
    shown = " ".join(_pages_text(out.read_bytes()))
    assert "Events recorded after this manifest" in shown and "Regulator inquiry" in shown


def test_cli_refuses_tampered_archive(
    sample: SampleArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sample.to_store()
    key = sample.manifest["followups"][0]["record_key"]
    store.objects[key] += b" "
    monkeypatch.setattr("archiver.wiring.open_configured_store", lambda config: store)
    out = tmp_path / "dossier.pdf"
    result = CliRunner().invoke(
        main, ["dossier", sample.manifest["debt_id"], "-o", str(out), "--bucket", "b"]
    )
    assert result.exit_code == 1
    assert "ChecksumMismatch" in result.output and key in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_needs_a_bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHIVER_BUCKET", raising=False)
    result = CliRunner().invoke(main, ["dossier", "dbt1", "-o", str(tmp_path / "x.pdf")])
    assert result.exit_code == 2
    assert "bucket" in result.output


# --------------------------------------------------------------------------- real S3


@pytest.mark.integration
def test_load_and_render_from_a_real_locked_bucket(locked_bucket: Any) -> None:
    """Over real HTTP (SeaweedFS): records read by version id, hashes checked, and the PDF
    equals the one rendered from the same data in memory (what `archive` stores)."""
    import copy

    from archiver.store.types import Lock

    store = locked_bucket
    a = make_archive(5)
    lock = Lock("GOVERNANCE", datetime.now(UTC) + timedelta(days=1))
    versions = {}
    for key, data in sorted(a.objects.items()):
        if "/manifests/" not in key:
            versions[key] = store.put_bytes(
                key, data, lock=lock, content_type="application/json"
            ).version_id
    manifest = copy.deepcopy(a.manifest)
    for f in manifest["followups"]:
        f["record_version_id"] = versions[f["record_key"]]
    manifest["debt"]["version_id"] = versions[manifest["debt"]["key"]]
    mbytes = canonical_json(manifest)
    store.put_bytes(a.manifest_key, mbytes, lock=lock, content_type="application/json")

    inp = load_dossier_input(store, manifest["debt_id"])
    assert inp.manifest_sha256 == sha256_hex(mbytes)
    assert [e["action"] for e in inp.events] == ["hold", "release"]
    in_memory = DossierInput(
        manifest, a.manifest_key, sha256_hex(mbytes), a.records, a.debt, a.events[:2]
    )
    assert render_dossier_bytes(inp) == render_dossier_bytes(in_memory)


# --------------------------------------------------------------------------- compliance reading

BUCKET, ENDPOINT = "evidence-prod", "https://s3.eu-west-3.example.com"


@pytest.fixture(scope="module")
def paying() -> SampleArchive:
    return with_payments_and_matters(make_archive(14))


def _paying_input(a: SampleArchive, **changes: Any) -> DossierInput:
    inp = DossierInput(
        a.manifest,
        a.manifest_key,
        a.manifest_sha256,
        a.records,
        a.debt,
        a.events,
        bucket=BUCKET,
        endpoint="https://key:secret@s3.eu-west-3.example.com/?X-Amz-Signature=abc#frag",
    )
    return replace(inp, **changes)


@pytest.fixture(scope="module")
def paying_pdf(paying: SampleArchive) -> bytes:
    return render_dossier_bytes(_paying_input(paying))


@pytest.fixture(scope="module")
def paying_pages(paying_pdf: bytes) -> list[str]:
    return _pages_text(paying_pdf)


def test_fmt_money_is_locale_independent_with_minor_units() -> None:
    assert fmt_money(4281.1, "EUR") == "4,281.10 EUR"
    assert fmt_money("4281.10", "EUR") == "4,281.10 EUR"
    assert fmt_money(1250.0, "EUR") == fmt_money(1250, "EUR") == "1,250.00 EUR"
    assert fmt_money(1500, "JPY") == "1,500 JPY"
    assert fmt_money("1234.5", "KWD") == "1,234.500 KWD"
    assert fmt_money(1234567.891, "EUR") == "1,234,567.891 EUR"  # kept, never rounded away
    assert fmt_money("4281.1000", "EUR") == "4,281.10 EUR"
    assert fmt_money("-12", "eur") == "-12.00 EUR"
    assert fmt_money(12, None) == "12.00 (currency not stated)"
    assert fmt_money(12, "€") == "12.00 €"  # not a code: as received
    assert parse_amount("4,281.10") is None and parse_amount(True) is None
    for odd in ("4 281,10 €", "NaN", "1e3x", True):
        shown = fmt_money(odd, "EUR")
        assert UNREADABLE_MARK in shown and str(odd) in shown, odd
    source = Path(fmt_money.__code__.co_filename).read_text()
    assert "import locale" not in source


def test_amounts_are_money_and_payments_are_listed(
    paying: SampleArchive, paying_pages: list[str]
) -> None:
    text = "\n".join(paying_pages[1:])  # after the cover (its contents name the sections)
    assert "4,281.10 EUR" in paying_pages[0]  # the cover's amount
    summary = text[text.index("2 Summary") : text.index("3 Timeline")]
    payments = summary[summary.index("Payments") :].replace("\n", " ")
    assert "Amount owed 4,281.10 EUR" in payments
    assert "Amount as getbill writes it 4 281,10 €" in payments
    assert "Payment plan active, started 2024-06-01" in payments
    assert "Followups that triggered a payment" in payments and "Amount" in payments
    assert "350.00 EUR" in payments  # the amount the followup record states
    view = build_view(_paying_input(paying))
    assert [p.amount for p in view.payments] == ["350.00 EUR"]
    assert all(p.followup_id in payments for p in view.payments)


def test_no_row_is_labelled_null(text: str, paying_pages: list[str]) -> None:
    for pages in (text, "\n".join(paying_pages)):
        assert "fields without a value" in pages
        assert not re.search(r"(^|\n)null(\s|$)", pages)


def test_months_without_followups_are_on_the_chart_axis() -> None:
    a = make_archive(3)  # January, May and September 2024
    view = build_view(_input(a))
    assert view.by_month == [
        ("2024-01", 1),
        ("2024-02", 0),
        ("2024-03", 0),
        ("2024-04", 0),
        ("2024-05", 1),
        ("2024-06", 0),
        ("2024-07", 0),
        ("2024-08", 0),
        ("2024-09", 1),
    ]
    chart = month_chart(view.by_month, 400)
    bars = chart.contents[0]
    assert bars.categoryAxis.categoryNames == [m for m, _ in view.by_month]
    assert bars.data == [[c for _, c in view.by_month]]
    summary = _pages_text(render_dossier_bytes(_input(a)))[1]
    assert all(f"2024-{m:02d}" in summary for m in range(1, 10))


def test_verify_steps_name_the_bucket_and_endpoint(paying_pages: list[str]) -> None:
    verify = next(p for p in paying_pages if "7 How to verify" in p)
    flat = verify.replace("\n", " ")
    assert "$BUCKET" not in verify
    assert f"aws s3api get-object --bucket {BUCKET} --endpoint-url {ENDPOINT} --key" in flat
    assert f"get-object-retention --bucket {BUCKET} --endpoint-url {ENDPOINT}" in flat
    assert f"AWS_ENDPOINT_URL_S3={ENDPOINT} archiver verify" in flat
    everything = "\n".join(paying_pages)
    for secret in ("key:secret", "secret@", "X-Amz-Signature", "frag"):
        assert secret not in everything, secret


def test_one_version_line(text: str, paying_pages: list[str]) -> None:
    for pages in (text, "\n".join(paying_pages)):
        assert pages.count(f"getbill-archiver 0.1.0, dossier renderer {RENDERER_VERSION}") == 1
        assert len(re.findall(r"renderer \d", pages)) == 1  # no second version line elsewhere


def test_statuses_are_explained(paying_pages: list[str], paying: SampleArchive) -> None:
    text = "\n".join(paying_pages[1:])
    assert "partial — partly paid; a balance is still owed" in paying_pages[0]  # cover
    summary = text[text.index("What the statuses mean") : text.index("3 Timeline")]
    view = build_view(_paying_input(paying))
    for status, whose, meaning in view.statuses:
        table = FOLLOWUP_STATUSES if whose == "followup" else DEBT_STATUSES
        assert meaning == table[status] and meaning in summary, status
    # A status getbill does not document is shown as received, and said to be so.
    fid = next(iter(paying.records))
    records = {**paying.records, fid: {**paying.records[fid], "status": "custom_legal_review"}}
    odd = build_view(_paying_input(paying, records=records))
    assert ("custom_legal_review", "followup", UNKNOWN) in odd.statuses
    assert len(DEBT_STATUSES) == 11 and len(FOLLOWUP_STATUSES) == 11


def test_open_matters_are_listed_and_media_held(
    paying: SampleArchive, paying_pages: list[str]
) -> None:
    view = build_view(_paying_input(paying))
    assert [m.name for m in view.open_matters] == ["D-2026-200"]  # D-2026-117 was released
    flat = "\n".join(paying_pages[1:]).replace("\n", " ")
    summary = flat[flat.index("2 Summary") : flat.index("Followups by type")]
    assert "ON — open matters: D-2026-200 (since 2025-01-02 09:00 UTC)" in summary
    assert "D-2026-117" not in summary
    custody = flat[flat.index("6 Chain of custody") : flat.index("7 How to verify")]
    holds = custody[custody.index("Legal holds") :]
    open_part = holds[holds.index("Open matter") : holds.index("At Action")]
    assert "D-2026-200" in open_part and "D-2026-117" not in open_part
    assert "Invoice dispute settled" in holds  # the release is in the event table
    media = next(p for p in paying_pages if "SHA-256 · key · version" in p)
    assert "legal hold off" not in media
    assert media.count("LEGAL HOLD ON") == view.media_archived


def test_open_matters_none_when_all_released(pdf: bytes) -> None:
    text = "\n".join(_pages_text(pdf)[1:])
    summary = text[text.index("2 Summary") : text.index("Followups by type")]
    assert "off — no matter is open" in summary.replace("\n", " ")
    assert "Open matters: none." in text


def test_open_matters_pure() -> None:
    def ev(action: str, at: str, matter: str | None = None) -> dict[str, Any]:
        e: dict[str, Any] = {"action": action, "at": f"2025-01-{at}T09:00:00Z", "reason": at}
        return {**e, "matter": matter} if matter else e

    assert open_matters([]) == []
    # A release without a matter closes only the unnamed matter, never a named one.
    events = [ev("hold", "02", "A"), ev("hold", "01"), ev("release", "03")]
    assert [m.name for m in open_matters(events)] == ["A"]
    # Input order does not matter; a second hold of an open matter keeps the first.
    events = [ev("release", "05", "A"), ev("hold", "06", "A"), ev("hold", "01", "A")]
    opened = open_matters(list(reversed(events)))
    assert [(m.name, m.reason) for m in opened] == [("A", "06")]
    both = [ev("hold", "01", "A"), ev("hold", "02", "B"), ev("hold", "03", "A")]
    assert [(m.name, m.reason) for m in open_matters(both)] == [("A", "01"), ("B", "02")]
    # Purges are not holds; a release before any hold changes nothing.
    events = [ev("release", "01", "A"), ev("purge", "02"), ev("hold", "03", "B")]
    assert [m.name for m in open_matters(events)] == ["B"]
    # "+00:00" and "Z" notations are ordered by time, not as text.
    events = [
        {"action": "hold", "matter": "A", "at": "2025-01-01T10:00:00+01:00"},
        {"action": "release", "matter": "A", "at": "2025-01-01T09:30:00Z"},
    ]
    assert open_matters(events) == []


def test_compliance_dossier_is_pdfa_and_reproducible(
    paying: SampleArchive, paying_pdf: bytes
) -> None:
    report = check_pdfa(paying_pdf)
    assert report.passed, report.summary()
    assert render_dossier_bytes(_paying_input(paying)) == paying_pdf
    # The bucket and endpoint are part of the bytes: a re-render must be given the same.
    assert render_dossier_bytes(_paying_input(paying, bucket="other")) != paying_pdf


def test_on_demand_dossier_shows_the_events_after_its_manifest_apart(
    sample: SampleArchive,
) -> None:
    """Rendered on demand after a hold the manifest predates: the hold is shown apart, and the
    debt is shown as held, on every medium too."""
    later = sample.events[2:]
    assert later and later[0]["action"] == "hold"
    text = " ".join(
        " ".join(_pages_text(render_dossier_bytes(_input(sample, later_events=later)))).split()
    )
    after = text[text.index("Events recorded after this manifest") :]
    assert "Regulator inquiry" in after
    assert "Open matters: the debt is on legal hold" in text
    assert "legal hold off" not in text and "LEGAL HOLD ON" in text
    # Without them: the stored dossier's bytes.
    assert render_dossier_bytes(_input(sample, later_events=[])) == render_dossier_bytes(
        _input(sample)
    )


def _raw(inp: DossierInput) -> bytes:
    """reportlab's own output, before pikepdf rewrites it (which could hide a difference)."""
    from archiver.dossier.render import _render_raw

    return _render_raw(inp, None)[0]


MIXED_NOTES = "Échéancier — Ελληνικά, кириллица, مرحبا بالعميل 😀 \x7f"


def test_page_streams_handed_over_as_bytes_make_the_same_file(
    sample: SampleArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """encode_page_streams is a shortcut past reportlab's PDFDocEncoding codec: reportlab must
    write the very file it writes by itself, for Latin, Greek, Cyrillic, Arabic and emoji."""
    import archiver.dossier.render as render

    mixed = replace(
        _input(sample),
        records={k: {**r, "notes": f"{MIXED_NOTES} {k}"} for k, r in sample.records.items()},
    )
    shortcut = render.encode_page_streams
    taken: list[bool] = []

    def checked(doc: Any) -> None:
        shortcut(doc)
        taken.append(all(isinstance(p.stream, bytes) for p in doc.Pages.pages))

    monkeypatch.setattr(render, "encode_page_streams", checked)
    handed = [_raw(_input(sample)), _raw(mixed)]
    assert taken == [True, True]  # every page went the short way
    monkeypatch.setattr(render, "encode_page_streams", lambda doc: None)
    assert [_raw(_input(sample)), _raw(mixed)] == handed


def test_reportlab_s_pdfdoc_codec_writes_exactly_those_characters_as_themselves() -> None:
    """The premise of encode_page_streams, checked against the installed reportlab."""
    import reportlab.pdfbase.pdfdoc  # noqa: F401 - registers the codec

    from archiver.dossier.render import _NOT_ASCII_PDFDOC

    for code in range(0x180):
        char = chr(code)
        try:
            encoded: bytes | None = char.encode("extpdfdoc")
        except UnicodeEncodeError:
            encoded = None
        if _NOT_ASCII_PDFDOC.search(char) is None:
            assert encoded == bytes([code]), hex(code)
        elif code < 0x80:
            assert encoded is None, hex(code)  # U+0018-U+001F: refused, left to reportlab


def test_a_page_stream_reportlab_s_codec_would_refuse_is_left_to_reportlab() -> None:
    from archiver.dossier.render import encode_page_streams

    class Page:
        def __init__(self, stream: Any) -> None:
            self.stream = stream

    class Doc:
        class Pages:
            pages = [Page("BT (a) Tj ET\n"), Page("BT (\x18) Tj ET"), Page("é"), Page(b"x")]

    encode_page_streams(Doc)
    assert [p.stream for p in Doc.Pages.pages] == [b"BT (a) Tj ET\n", "BT (\x18) Tj ET", "é", b"x"]


def test_remembered_glyph_runs_make_the_same_file(
    sample: SampleArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DossierFont.splitString remembers each text's runs per document: each file must be the
    one reportlab's own splitting writes, accents, scripts and emoji included, after another
    document and beside one rendered at the same time in another thread."""
    from concurrent.futures import ThreadPoolExecutor

    from reportlab.pdfbase.ttfonts import TTFont

    from archiver.dossier.fonts import DossierFont

    # More distinct characters than one 256-code subset holds: texts split into several runs.
    many = "".join(map(chr, [*range(0x100, 0x17F), *range(0x391, 0x3CE), *range(0x410, 0x44F)]))
    wide = replace(
        _input(sample),
        records={
            k: {**r, "notes": f"Relance n° 2 — {many} مرحبا 😀"} for k, r in sample.records.items()
        },
    )
    mixed = replace(
        _input(sample),
        records={k: {**r, "notes": MIXED_NOTES} for k, r in sample.records.items()},
    )
    with ThreadPoolExecutor(2) as pool:
        remembered = [_raw(wide), *pool.map(_raw, [mixed, wide])]
    monkeypatch.setattr(DossierFont, "splitString", TTFont.splitString)
    assert [_raw(wide), _raw(mixed), _raw(wide)] == remembered
