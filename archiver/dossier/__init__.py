"""The PDF audit dossier: one document telling the story of a debt's collection and proving
the archive behind it is intact. Rendered from the archive only (manifest + stored records),
never from the live API; the same input gives byte-identical PDF/A-2b output.

    inp = load_dossier_input(store, "dbt123")          # latest manifest, hashes checked
    info = render_dossier(inp, open("dossier.pdf", "wb"))

Modules: ``data`` (pure preparation), ``sections`` (the story, in order) over ``overview``,
``evidence`` and ``custody`` (the sections' layout) and ``blocks`` (what they share),
``render`` (document, page furniture), ``pdfa`` (PDF/A finishing), ``fonts``, ``money``
(amounts), ``statuses`` (what getbill's statuses mean), ``load`` (reading from the object
store).
"""

from __future__ import annotations

from .data import DossierInput, DossierView, build_view
from .load import (
    format_sequences,
    latest_sequence,
    load_dossier_input,
    load_events,
    load_timestamps,
    parse_sequences,
)
from .render import RENDERER_VERSION, DossierInfo, render_dossier, render_dossier_bytes

__all__ = [
    "RENDERER_VERSION",
    "DossierInfo",
    "DossierInput",
    "DossierView",
    "build_view",
    "format_sequences",
    "latest_sequence",
    "load_dossier_input",
    "load_events",
    "load_timestamps",
    "parse_sequences",
    "render_dossier",
    "render_dossier_bytes",
]
