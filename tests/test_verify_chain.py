"""verify reads the manifest chain through archiver.manifest.chain (one check for verify and
reindex) and words its faults as it always has; on the real SeaweedFS."""

from __future__ import annotations

import json

import pytest
from fixtures.retention import seed_debt

from archiver.audit.verify import verify_debt
from archiver.common.canonical import canonical_sha256
from archiver.store import keys
from archiver.store.objects import ObjectStore

pytestmark = pytest.mark.integration


def _drop(store: ObjectStore, key: str) -> None:
    info = store.head(key)
    assert info is not None and info.version_id
    store.delete_version(key, info.version_id, bypass_governance=True)


def test_a_missing_manifest_is_named_once(locked_bucket: ObjectStore) -> None:
    seed_debt(locked_bucket, manifests=3)
    _drop(locked_bucket, keys.manifest_key("D-1", 2))
    result = verify_debt(locked_bucket, "D-1", dossiers=False)
    assert [(p.kind, p.message, p.key) for p in result.problems] == [
        ("ChainBroken", "manifest sequence 2 is missing", keys.manifest_key("D-1", 2))
    ]
    assert result.manifests == 2


def test_a_rewritten_manifest_breaks_the_link_after_it(locked_bucket: ObjectStore) -> None:
    seed_debt(locked_bucket, manifests=2)
    key = keys.manifest_key("D-1", 1)
    old_sha = json.loads(locked_bucket.read_bytes(keys.manifest_key("D-1", 2)))["previous"]
    first = json.loads(locked_bucket.read_bytes(key))
    _drop(locked_bucket, key)
    data, new_sha = canonical_sha256({**first, "run_id": "forged"})
    locked_bucket.client.put_object(Bucket=locked_bucket.bucket, Key=key, Body=data)
    result = verify_debt(locked_bucket, "D-1", dossiers=False)
    chain = [p for p in result.problems if p.kind == "ChainBroken"]
    assert [(p.message, p.key, p.expected, p.found) for p in chain] == [
        (
            "previous sha256 does not match the stored bytes of the prior manifest",
            keys.manifest_key("D-1", 2),
            new_sha,
            old_sha["sha256"],
        )
    ]
