"""RFC 8785 canonical JSON and hashing (pure)."""

from __future__ import annotations

import hashlib

from archiver.common.canonical import canonical_json, canonical_sha256


def test_canonical_json_sorts_keys_and_drops_spaces() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == b'{"a":[true,null,"\xc3\xa9"],"b":1}'


def test_numbers_follow_rfc8785() -> None:
    # RFC 8785 serialises numbers as ECMAScript does: 1.0 -> 1, 1e21 -> 1e+21
    assert canonical_json([1.0, 0.5, 1e21, -0.0]) == b"[1,0.5,1e+21,0]"


def test_same_content_same_hash_whatever_the_order() -> None:
    a, sha_a = canonical_sha256({"x": 1, "y": {"b": 2, "a": 1}})
    b, sha_b = canonical_sha256({"y": {"a": 1, "b": 2}, "x": 1})
    assert a == b and sha_a == sha_b == hashlib.sha256(a).hexdigest()
