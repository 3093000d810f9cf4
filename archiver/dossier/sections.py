"""The seven sections of the dossier, in order, as one story of platypus flowables.

Each section is a function ``(DossierView, TextFilter) -> list[Flowable]`` in the module of
its part of the document: :mod:`.overview` (1 cover, 2 summary, 3 timeline), :mod:`.evidence`
(4 followups in detail, 5 media inventory) and :mod:`.custody` (6 chain of custody, 7 how to
verify, colophon); the blocks they share are in :mod:`.blocks`. One ``TextFilter`` runs
through the whole story so the colophon can say how many characters no font could draw, and
a closing note says which records hold them. Paragraphs in scripts reportlab cannot draw
itself become :class:`~archiver.dossier.richtext.RichText` at the end.
"""

from __future__ import annotations

from reportlab.platypus import Flowable, Paragraph

from .blocks import Heading, TextFilter
from .custody import colophon, custody, how_to_verify
from .data import DossierView
from .evidence import details, media_inventory
from .fonts import FontSet
from .overview import cover, summary, timeline
from .richtext import upgrade
from .styles import S_NOTE
from .textlayout import text_layout


def build_story(v: DossierView, fonts: FontSet) -> list[Flowable]:
    """Every flowable of the dossier, in order."""
    t = TextFilter(fonts)
    story: list[Flowable] = []
    for section in (cover, summary, timeline, details, media_inventory, custody, how_to_verify):
        story += section(v, t)
    story += colophon(v, t, fonts)
    story += undrawn(v, t, fonts)
    return upgrade(story, text_layout())


def undrawn(v: DossierView, t: TextFilter, fonts: FontSet) -> list[Flowable]:
    """Which records hold the characters shown as ``[U+XXXX]`` markers (none: nothing)."""
    found: list[str] = []
    for label, texts in _texts(v):
        cps = sorted({ord(c) for text in texts for c in fonts.undrawable.findall(text)})
        if cps:
            found.append(f"{label}: " + ", ".join(f"U+{cp:04X}" for cp in cps))
    if not found:
        return []
    note = "Characters drawn as [U+XXXX] markers, by the record that holds them: " + "; ".join(
        found
    )
    return [Paragraph(t(note), S_NOTE)]


def _texts(v: DossierView) -> list[tuple[str, list[str]]]:
    """Each record's texts as the dossier shows them."""
    out: list[tuple[str, list[str]]] = [
        ("debt record", [str(value) for _label, value in v.debt_facts])
    ]
    for f in v.followups:
        texts = [f.id, f.type, f.status, f.direction, f.summary, f.notes]
        texts += [value for _name, value in f.fields]
        out.append((f"followup {f.id} (record {f.record_key})", texts))
    return out


__all__ = ["Heading", "build_story", "undrawn"]
