"""Copying archived objects into a pack: streamed, hashed as they are written, checked.

Each object is read from S3 in ``read_chunk`` pieces and written to its file; the SHA-256
and SHA-512 of the bytes (the two fixities of the bag) and their count are taken on the way,
so a file is read once whatever its size and never held in memory. The SHA-256 is then
compared with what the archive says the object is (its manifest entry, its receipt, or the
checksum it was stored with): a difference stops the pack with an :class:`IntegrityError`
naming the key, since a pack must never carry bytes the archive does not vouch for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from archiver.errors import IntegrityError
from archiver.pack.layout import PackItem

__all__ = ["ChunkSource", "Fixity", "copy_item", "hash_file", "read_json", "write_bytes"]


class ChunkSource(Protocol):
    """What is needed of :class:`archiver.store.objects.ObjectStore`."""

    def iter_chunks(self, key: str, version_id: str | None = None) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Fixity:
    """The digests and size of one file of the bag."""

    sha256: str
    sha512: str
    size: int


class _Digests:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.sha512.update(chunk)
        self.size += len(chunk)

    def fixity(self) -> Fixity:
        return Fixity(self.sha256.hexdigest(), self.sha512.hexdigest(), self.size)


def _create(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    # "x": a file of the pack is written once; two objects mapped to one path are a bug.
    return path.open("xb")


def copy_item(store: ChunkSource, item: PackItem, root: Path) -> Fixity:
    """Copy ``item`` (its exact version) to ``root / item.path``; its fixity. Raises
    :class:`IntegrityError` naming the key when the bytes are not those the archive names
    (SHA-256 or size), and leaves no file behind then."""
    target = root / item.path
    digests = _Digests()
    with _create(target) as out:
        for chunk in store.iter_chunks(item.key, item.version_id):
            digests.update(chunk)
            out.write(chunk)
    fixity = digests.fixity()
    faults = []
    if item.sha256 is not None and fixity.sha256 != item.sha256:
        faults.append(f"SHA-256 {fixity.sha256}, the archive names {item.sha256}")
    if item.size is not None and fixity.size != item.size:
        faults.append(f"{fixity.size} bytes, the archive names {item.size}")
    if faults:
        target.unlink(missing_ok=True)
        raise IntegrityError(
            f"the stored {item.kind} does not match the archive ({'; '.join(faults)}); "
            "nothing packed. Run `archiver verify` on this debt",
            key=item.key,
            version_id=item.version_id,
            expected=item.sha256,
            found=fixity.sha256,
        )
    return fixity


def write_bytes(root: Path, path: str, data: bytes) -> Fixity:
    """Write a file the pack makes itself (index.html, VERIFY.txt); its fixity."""
    digests = _Digests()
    digests.update(data)
    with _create(root / path) as out:
        out.write(data)
    return digests.fixity()


def hash_file(path: Path, chunk: int = 1 << 20) -> Fixity:
    """The fixity of a file on disk, read in ``chunk`` pieces."""
    digests = _Digests()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digests.update(block)
    return digests.fixity()


def read_json(path: Path) -> Any:
    """A small JSON file of the pack (a record, a manifest, an event), or None when it is not
    JSON (shown as such, never trusted)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
