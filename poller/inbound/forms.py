"""Mailchimp's form bodies decoded into nested JSON. Pure.

``data[merges][GROUPINGS][0][id]=1`` becomes ``{"data": {"merges": {"GROUPINGS": [{"id": "1"}]}}}``:
brackets nest (percent-encoded or not), numeric indices make lists (in index order), values stay
strings and empty values are kept, as Mailchimp sends them and receivers rely on them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["FormError", "decode_form", "MAX_FIELDS", "MAX_DEPTH"]

MAX_FIELDS = 10_000
MAX_DEPTH = 32
_KEY = re.compile(r"([^\[\]]*)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A body that is not a form Mailchimp could have sent; the message says why and where."""


def decode_form(body: bytes, encoding: str = "utf-8") -> dict[str, object]:
    """``encoding``: of the body and of its percent-escapes (a Content-Type's charset)."""
    try:
        text = body.decode(encoding)
    except UnicodeError as exc:
        where = f"{exc.reason} at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else str(exc)[:80]
        raise FormError(f"the form is not {encoding}: {where}") from None
    if text.count("&") >= MAX_FIELDS:
        raise FormError(f"the form cannot be decoded: it has more than {MAX_FIELDS} fields")
    root: dict[str, object] = {}
    name, known = "", None  # (the field being read, for the message)
    try:
        # as urllib.parse.parse_qsl(keep_blank_values=True) reads it (a field without "=" has an
        # empty value, empty fields are skipped, "+" is a space), without its per-field cost:
        # a value is unquoted only when it has something to unquote, and a field name, which
        # repeats from one request to the next, is split once
        for field in text.split("&"):
            if not field:
                continue
            name, _, value = field.partition("=")
            known = _PATHS.get((name, encoding))  # type: ignore[assignment]
            if known is None:
                key = (unquote(name.replace("+", " "), encoding, errors="strict") if "%" in name or "+" in name
                       else name)
                known = (_split(key), key)
                if len(_PATHS) >= _PATHS_KEPT:
                    _PATHS.clear()
                _PATHS[name, encoding] = known
            if "%" in value or "+" in value:
                value = unquote(value.replace("+", " "), encoding, errors="strict")
            _put(root, known[0], value, known[1])
    except UnicodeError as exc:  # a percent-escape that is not in the encoding
        where = name[:80] if known is None else known[1][:80]
        raise FormError(f"the form field {where!r} is not {encoding} once its %-escapes are decoded "
                        f"({getattr(exc, 'reason', exc)})") from None
    return _lists(root)  # type: ignore[return-value]


# (field name as sent, encoding) -> (its parts, the name decoded)
_PATHS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
_PATHS_KEPT = 4096


def _split(key: str) -> tuple[str, ...]:
    match = _KEY.fullmatch(key)
    if match is None or not match.group(1):
        raise FormError(f"the form field {key!r} is not a name with [bracketed] parts")
    parts = (match.group(1), *_PART.findall(match.group(2)))
    if len(parts) > MAX_DEPTH:
        raise FormError(f"the form field {key[:80]!r} nests more than {MAX_DEPTH} levels")
    return parts


def _put(root: dict[str, object], path: tuple[str, ...], value: str, key: str) -> None:
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
