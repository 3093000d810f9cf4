"""``archiver version``: the versions that decide what a run stores and renders."""

from __future__ import annotations

import platform
from importlib import metadata

import click

from .. import __version__
from ._common import emit_json, json_option

# The libraries whose version changes what is stored or rendered (S3 calls, the PDF bytes).
LIBRARIES = ("boto3", "reportlab", "pikepdf")


def versions() -> dict[str, str]:
    """Tool, dossier renderer, Python and library versions, in that order."""
    from archiver.dossier import RENDERER_VERSION

    found = {
        "archiver": __version__,
        "renderer": RENDERER_VERSION,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
    }
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@click.command("version")
@json_option
def version(as_json: bool) -> None:
    """Show the versions of the tool, the dossier renderer, Python, boto3, reportlab, pikepdf.

    Worth attaching to a support request: the renderer version decides the dossier bytes,
    and verify re-renders with it.

    \b
    Example:
      archiver version
      archiver version --json
    """
    found = versions()
    if as_json:
        emit_json(found)
        return
    width = max(map(len, found))
    for name, value in found.items():
        click.echo(f"{name:<{width}}  {value}")


def register(group: click.Group) -> None:
    """Add ``version`` to ``group``."""
    group.add_command(version)
