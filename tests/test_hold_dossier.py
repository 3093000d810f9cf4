"""A hold or a release is a change of the debt's evidence, over real HTTP (simulator +
SeaweedFS): ``archiver dossier`` shows the events recorded after its manifest, and the next
archive run writes a manifest (and dossier) that records the hold state."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pypdf
import pytest
from click.testing import CliRunner
from fixtures_archive import Env, manifest_of

from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.wiring import rerender_stored

pytestmark = pytest.mark.integration


def _text(pdf: bytes) -> str:
    pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
    return re.sub(r"\s+", " ", " ".join(p.extract_text() or "" for p in pages))


def test_dossier_shows_a_hold_and_the_next_run_records_it(env: Env, tmp_path: Path) -> None:
    debt_id = env.debts()[0]
    cli_env = env.cli_env()

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(main, list(args), env=cli_env)
        assert result.exit_code == 0, result.output
        return result

    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 1
    # Right after: an event in the same second as the manifest is still after it.
    cli("hold", debt_id, "--matter", "D-2026-118", "--reason", "Dispute D-2026-118 received")

    # On demand, the dossier of manifest 1 shows the hold recorded after it.
    out = tmp_path / "now.pdf"
    shown = json.loads(cli("dossier", debt_id, "-o", str(out), "--json").stdout)
    assert shown["sequence"] == 1 and shown["events_after_manifest"] == 1
    text = _text(out.read_bytes())
    assert "Events recorded after this manifest" in text
    assert "D-2026-118" in text and "Dispute D-2026-118 received" in text
    assert "No legal hold was placed on this debt" not in text
    assert "legal hold off" not in text and "LEGAL HOLD ON" in text
    # The stored dossier of manifest 1 still renders as stored (events up to manifest 1).
    stored = env.store.read_bytes(f"debts/{debt_id}/dossiers/00000001.pdf")
    archived = tmp_path / "archived.pdf"
    cli("dossier", debt_id, "--as-archived", "-o", str(archived))
    assert archived.read_bytes() == stored
    assert "Events recorded after this manifest" not in _text(stored)

    # The next run records the hold: manifest 2 and its dossier.
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 2
    _, second = manifest_of(env.store, debt_id, 2)
    assert second["legal_hold"]["open_matters"] == ["D-2026-118"]
    assert all(m["legal_hold"] for f in second["followups"] for m in f["media"])
    dossier2 = _text(env.store.read_bytes(f"debts/{debt_id}/dossiers/00000002.pdf"))
    assert "Open matters: the debt is on legal hold" in dossier2 and "D-2026-118" in dossier2
    assert "legal hold off" not in dossier2
    (res,) = env.run([debt_id]).debts
    assert res.status == "unchanged"  # the hold is recorded: nothing new

    cli("release", debt_id, "--matter", "D-2026-118", "--reason", "settled")
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 3
    _, third = manifest_of(env.store, debt_id, 3)
    assert third["legal_hold"]["open_matters"] == []
    dossier3 = _text(env.store.read_bytes(f"debts/{debt_id}/dossiers/00000003.pdf"))
    assert "Open matters: none." in dossier3 and "LEGAL HOLD ON" not in dossier3
    assert verify_debt(env.store, debt_id, rerender=rerender_stored).ok
