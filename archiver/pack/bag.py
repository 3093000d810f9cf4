"""The BagIt 1.0 bag (RFC 8493) of a pack, written and checked with bagit-python.

Decisions, written down so a reviewer can check them:

* **One read of every byte.** The payload's SHA-256 and SHA-512 are taken while each object
  is copied out of S3 (:mod:`archiver.pack.copy`), and the payload manifests are written from
  them. ``bagit.make_bag`` would read the whole payload again to compute the same digests; for
  a debt of several GB that doubles the time of a pack. Everything else of the bag is
  bagit-python's own work: ``Bag.save`` writes ``bag-info.txt`` and both tag manifests,
  ``Bag.validate`` checks it.
* **Checked before it is handed over.** Once written, bagit-python opens the bag and
  validates its structure, Payload-Oxum and completeness (every payload file in both
  manifests, nothing else in ``data/``); the bytes themselves were checked against the
  archive while copied. ``archiver pack verify`` (and ``bagit.py --validate``) re-hash
  everything.
* **BagIt 1.0.** bagit-python writes ``BagIt-Version: 0.97`` in ``make_bag``; the bag
  declares 1.0, which bagit-python reads and validates by the 1.0 rules (a file listed twice
  in a manifest is an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bagit

from archiver.errors import IntegrityError
from archiver.pack.copy import Fixity

__all__ = [
    "ALGORITHMS",
    "BAGIT_VERSION",
    "TAGMANIFEST_SHA256",
    "bagit_version",
    "write_bag",
]

BAGIT_VERSION = "1.0"
ALGORITHMS = ("sha256", "sha512")
TAGMANIFEST_SHA256 = "tagmanifest-sha256.txt"


def bagit_version() -> str:
    """The bagit-python version in use (named in ``Bag-Software-Agent``)."""
    return str(bagit.VERSION)


def _manifest_line(digest: str, path: str) -> str:
    # Pack paths are made of checked ids, hashes and fixed names: nothing RFC 8493 would
    # percent-encode (CR, LF, %). Refuse rather than write a line a reader splits wrongly.
    if any(c in path for c in "\r\n%") or not path.startswith("data/"):
        raise ValueError(f"not a payload path a manifest can name: {path!r}")
    return f"{digest}  {path}\n"


def write_bag(root: Path, payload: Mapping[str, Fixity], info: Mapping[str, Any]) -> None:
    """Make the folder ``root`` (whose ``data/`` holds exactly the files of ``payload``:
    path -> fixity) a BagIt 1.0 bag with ``info`` in ``bag-info.txt`` (Payload-Oxum is
    added), and check it with bagit-python. Raises :class:`IntegrityError` when the folder
    is not the bag ``payload`` describes."""
    (root / "bagit.txt").write_text(
        f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    ordered = sorted(payload.items())
    for alg in ALGORITHMS:
        lines = [_manifest_line(getattr(f, alg), path) for path, f in ordered]
        (root / f"manifest-{alg}.txt").write_text("".join(lines), encoding="utf-8")
    bag = bagit.Bag(str(root))
    bag.info = {
        **dict(info),
        "Payload-Oxum": f"{sum(f.size for f in payload.values())}.{len(payload)}",
    }
    bag.save()  # bag-info.txt, then tagmanifest-sha256.txt and tagmanifest-sha512.txt
    try:
        bagit.Bag(str(root)).validate(completeness_only=True)
    except bagit.BagError as exc:
        raise IntegrityError(f"the pack is not a valid bag: {exc}", path=str(root)) from None
