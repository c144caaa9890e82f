"""Mailchimp's form bodies decoded into nested JSON. Pure.

``data[merges][GROUPINGS][0][id]=1`` becomes ``{"data": {"merges": {"GROUPINGS": [{"id": "1"}]}}}``:
brackets nest (percent-encoded or not), numeric indices make lists (in index order), values stay
strings and empty values are kept, as Mailchimp sends them and receivers rely on them.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

__all__ = ["FormError", "decode_form", "MAX_FIELDS", "MAX_DEPTH"]

MAX_FIELDS = 10_000
MAX_DEPTH = 32
_KEY = re.compile(r"([^\[\]]*)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A body that is not a form Mailchimp could have sent; the message says why and where."""


def decode_form(body: bytes) -> dict[str, object]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError(f"the form is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS,
                          errors="strict")
    except ValueError as exc:  # too many fields, or a percent-escape that is not UTF-8
        raise FormError(f"the form cannot be decoded: {exc}") from None
    root: dict[str, object] = {}
    for key, value in pairs:
        path = _split(key)
        _put(root, path, value, key)
    return _lists(root)  # type: ignore[return-value]


def _split(key: str) -> list[str]:
    match = _KEY.fullmatch(key)
    if match is None or not match.group(1):
        raise FormError(f"the form field {key!r} is not a name with [bracketed] parts")
    parts = [match.group(1)] + _PART.findall(match.group(2))
    if len(parts) > MAX_DEPTH:
        raise FormError(f"the form field {key[:80]!r} nests more than {MAX_DEPTH} levels")
    return parts


def _put(root: dict[str, object], path: list[str], value: str, key: str) -> None:
    node = root
    for i, part in enumerate(path[:-1]):
        if part == "":
            raise FormError(f"the form field {key!r} has an empty [] before its end")
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            above = path[0] + "".join(f"[{p}]" for p in path[1:i + 1])
            raise FormError(f"the form field {key!r} nests under {above!r}, which has a value")
        node = child
    last = path[-1]
    if last == "":  # name[]=a&name[]=b: appended in order
        last = str(sum(1 for k in node if k.isdigit()))
    if last in node:
        if isinstance(node[last], dict):
            raise FormError(f"the form field {key!r} gives a value to a name that has [parts]")
        raise FormError(f"the form field {key!r} is given more than once")
    node[last] = value


def _lists(node: object) -> object:
    """Objects whose keys are all indices become lists, in index order."""
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(k.isdigit() and (k == "0" or not k.startswith("0")) for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out
