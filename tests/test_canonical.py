"""RFC 8785 canonical JSON and hashing (pure)."""

from __future__ import annotations

import enum
import hashlib
import random
from collections import OrderedDict
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import rfc8785

from archiver.common.canonical import _plain, canonical_json, canonical_sha256


def test_canonical_json_sorts_keys_and_drops_spaces() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == b'{"a":[true,null,"\xc3\xa9"],"b":1}'


def test_numbers_follow_rfc8785() -> None:
    # RFC 8785 serialises numbers as ECMAScript does: 1.0 -> 1, 1e21 -> 1e+21
    assert canonical_json([1.0, 0.5, 1e21, -0.0]) == b"[1,0.5,1e+21,0]"


def test_same_content_same_hash_whatever_the_order() -> None:
    a, sha_a = canonical_sha256({"x": 1, "y": {"b": 2, "a": 1}})
    b, sha_b = canonical_sha256({"y": {"a": 1, "b": 2}, "x": 1})
    assert a == b and sha_a == sha_b == hashlib.sha256(a).hexdigest()


# Characters where an encoder could differ: every control character, quotes, backslash,
# DEL, Latin-1, the line and paragraph separators, private use, the last BMP character,
# non-BMP (emoji, a CJK extension), a combining mark.
TRICKY = [chr(c) for c in range(0x20)] + list('"\\/\x7f\xa0éß\u2028\u2029\ue000\uffff')
TRICKY += ["\U0001f600", "\U00020000", "e\u0301", "ﬁ", "\u00e9\u0301"]


def _text(rng: random.Random) -> str:
    pool = TRICKY + list("abcXYZ019 _-:")
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(10 if depth < 4 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 7, 2**53 - 1, -(2**53 - 1), rng.randint(-(10**12), 10**12)])
    if pick == 3:
        return rng.choice([0.0, -0.0, 0.5, 1.0, 1e21, 1e-7, 123.456, 5e-324])
    if pick in (4, 5):
        return _text(rng)
    if pick in (6, 7):
        items = [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        return tuple(items) if rng.random() < 0.2 else items
    keys = [
        _text(rng) if rng.random() < 0.3 else rng.choice(["id", "a", "B", "a_b", "z9", ""])
        for _ in range(rng.randint(0, 5))
    ]
    return {key: _value(rng, depth + 1) for key in keys}


def test_the_fast_encoder_writes_exactly_what_rfc8785_writes() -> None:
    """Seeded random documents (tricky strings, keys that sort differently by code point
    and by UTF-16, floats, boundary integers, tuples, nesting): byte for byte the same."""
    rng = random.Random(8785)
    plain = 0
    for _ in range(4000):
        value = _value(rng)
        assert canonical_json(value) == rfc8785.dumps(value), value
        plain += _plain(value)
    assert 1000 < plain < 4000  # both paths were taken, many times each


def test_keys_that_utf16_sorts_differently_from_code_points_go_to_rfc8785() -> None:
    # U+FFFF sorts after U+1F600 in UTF-16 (a surrogate pair starts with 0xD83D < 0xFFFF).
    value = {"\uffff": 1, "\U0001f600": 2}
    assert not _plain(value)
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("😀".encode()) < canonical_json(value).index(b"\xef\xbf\xbf")


class _Kind(enum.StrEnum):
    CALL = "call"


class _Level(enum.IntEnum):
    HIGH = 3


class _Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**53},  # beyond a double's integers
        [-(2**53)],
        [_Level.HIGH, True, False],  # an IntEnum, and bools (ints in Python, not in JSON)
        {"o": OrderedDict([("b", 1), ("a", 2)])},
        [_Text("a subclass of str"), {"k": _Text("é")}],
        {"n": float("inf")},
        [float("nan")],
        {"s": "\ud800"},  # a lone surrogate
        {1: "int key"},
        {"when": datetime(2026, 1, 1)},
        {"kind": _Kind.CALL},
        {"d": Decimal("1.5")},
    ],
)
def test_what_rfc8785_refuses_or_treats_apart_ends_exactly_as_rfc8785_ends_it(value: Any) -> None:
    try:
        expected: bytes | type[BaseException] = rfc8785.dumps(value)
    except Exception as exc:  # noqa: BLE001 - the very exception type is the point
        expected = type(exc)
    if isinstance(expected, bytes):
        assert canonical_json(value) == expected
    else:
        with pytest.raises(expected):
            canonical_json(value)


def test_a_circular_structure_fails_as_rfc8785_fails_it() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        canonical_json(loop)
