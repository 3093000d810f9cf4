"""Files shipped with the package: JSON Schemas, the shipped retention policies and the BagIt
profile of evidence packs.

``schemas/`` and ``retention_policies/`` at the top of the source tree are copies for people
to read; these folders are the source of truth (``tests/test_data_files.py`` keeps them equal).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SCHEMA_DIR = DATA_DIR / "schemas"
SHIPPED_POLICY_DIR = DATA_DIR / "retention_policies"
BAGIT_PROFILE_DIR = DATA_DIR / "bagit_profiles"
