"""Environment variables printed for a person to paste into another shell."""

from __future__ import annotations

import shlex
from collections.abc import Mapping


def export_lines(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines, values quoted for POSIX shells, in the given order."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
