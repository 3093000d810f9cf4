"""The top-level schemas/ and retention_policies/ are what users read; archiver/data/ is what
the package ships and loads. They must never drift apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.data import SCHEMA_DIR, SHIPPED_POLICY_DIR

TOP = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("shipped", "readable", "pattern"),
    [
        (SCHEMA_DIR, TOP / "schemas", "*.json"),
        (SHIPPED_POLICY_DIR, TOP / "retention_policies", "*.toml"),
    ],
)
def test_readable_copies_equal_the_shipped_files(
    shipped: Path, readable: Path, pattern: str
) -> None:
    assert not readable.is_symlink() and not shipped.is_symlink()
    names = sorted(p.name for p in shipped.glob(pattern))
    assert names, f"nothing shipped in {shipped}"
    assert sorted(p.name for p in readable.glob(pattern)) == names
    for name in names:
        assert (readable / name).read_bytes() == (shipped / name).read_bytes(), name
