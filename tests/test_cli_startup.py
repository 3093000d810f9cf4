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


def run_program(args: list[str]) -> dict[str, object]:
    """``archiver.cli.run`` (the program's entry) in a fresh interpreter: its exit code and
    the collector's thresholds and frozen-object count as the program ends."""
    probe = (
        "import atexit, gc, json, sys\n"
        # Registered first, so it runs last: after everything run() does.
        "atexit.register(lambda: print(json.dumps({'threshold': gc.get_threshold(), "
        "'frozen': gc.get_freeze_count()}), file=sys.stderr))\n"
        "from archiver.cli import run\n"
        f"sys.argv = ['archiver', *{args!r}]\n"
        "run()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return {"code": out.returncode, **json.loads(out.stderr.strip().splitlines()[-1])}


def test_the_program_sets_the_collector_for_a_short_process_and_freezes_it_at_the_end() -> None:
    from archiver.cli import GC_THRESHOLDS

    ended = run_program(["--version"])
    assert ended["code"] == 0
    assert tuple(ended["threshold"]) == GC_THRESHOLDS  # type: ignore[arg-type]
    # Everything alive as it ends is frozen: the interpreter's final collections skip it.
    assert isinstance(ended["frozen"], int) and ended["frozen"] > 10_000
    # An error exit freezes too, and keeps its code.
    failed = run_program(["no-such-command"])
    assert failed["code"] == 2 and failed["frozen"] > 10_000  # type: ignore[operator]


def test_python_dash_m_archiver_and_the_console_script_both_go_through_run() -> None:
    from importlib.metadata import entry_points
    from pathlib import Path

    import archiver

    main_py = Path(archiver.__file__).with_name("__main__.py").read_text()
    assert "run()" in main_py
    (script,) = entry_points(group="console_scripts", name="archiver")
    assert script.value == "archiver.cli:run"


def _python(code: str) -> str:
    """What ``code`` prints in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_httpx_comes_without_its_command_line_client() -> None:
    """httpx imports its CLI (rich, pygments) unless told not to; the archiver tells it, and
    httpx itself still works: a request goes through a mock transport."""
    code = (
        "import archiver, httpx\n"
        "t = httpx.MockTransport(lambda request: httpx.Response(200, text='ok'))\n"
        "assert httpx.Client(transport=t).get('http://example.test/').text == 'ok'\n"
        "import sys\n"
        "print(sorted(m for m in ('rich', 'pygments', 'httpx._main') if sys.modules.get(m)))"
    )
    assert _python(code).strip() == "[]"


def test_a_process_that_imported_httpx_first_keeps_its_cli() -> None:
    code = (
        "import httpx, sys\n"
        "had = sys.modules.get('httpx._main') is not None\n"
        "import archiver\n"
        "print(had, sys.modules.get('httpx._main') is not None)"
    )
    assert _python(code).split() == ["True", "True"]


def test_a_run_that_draws_no_progress_does_not_load_rich() -> None:
    """No terminal (cron, Kubernetes, a pipe) means no display: rich stays unloaded, for the
    archive and the sync callbacks alike. A terminal still gets rich."""
    code = (
        "from archiver.cli.lazy_progress import run_progress, sync_progress\n"
        "with run_progress(False) as on_event:\n    on_event(None)\n"
        "with sync_progress(False) as (on_event, on_sync):\n    on_event(None); on_sync(None)\n"
    )
    assert "rich" not in loaded_after(code)
    assert "rich" in loaded_after(code + "with run_progress(True):\n    pass\n")
    assert "rich" in loaded_after(code + "with sync_progress(True) as (a, b):\n    pass\n")
