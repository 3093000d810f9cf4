"""getbill-archiver: provable, WORM-locked evidence of getbill.io collection followups."""

# The one place the version is written: pyproject.toml reads it from here (setuptools
# dynamic version), so `archiver --version` needs no importlib.metadata scan at start-up.
__version__ = "0.1.0"

TOOL_NAME = "getbill-archiver"

__all__ = ["TOOL_NAME", "__version__"]
