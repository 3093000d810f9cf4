"""``archiver status`` names the open legal-hold matters of each debt (simulator + SeaweedFS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures_archive import Env

from archiver.cli import main

pytestmark = pytest.mark.integration


def test_status_lists_the_open_matters_per_debt(env: Env) -> None:
    held, other = env.debts()[:2]
    env.run([held, other])
    cli_env = env.cli_env()

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(main, list(args), env=cli_env)
        assert result.exit_code == 0, result.output
        return result

    said = cli("hold", held, "--matter", "D-2026-118", "--reason", "first dispute").stdout
    assert f"the next `archiver archive {held}` records it in a new manifest" in said
    cli("hold", held, "--matter", "D-2026-200", "--reason", "second dispute")
    cli("release", held, "--matter", "D-2026-118", "--reason", "settled")

    lines = {line.split(":")[0]: line for line in cli("status").stdout.splitlines()}
    assert "ON HOLD (open matters: D-2026-200)" in lines[held]
    assert "D-2026-118" not in lines[held]
    assert "HOLD" not in lines[other]

    rows = {
        r["debt_id"]: r
        for r in map(json.loads, cli("status", "--json").stdout.splitlines())
        if "summary" not in r
    }
    assert rows[held]["on_hold"] is True and rows[held]["open_matters"] == ["D-2026-200"]
    assert rows[other]["on_hold"] is False and rows[other]["open_matters"] == []
    one = json.loads(cli("status", held, "--json").stdout.splitlines()[0])
    assert one["open_matters"] == ["D-2026-200"]
