"""JSON in and out, fast: orjson, with the standard library for what orjson refuses.

Pages are decoded and notification bodies encoded for every record, so this is on the hot
path: orjson encodes 15x and decodes 1.4x faster than ``json``. The fallbacks keep the
standard library's tolerance: integers beyond 64 bits, and NaN/Infinity literals, which some
providers emit.
"""

from __future__ import annotations

import json

import orjson

__all__ = ["dumps", "loads"]


def loads(data: bytes | str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # raises ValueError (JSONDecodeError) when it is not JSON either


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON, keys in their order."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
