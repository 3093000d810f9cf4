"""Notes in every script: font fallback, right-to-left order, shaping, extraction, markers,
ToUnicode maps, and the PDF outline of the dossier."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pikepdf
import pypdf
import pytest
from fixtures.dossier_sample import SampleArchive, make_archive

from archiver.dossier import DossierInput, render_dossier_bytes
from archiver.dossier.fonts import (
    ARABIC,
    ARABIC_BOLD,
    EMOJI,
    SANS,
    SANS_BOLD,
    load_fonts,
    to_unicode_cmap,
)
from archiver.dossier.pdfa import check_pdfa
from archiver.dossier.textlayout import MARKER_COLOR, Line, Style, text_layout

NOTE = "Client joint, échéancier proposé — 😀 مرحبا"
ARABIC_NOTE = (
    "العميل وافق على خطة السداد الشهرية (٣ أقساط) بدءاً من الشهر القادم، "
    "وسيتصل بنا إذا تغيّر وضعه المالي."
)
PRIVATE = "\ue000"  # private use: no font has it
PHOENICIAN = "\U00010900"  # a rare script no font of the dossier covers
_ARABIC_WORD = re.compile(r"[\u0621-\u063a\u0641-\u065f\u0670]+")  # letters and vowel marks
_VOWELS = re.compile(r"[\u064b-\u065f\u0670]")
# Explicit embedding marks poppler puts around the runs it reorders.
_BIDI_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _input(a: SampleArchive, **changes: Any) -> DossierInput:
    inp = DossierInput(
        a.manifest, a.manifest_key, a.manifest_sha256, a.records, a.debt, a.events[:2]
    )
    return replace(inp, **changes)


def _with_notes(a: SampleArchive, notes: dict[int, dict[str, str]]) -> DossierInput:
    """``a`` with fields of followup n (manifest order) replaced."""
    records = dict(a.records)
    for n, fields in notes.items():
        fid = a.manifest["followups"][n]["id"]
        records[fid] = {**records[fid], **fields}
    return _input(a, records=records)


def _pypdf_text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "dossier.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True)
    return _BIDI_MARKS.sub("", out.stdout.decode("utf-8"))


@pytest.fixture(scope="module")
def archive() -> SampleArchive:
    return make_archive(6)


@pytest.fixture(scope="module")
def multilingual(archive: SampleArchive) -> bytes:
    return render_dossier_bytes(
        _with_notes(
            archive,
            {1: {"notes": NOTE}, 3: {"summary": f"Réf. {PRIVATE} et {PHOENICIAN} reçues"}},
        )
    )


# --------------------------------------------------------------------------- extraction


def test_issue_note_extracts_as_written_with_pypdf(multilingual: bytes) -> None:
    text = _pypdf_text(multilingual)
    assert NOTE in text
    assert "ὠ" not in text and "\ufffd" not in text  # the old ToUnicode garbage


def test_issue_note_extracts_with_pdftotext(multilingual: bytes, tmp_path: Path) -> None:
    # poppler rebuilds the logical order of the right-to-left word; it only adds embedding
    # marks around it (removed here), so searching the note finds it.
    assert NOTE in _pdftotext(multilingual, tmp_path)


def test_arabic_paragraph_words_are_searchable(archive: SampleArchive, tmp_path: Path) -> None:
    # Long enough to be a paragraph of several lines (right aligned, broken in logical order).
    pdf = render_dossier_bytes(_with_notes(archive, {2: {"notes": ARABIC_NOTE * 12}}))
    words = set(_ARABIC_WORD.findall(ARABIC_NOTE))
    assert len(words) > 10 and "تغيّر" in words  # one word with a vowel mark (shadda)
    found = set(_ARABIC_WORD.findall(_pypdf_text(pdf)))
    assert words <= found, words - found
    # poppler puts a vowel mark before its letter: compare the letters.
    found = set(_ARABIC_WORD.findall(_VOWELS.sub("", _pdftotext(pdf, tmp_path))))
    assert {_VOWELS.sub("", w) for w in words} <= found
    assert check_pdfa(pdf).passed


def test_arabic_debtor_name_in_a_paragraph_is_drawn_and_extracted(archive: SampleArchive) -> None:
    debt = {**archive.debt, "civility": "السيد", "firstname": "أحمد", "lastname": "المصري"}
    pdf = render_dossier_bytes(_input(archive, debt=debt))
    cover = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    for word in ("السيد", "أحمد", "المصري"):
        assert word in cover
    assert "/AAAAAA+NotoSansArabic-Regular" in _base_fonts(pdf)


# --------------------------------------------------------------------------- fonts


def _base_fonts(pdf: bytes) -> set[str]:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return {
            str(obj.get("/BaseFont"))
            for obj in doc.objects
            if isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") == "/Font"
        }


def test_each_script_is_drawn_with_a_font_that_has_it(multilingual: bytes) -> None:
    names = " ".join(_base_fonts(multilingual))
    assert "NotoSansArabic" in names and "NotoEmoji" in names and "DejaVuSans" in names
    line = text_layout().line([(NOTE, Style(SANS, 8))])
    fonts = {p.font for p in line.pieces}
    assert fonts == {SANS, EMOJI, ARABIC}
    bold = text_layout().line([(NOTE, Style(SANS_BOLD, 8))])
    assert ARABIC_BOLD in {p.font for p in bold.pieces}


def _glyph_names(line: Line, font: str) -> list[str]:
    """Names of the glyphs ``font`` draws in ``line``, left to right."""
    f = load_fonts().font(font)
    return [
        f.hb.glyph_to_string(f.face.charToGlyph[ord(ch)])
        for p in line.pieces
        if p.font == font and p.glyphs
        for _x, _y, ch, _w in p.glyphs
    ]


def test_arabic_is_shaped_and_drawn_right_to_left() -> None:
    line = text_layout().line([("مرحبا", Style(SANS, 10))])
    names = _glyph_names(line, ARABIC)
    # Visual order: the last letter (alef, final form) leftmost, meem (initial) rightmost.
    assert names[0].startswith("uni0627") and names[0].endswith(".fina")
    assert names[-1] == "uni0645.init"
    assert any(n.endswith(".medi") for n in names)
    # The dots HarfBuzz splits off the letters are placed, not dropped.
    assert any(p.marks for p in line.pieces)


def test_mixed_line_orders_runs_by_the_bidi_algorithm() -> None:
    line = text_layout().line([("abc مرحبا بكم (في) def", Style(SANS, 10))])
    assert not line.rtl
    assert line.pieces[0].text == "abc " and line.pieces[-1].text == " def"
    # The Arabic words are drawn right to left, the brackets between them mirrored.
    assert [p.text for p in line.pieces if p.font == ARABIC] == ["في", "بكم", "مرحبا"]
    closing = next(p for p in line.pieces if p.text == ")")
    assert _glyph_names(Line((closing,), closing.width, ""), SANS) == ["parenleft"]
    rtl = text_layout().line([("مرحبا (بكم) 12", Style(SANS, 10))])
    assert rtl.rtl  # a note in Arabic reads from the right: it is aligned right


def test_hebrew_is_reordered_in_the_text_face() -> None:
    line = text_layout().line([("שלום abc", Style(SANS, 10))])
    assert line.rtl
    assert [p.font for p in line.pieces if p.text.strip()] == [SANS, SANS]
    # The Hebrew word, first in logical order, is on the right.
    assert line.pieces[-1].text.strip() == "שלום"


def test_emoji_sequences_are_one_glyph() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    line = text_layout().line([(family, Style(SANS, 10))])
    (piece,) = line.pieces
    assert piece.font == EMOJI and piece.glyphs is not None and len(piece.glyphs) == 1
    (_x, _y, ch, _w), *_ = piece.glyphs
    assert load_fonts().font(EMOJI).source_text(ord(ch)) == family


def test_wrapped_lines_fit_their_width() -> None:
    layout = text_layout()
    text = (NOTE + " " + ARABIC_NOTE + " ") * 4
    lines = layout.split(text, SANS, 8, 200)
    assert len(lines) > 4
    assert all(layout.width(line, SANS, 8) <= 200 + 1e-6 for line in lines)
    assert " ".join(lines) == text


# --------------------------------------------------------------------------- markers


def test_characters_no_font_has_are_visible_markers_pointing_to_the_record(
    archive: SampleArchive, multilingual: bytes
) -> None:
    text = _pypdf_text(multilingual)
    assert "Réf. [U+E000] et [U+10900] reçues" in text
    entry = archive.manifest["followups"][3]
    note = f"followup {entry['id']} (record {entry['record_key']}): U+E000, U+10900"
    assert re.sub(r"\s", "", note) in re.sub(r"\s", "", text)
    assert "character(s) of the archived text cannot be drawn" in text
    assert check_pdfa(multilingual).passed  # no .notdef glyph drawn
    line = text_layout().line([(f"a{PRIVATE}b", Style(SANS, 8))])
    (marker,) = [p for p in line.pieces if p.marker]
    assert marker.text == "[U+E000]" and marker.color == MARKER_COLOR


def test_no_marker_note_without_undrawable_characters(archive: SampleArchive) -> None:
    pdf = render_dossier_bytes(_with_notes(archive, {1: {"notes": NOTE}}))
    assert "drawn as [U+XXXX] markers" not in _pypdf_text(pdf)


# --------------------------------------------------------------------------- ToUnicode


def test_to_unicode_maps_are_valid_and_give_back_non_bmp_characters(multilingual: bytes) -> None:
    seen: list[str] = []
    with pikepdf.open(io.BytesIO(multilingual)) as doc:
        for obj in doc.objects:
            if not (isinstance(obj, pikepdf.Dictionary) and "/ToUnicode" in obj):
                continue
            cmap = obj["/ToUnicode"].read_bytes().decode("ascii")
            for block in re.findall(r"(\d+) beginbfchar\n(.*?)endbfchar", cmap, re.S):
                entries = re.findall(r"<([0-9A-F]+)> <([0-9A-F]*)>", block[1])
                assert len(entries) == int(block[0]) <= 100
                for _code, dst in entries:
                    assert dst and len(dst) % 4 == 0, dst  # UTF-16BE, never "1F600"
                    seen.append(bytes.fromhex(dst).decode("utf-16-be"))
    assert "😀" in seen  # as the surrogate pair D83D DE00
    assert "ح" in seen  # a contextual form maps to its letter


def test_to_unicode_cmap_skips_notdef_and_glyphs_standing_for_nothing() -> None:
    text = {0xF0001: ""}
    cmap = to_unicode_cmap("X", [0, 0x41, 0xF0001, 0x1F600], lambda cp: text.get(cp, chr(cp)))
    assert "2 beginbfchar\n<01> <0041>\n<03> <D83DDE00>\nendbfchar" in cmap
    assert "<00>" not in cmap.split("endcodespacerange")[1]


# --------------------------------------------------------------------------- outline


def _outline(pdf: bytes) -> tuple[pypdf.PdfReader, list[Any]]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return reader, reader.outline


def test_outline_lists_sections_and_every_followup_twice(
    archive: SampleArchive, multilingual: bytes
) -> None:
    reader, outline = _outline(multilingual)
    titles = [e.title for e in outline if not isinstance(e, list)]
    assert titles == [
        "Collection audit dossier",
        "2  Summary",
        "3  Timeline",
        "4  Followups in detail",
        "5  Media inventory",
        "6  Chain of custody",
        "7  How to verify",
    ]
    ids = [f["id"] for f in archive.manifest["followups"]]
    children = [e for e in outline if isinstance(e, list)]
    assert len(children) == 2  # under the timeline and under the details
    for group in children:
        assert [c.title.rsplit(" · ", 1)[-1] for c in group] == ids


def test_outline_entries_point_at_their_pages() -> None:
    pdf = render_dossier_bytes(_input(make_archive(40)))
    reader, outline = _outline(pdf)
    pages = [p.extract_text() or "" for p in reader.pages]
    top = [e for e in outline if not isinstance(e, list)]
    for entry in top:
        page = reader.get_destination_page_number(entry)
        assert entry.title.replace("  ", " ") in pages[page].replace("  ", " "), entry.title
    details = [e for e in outline if isinstance(e, list)][1]
    numbers = [reader.get_destination_page_number(e) for e in details]
    assert numbers == sorted(numbers) and len(set(numbers)) > 3  # spread over many pages
    for entry, page in zip(details, numbers, strict=True):
        assert entry.title.rsplit(" · ", 1)[-1] in pages[page]


# --------------------------------------------------------------------------- reproducible


def test_multilingual_dossier_is_pdfa_and_reproducible_across_processes(
    archive: SampleArchive, multilingual: bytes, tmp_path: Path
) -> None:
    assert check_pdfa(multilingual).passed
    # Other text shaped in this process first: private code numbering differs, bytes do not.
    render_dossier_bytes(_with_notes(archive, {1: {"notes": ARABIC_NOTE + " 👍🏽"}}))
    again = render_dossier_bytes(
        _with_notes(
            archive,
            {1: {"notes": NOTE}, 3: {"summary": f"Réf. {PRIVATE} et {PHOENICIAN} reçues"}},
        )
    )
    assert again == multilingual
    script = tmp_path / "render.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parent.parent)!r}]\n"
        "import test_dossier_text as t\n"
        "from fixtures.dossier_sample import make_archive\n"
        "a = make_archive(6)\n"
        "inp = t._with_notes(a, {1: {'notes': t.NOTE}, "
        "3: {'summary': f'Réf. {t.PRIVATE} et {t.PHOENICIAN} reçues'}})\n"
        "sys.stdout.buffer.write(t.render_dossier_bytes(inp))\n"
    )
    fresh = subprocess.run([sys.executable, str(script)], capture_output=True, check=True)
    assert fresh.stdout == multilingual


def test_fonts_loaded_from_several_threads_at_once_are_loaded_once() -> None:
    """A run loads the fonts in the background while something else may render: in a fresh
    process, threads asking at the same moment all get the one FontSet."""
    import subprocess
    import sys

    script = (
        "import threading\n"
        "from archiver.dossier.fonts import load_fonts\n"
        "gate = threading.Barrier(4)\n"
        "got = []\n"
        "def ask():\n"
        "    gate.wait()\n"
        "    got.append(load_fonts())\n"
        "threads = [threading.Thread(target=ask) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(len(got), len({id(f) for f in got}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4", "1"]
