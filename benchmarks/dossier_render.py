"""Render dossiers of 100, 1,000 and 10,000 synthetic followups; print seconds and pages.

Goal: under 5 s for 1,000 followups, growing linearly. The synthetic archives come from
tests/fixtures/dossier_sample.py (calls with recordings, letters with PDFs, accents, Greek
and Cyrillic summaries, a few problems).

    python benchmarks/dossier_render.py            # 100, 1000, 10000
    python benchmarks/dossier_render.py 100 1000   # chosen sizes
    python benchmarks/dossier_render.py --multilingual 1000  # every note also in Arabic, emoji

``--multilingual`` gives every followup a note mixing French, Arabic and emoji, so that every
note goes through font fallback, bidi and shaping.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.dossier_sample import make_archive  # noqa: E402

from archiver.dossier import DossierInput, render_dossier  # noqa: E402
from archiver.dossier.fonts import load_fonts  # noqa: E402

MULTILINGUAL = (
    "Client joint, échéancier proposé — 😀 مرحبا. العميل وافق على خطة السداد الشهرية "
    "(٣ أقساط) بدءاً من الشهر القادم 👍"
)


def main(sizes: list[int], multilingual: bool = False) -> None:
    fonts = load_fonts()  # once per process; not part of any one render
    print(f"font: {fonts.family}; CPUs: {os.cpu_count()}; load: {os.getloadavg()[0]:.2f}")
    print(
        f"{'followups':>10} {'pages':>7} {'seconds':>8} {'cpu s':>7} {'ms/followup':>12} {'MB':>6}"
    )
    for n in sizes:
        archive = make_archive(n)
        records = archive.records
        if multilingual:
            records = {k: {**r, "notes": f"{MULTILINGUAL} {k}"} for k, r in records.items()}
        inp = DossierInput(
            manifest=archive.manifest,
            manifest_key=archive.manifest_key,
            manifest_sha256=archive.manifest_sha256,
            records=records,
            debt=archive.debt,
            events=archive.events[:2],
        )
        out = io.BytesIO()
        wall, cpu = time.perf_counter(), time.process_time()
        info = render_dossier(inp, out)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{n:>10,} {info.pages:>7,} {wall:>8.2f} {cpu:>7.2f} {1000 * wall / n:>12.2f} "
            f"{info.size / 1e6:>6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    multi = "--multilingual" in args
    main([int(a) for a in args if a != "--multilingual"] or [100, 1000, 10000], multi)
