"""getbill-archiver: provable, WORM-locked evidence of getbill.io collection followups."""

import sys as _sys

# The one place the version is written: pyproject.toml reads it from here (setuptools
# dynamic version), so `archiver --version` needs no importlib.metadata scan at start-up.
__version__ = "0.1.0"

TOOL_NAME = "getbill-archiver"

# `import httpx` also imports httpx's own command-line client when click and rich are
# installed (they are, for our CLI): rich's console, progress and syntax modules and
# pygments, about 45 ms of CPU at every start of every command, for a client this program
# never runs (encode/httpx#3547, discussion #3523, still open upstream). A None entry in
# sys.modules makes that one import fail, and httpx then falls back to its stub `main`.
# setdefault: a process that imported httpx before us keeps its module as it is.
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__ = ["TOOL_NAME", "__version__"]
