"""A pack as one ZIP64 file: the bag folder, streamed in and out chunk by chunk.

The zip holds the bag as one folder (``NAME/bagit.txt``, ``NAME/data/...``), the
serialization BagIt (RFC 8493 section 4) and its profiles expect. Members are stored, not
compressed: recordings and PDFs are compressed already, and the bytes stay the bag's own.
Every member is written through ``ZipFile.open(name, "w", force_zip64=True)`` one chunk at a
time, so a pack of several GB never sits in memory.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from archiver.errors import IntegrityError

__all__ = ["extract_zip", "is_zip", "write_zip"]

CHUNK = 1 << 20
# A fixed time for every member: the zip of the same bag is the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(bag: Path, target: Path, *, folder: str) -> None:
    """Write the bag folder ``bag`` into the zip file ``target`` under ``folder/``."""
    files = sorted(
        Path(dirpath, name).relative_to(bag) for dirpath, _, names in os.walk(bag) for name in names
    )
    with zipfile.ZipFile(target, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for rel in files:
            info = zipfile.ZipInfo(f"{folder}/{rel.as_posix()}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            with (bag / rel).open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, CHUNK)


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip file (not a folder)."""
    return path.is_file() and zipfile.is_zipfile(path)


def extract_zip(path: Path, into: Path) -> Path:
    """Extract the pack ``path`` into the folder ``into``; the bag folder inside. Raises
    :class:`IntegrityError` for a zip that is not one folder, or names a path outside it."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        tops = {PurePosixPath(n).parts[0] for n in names if n.strip("/")}
        for name in names:
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or "\\" in name or ":" in name:
                raise IntegrityError("the zip names a path outside its folder", path=name)
        if len(tops) != 1:
            raise IntegrityError(
                f"the zip must hold one folder (the bag), it holds {len(tops)} top-level entries",
                path=str(path),
            )
        for info in zf.infolist():
            target = into / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    return into / tops.pop()
