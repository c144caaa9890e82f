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
import math
import re
from collections.abc import Generator

import orjson

from poller.gcpause import collector_paused

__all__ = ["CUT_LEVELS", "STRING_TO_END", "cut_deep", "cut_deep_steps", "depth", "dumps", "loads"]


def loads(data: bytes | str) -> object:
    with collector_paused():  # a decoded document holds no cycles
        if _may_hold_a_long_integer(data):
            return json.loads(data, parse_constant=_null, parse_float=_finite)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # raises ValueError (JSONDecodeError, UnicodeDecodeError) when it is not JSON either
            return json.loads(data, parse_constant=_null, parse_float=_finite)


def _null(name: str) -> None:
    """NaN, Infinity and -Infinity (which orjson refuses, and json reads as floats) become null."""
    return None


def _finite(text: str) -> float | None:
    """A number beyond a double's range (1e999) becomes null, as orjson reads it: json made it
    inf, which the fallback encoder then wrote as the non-JSON Infinity (receivers refuse it)."""
    value = float(text)
    return value if math.isfinite(value) else None


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
    what the recursive encoders cannot take. A container :func:`cut_deep` replaced counts with the
    levels it had."""
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
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, level + 1))
            elif type(child) is str and child.startswith(_CUT_MARK):
                levels = child[len(_CUT_MARK):]
                if levels.isascii() and levels.isdigit():
                    deepest = max(deepest, level + int(levels))
    return deepest


# -- documents nested more deeply than a decoder goes ---------------------------------------------
# orjson refuses more than 1,024 levels, and json's recursion stops near 1,000. One record that
# deep must not make the page unreadable: it is skipped as too deep (poller.events.notify), and
# the other records are announced. So its deepest part is cut away before decoding, and replaced
# by a marker string that says how many levels it had: the record keeps its id, its dates and
# its depth, and is never sent. (The marker starts with a NUL: a provider's text that starts with
# it could only get its own record skipped. It is the same in every process, so that a record's
# content hash is too.)
CUT_LEVELS = 600  # levels kept below the records (more than a record may have, 512), plus the envelope's
_CUT_MARK = "\x00poller:cut:"
_CUT_MARK_JSON = orjson.dumps(_CUT_MARK)[:-1]  # the string's JSON, open: the levels and '"' follow
# a string runs to its closing quote, or to the end of a body that never closes it: without that
# end, a match would be tried from every quote of an unclosed string to the end (quadratic)
STRING_TO_END = rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)'
_TOKENS = re.compile(STRING_TO_END + rb'|[\[\]{}]', re.DOTALL)


def cut_deep(data: bytes, keep: int = CUT_LEVELS) -> bytes:
    """``data`` with every container that opens below ``keep`` levels replaced by a marker (see
    above). A body that is not JSON stays not JSON (its decoding then says so). Linear, in
    Python's time per string and bracket: for the rare body that needs it."""
    walk = cut_deep_steps(data, keep)
    while True:
        try:
            next(walk)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def cut_deep_steps(data: bytes, keep: int = CUT_LEVELS, step: int = 1 << 16) -> Generator[None, None, bytes]:
    """:func:`cut_deep` as a generator that pauses (yields None) every ``step`` strings and brackets."""
    out: list[bytes] = []
    level = 0
    cut_at = last = deepest = 0
    for count, token in enumerate(_TOKENS.finditer(data), 1):
        if not count % step:
            yield
        char = data[token.start()]
        if char == 0x22:  # a string: skipped whole, so that brackets inside it do not count
            continue
        if char in b"[{":
            level += 1
            if level == keep + 1:
                cut_at, deepest = token.start(), level
            elif level > deepest:
                deepest = level
        else:
            if level == keep + 1:
                out += (data[last:cut_at], _CUT_MARK_JSON, str(deepest - keep).encode(), b'"')
                last = token.end()
            level -= 1
    out.append(data[last:])
    return b"".join(out)
