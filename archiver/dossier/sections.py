"""The seven sections of the dossier, in order, as one story of platypus flowables.

Each section is a function ``(DossierView, TextFilter) -> list[Flowable]`` in the module of
its part of the document: :mod:`.overview` (1 cover, 2 summary, 3 timeline), :mod:`.evidence`
(4 followups in detail, 5 media inventory) and :mod:`.custody` (6 chain of custody, 7 how to
verify, colophon); the blocks they share are in :mod:`.blocks`. One ``TextFilter`` runs
through the whole story so the colophon can say how many characters the font could not draw.
"""

from __future__ import annotations

from reportlab.platypus import Flowable

from .blocks import Heading, TextFilter
from .custody import colophon, custody, how_to_verify
from .data import DossierView
from .evidence import details, media_inventory
from .fonts import FontSet
from .overview import cover, summary, timeline


def build_story(v: DossierView, fonts: FontSet) -> list[Flowable]:
    """Every flowable of the dossier, in order."""
    t = TextFilter(fonts)
    story: list[Flowable] = []
    for section in (cover, summary, timeline, details, media_inventory, custody, how_to_verify):
        story += section(v, t)
    story += colophon(v, t, fonts)
    return story


__all__ = ["Heading", "build_story"]
