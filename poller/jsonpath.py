"""The small JSON paths of polling configurations: ``idField``, date fields, ``recordsPath``.

    >>> parse("customer.id")
    ('customer', 'id')
    >>> parse("['Modified Time']")
    ('Modified Time',)
    >>> get({"items": [{"id": 7}]}, parse("items[0].id"))
    7

Grammar: an optional root (``$`` or ``@``, as in JSONPath, meaning the record itself), then
names separated by dots, or bracketed parts: ``['Field Name']``, ``["x.y"]`` or an index
``[0]``. An unquoted name is any text without ``.``, ``[`` or ``]`` (``@id`` is a name).
"""

from __future__ import annotations

from poller.errors import PollerError

__all__ = ["MISSING", "PathError", "Segment", "get", "parse"]

Segment = str | int


class PathError(PollerError, ValueError):
    """A JSON path is malformed; ``position`` is the 0-based index of the problem."""

    def __init__(self, path: str, reason: str, position: int) -> None:
        self.path = path
        self.reason = reason
        self.position = position
        super().__init__(f"invalid JSON path {path!r}: {reason} at position {position}")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def parse(text: str) -> tuple[Segment, ...]:
    """The segments of a path; raises :class:`PathError`. An empty path is an error."""
    if not text.strip():
        raise PathError(text, "empty path", 0)
    i, n = 0, len(text)
    out: list[Segment] = []
    if text[0] in "$@" and (n == 1 or text[1] in ".["):
        i = 1
        if n == 1:
            return ()
        if text[1] == ".":
            i = 2
    expect_name = True  # at the start, or after a dot
    while i < n:
        c = text[i]
        if c == "[":
            i = _bracket(text, i, out)
            expect_name = False
            continue
        if c == ".":
            if expect_name:
                raise PathError(text, "empty name", i)
            expect_name = True
            i += 1
            continue
        if c == "]":
            raise PathError(text, "unmatched ']'", i)
        if not expect_name:
            raise PathError(text, "expected '.' or '['", i)
        j = i
        while j < n and text[j] not in ".[]":
            j += 1
        out.append(text[i:j])
        expect_name = False
        i = j
    if expect_name and out:
        raise PathError(text, "empty name", n)
    if not out:
        raise PathError(text, "empty path", 0)
    return tuple(out)


def _bracket(text: str, start: int, out: list[Segment]) -> int:
    n = len(text)
    i = start + 1
    if i < n and text[i] in "'\"":
        quote = text[i]
        i += 1
        buf: list[str] = []
        while i < n and text[i] != quote:
            if text[i] == "\\" and i + 1 < n:
                i += 1
            buf.append(text[i])
            i += 1
        if i >= n:
            raise PathError(text, "unterminated quote", start + 1)
        if i + 1 >= n or text[i + 1] != "]":
            raise PathError(text, "expected ']'", i + 1)
        out.append("".join(buf))
        return i + 2
    end = text.find("]", i)
    if end < 0:
        raise PathError(text, "unterminated '['", start)
    inner = text[i:end].strip()
    if inner.lstrip("-").isdigit():
        out.append(int(inner))
    elif inner == "*":
        raise PathError(text, "wildcards are not supported", i)
    elif inner:
        out.append(inner)
    else:
        raise PathError(text, "empty brackets", start)
    return end + 1


def get(value: object, path: tuple[Segment, ...]) -> object:
    """The value at ``path`` inside ``value``, or :data:`MISSING`."""
    for segment in path:
        if isinstance(segment, int) and isinstance(value, list):
            try:
                value = value[segment]
            except IndexError:
                return MISSING
        elif isinstance(value, dict):
            key = segment if isinstance(segment, str) else str(segment)
            if key not in value:
                return MISSING
            value = value[key]
        else:
            return MISSING
    return value
