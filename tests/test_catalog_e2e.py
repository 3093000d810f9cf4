"""A corrupt catalog never stops archiving: the catalog is derived from S3.

``archiver archive`` over real HTTP (simulator socket + SeaweedFS) with a catalog file whose
header, or whose middle, was overwritten: the run archives as it would without a catalog,
warns once that `archiver reindex` rebuilds it, and `archiver reindex` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures_archive import Env, manifest_of

from archiver.cli import main
from archiver.store import keys

pytestmark = pytest.mark.integration


def archive(env: Env, *debt_ids: str) -> Result:
    return CliRunner().invoke(main, ["archive", *debt_ids, "--json"], env=env.cli_env())


def reindex_hints(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "archiver reindex" in line]


def corrupt_middle(path: Path) -> None:
    """Overwrite the middle half of the file's pages (the header page stays intact)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    pages = len(data) // page
    assert pages >= 4, f"the catalog is too small to corrupt in the middle ({pages} pages)"
    start, end = page * (pages // 4), page * (3 * pages // 4)
    data[start:end] = bytes([0xA5]) * (end - start)
    path.write_bytes(bytes(data))


def assert_rebuilt_by_reindex(env: Env, debt_id: str, sequence: int) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["reindex", "--json"], env=env.cli_env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["manifests"] >= sequence
    result = runner.invoke(main, ["status", debt_id, "--json"], env=env.cli_env())
    assert result.exit_code == 0, result.output
    [row] = [r for r in map(json.loads, result.stdout.splitlines()) if "summary" not in r]
    assert row["sequence"] == sequence
    # The catalog is sound again: the next run neither warns nor fails.
    result = archive(env, debt_id)
    assert result.exit_code == 0, result.output
    assert reindex_hints(result) == []


def test_a_catalog_with_a_corrupt_header_does_not_stop_archiving(env: Env) -> None:
    debt_id = env.debts()[0]
    catalog = Path(env.config.catalog)
    catalog.write_bytes(b"this is not a SQLite database" * 200)

    result = archive(env, debt_id)
    assert result.exit_code == 0, result.output
    [line] = [json.loads(line) for line in result.stdout.splitlines()][:1]
    assert line["status"] == "archived" and line["sequence"] == 1
    _, manifest = manifest_of(env.store, debt_id, 1)
    assert env.store.head(keys.dossier_key(debt_id, 1)) is not None
    assert manifest["followups"]
    [hint] = reindex_hints(result)
    assert "catalog" in hint and str(catalog) in hint
    assert_rebuilt_by_reindex(env, debt_id, 1)


def test_a_catalog_corrupted_mid_file_does_not_fail_the_debt(env: Env) -> None:
    debts = env.debts()
    first = archive(env, *debts)
    assert first.exit_code == 0, first.output
    catalog = Path(env.config.catalog)
    corrupt_middle(catalog)

    debt_id = debts[0]
    env.sim.add_followup(debt_id, type="call", status="deal_found")
    result = archive(env, debt_id)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.splitlines()[0])
    assert line["status"] == "archived" and line["sequence"] == 2, line
    _, manifest = manifest_of(env.store, debt_id, 2)
    assert len(manifest["followups"]) == len(env.sim.followup_ids(debt_id))
    assert env.store.head(keys.dossier_key(debt_id, 2)) is not None
    [hint] = reindex_hints(result)
    assert str(catalog) in hint
    assert_rebuilt_by_reindex(env, debt_id, 2)
