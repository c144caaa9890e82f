"""JSON in and out, fast: orjson, with the standard library for what orjson refuses.

Pages are decoded and notification bodies encoded for every record, so this is on the hot
path: orjson encodes 15x and decodes 1.4x faster than ``json``. The fallbacks keep the
standard library's tolerance and exactness, for what some providers emit: integers beyond 64
bits (orjson would read them as floats, losing digits, so a document that may hold one is read
by ``json``), NaN/Infinity literals (not JSON, but some providers write them: they are read as
null, so that every body poller sends is JSON a receiver can parse), and lone UTF-16
surrogates written as escapes ("\ud800"), which are written back escaped, so that a record
always has a body and its receiver reads what was sent.
"""

from __future__ import annotations

import json

import orjson

from poller.gcpause import collector_paused

__all__ = ["depth", "dumps", "loads"]


def loads(data: bytes | str) -> object:
    with collector_paused():  # a decoded document holds no cycles
        if _may_hold_a_long_integer(data):
            return json.loads(data, parse_constant=_null)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # raises ValueError (JSONDecodeError, UnicodeDecodeError) when it is not JSON either
            return json.loads(data, parse_constant=_null)


def _null(name: str) -> None:
    """NaN, Infinity and -Infinity (which orjson refuses, and json reads as floats) become null."""
    return None


# orjson reads an integer beyond 64 bits as a float, silently (ijl/orjson#53, #308): an id of
# 2**64 would come back as 1.8446744073709552e19, and two such ids could become one. A number of
# 19 digits or more is the only way to write one (-2**63 - 1 has 19), so a document that may hold
# such a number is left to the standard library. Found in one C pass: digits become "0", the
# characters that can precede a digit that is not an integer's first ('"' for a string of
# digits, "." for a fraction) become "x", anything else " "; then " " + 19 "0"s is searched.
# The rare false alarms (digits after a letter or space inside a string) cost only speed.
_DIGIT_CLASSES = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 if b in b'".' else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19
_LONG_NUMBER = b" " + _LONG_RUN


def _may_hold_a_long_integer(data: bytes | str) -> bool:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # digits, '"' and '.' are the same single bytes
    classes = data.translate(_DIGIT_CLASSES)
    return _LONG_NUMBER in classes or classes.startswith(_LONG_RUN)


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON, keys in their order."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON may escape one, "\ud800"): escape it back
        return json.dumps(value, separators=(",", ":"), default=str).encode("ascii")


def depth(value: object) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``[]`` and ``{}`` are 1). Iterative: it measures
    what the recursive encoders cannot take."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
