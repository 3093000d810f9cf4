"""getbill-archiver: provable, WORM-locked evidence of getbill.io collection followups."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("getbill-archiver")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

TOOL_NAME = "getbill-archiver"

__all__ = ["TOOL_NAME", "__version__"]
