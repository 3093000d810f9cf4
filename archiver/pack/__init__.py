"""Dispute evidence packs: a self-proving BagIt package of one debt's archive.

:func:`build_pack` makes one from S3 (``archiver pack``); :func:`verify_pack` checks one
offline, with nothing but the pack (``archiver pack verify``). What goes where is
:mod:`.layout`; the copy and its checks :mod:`.copy`; the bag :mod:`.bag` (bagit-python) and
its profile :mod:`.profile`; what a person reads :mod:`.index`; the zip :mod:`.zipped`; the
export event :mod:`.export`.
"""

from __future__ import annotations

from archiver.pack.build import PackResult, PackSettings, build_pack
from archiver.pack.verify import PackVerification, verify_pack

__all__ = ["PackResult", "PackSettings", "PackVerification", "build_pack", "verify_pack"]
