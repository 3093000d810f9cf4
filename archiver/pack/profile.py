"""The BagIt profile of evidence packs (bagit-profiles specification 1.3.0), shipped in
``archiver/data/bagit_profiles/``, and the check ``pack verify`` makes of a bag's tags
against it. Pure, but for reading the shipped file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from archiver.data import BAGIT_PROFILE_DIR

__all__ = ["PROFILE_FILE", "PROFILE_ID", "load_profile", "profile_faults"]

PROFILE_FILE = BAGIT_PROFILE_DIR / "dispute-evidence-pack.json"
PROFILE_ID = "urn:x-getbill-archiver:bagit-profile:dispute-evidence-pack:1"


@cache
def _load() -> str:
    return PROFILE_FILE.read_text(encoding="utf-8")


def load_profile() -> dict[str, Any]:
    """The profile, parsed (a new copy each call)."""
    profile: dict[str, Any] = json.loads(_load())
    return profile


def profile_faults(
    info: Mapping[str, Any], bagit_version: str, manifests: set[str], tagmanifests: set[str]
) -> list[str]:
    """What a bag with tags ``info`` (as bagit-python reads bag-info.txt: a value, or a list
    of them when repeated), ``BagIt-Version`` and these manifest / tag manifest algorithms
    lacks to conform to the profile, in sentences."""
    profile = load_profile()
    faults = []
    for tag, rule in profile["Bag-Info"].items():
        value = info.get(tag)
        if rule.get("required") and value in (None, ""):
            faults.append(f"bag-info.txt has no {tag}")
        if isinstance(value, list) and rule.get("repeatable") is False:
            faults.append(f"bag-info.txt repeats {tag}")
        if value is not None and "values" in rule and value not in rule["values"]:
            faults.append(f"bag-info.txt {tag} is {value!r}, expected one of {rule['values']}")
    for alg in profile["Manifests-Required"]:
        if alg not in manifests:
            faults.append(f"no manifest-{alg}.txt")
    for alg in sorted(manifests - set(profile["Manifests-Allowed"])):
        faults.append(f"manifest-{alg}.txt is not allowed")
    for alg in profile["Tag-Manifests-Required"]:
        if alg not in tagmanifests:
            faults.append(f"no tagmanifest-{alg}.txt")
    if bagit_version not in profile["Accept-BagIt-Version"]:
        faults.append(f"BagIt-Version {bagit_version} is not {profile['Accept-BagIt-Version']}")
    return faults
