"""The command line starts without the heavy libraries: a command loads what it needs when it
runs (`archiver --version` and `--help` stay fast). Measured by benchmarks/cli_startup.py;
this test checks the cause, not a time."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("boto3", "botocore", "httpx", "jsonschema", "rich", "reportlab", "pikepdf", "sqlite_utils")


def loaded_after(code: str) -> list[str]:
    probe = (
        "import sys, runpy\n"
        f"{code}\n"
        f"print(__import__('json').dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert loaded_after("import archiver.cli") == []


def test_version_and_help_load_no_heavy_library() -> None:
    for args in (["--version"], ["--help"], ["sync", "--help"]):
        code = (
            "from archiver.cli import main\n"
            f"try:\n    main({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass"
        )
        assert loaded_after(code) == [], args
