"""Decoding a large JSON page in steps, so that the event loop runs between them.

orjson decodes 60 MB of records in about a second, holding the GIL throughout (a thread would
not free the loop): no ``/healthz``, no deliveries, no watchdog meanwhile. Here the records are
decoded a part of about :data:`STEP` bytes at a time, each slice as one list by
:func:`poller.jsonio.loads`. Where a part ends is first guessed in C's time (the first comma
past STEP bytes with even quotes and balanced brackets before it: :func:`_balanced_comma`);
when the guess does not decode, a regular expression that tracks strings and brackets finds
where the next few thousand records end (exact, slower), and when that expression cannot follow
them (records nested more than :data:`DEPTH` levels), a walk over their strings and brackets
does (exact at any depth, in Python's time per string and bracket). A part holding a record
nested past what the decoders take (about 1,000 levels) is cut as :func:`poller.jsonio.cut_deep`
would cut the whole body: that record gets the same marker, and keeps its id and depth. (Only
that part is cut: a record elsewhere between CUT_LEVELS and the decoders' reach stays whole,
where a cut of the whole body would cut it too. Either way it is deeper than a notification
may carry, 512 levels, and skipped as too deep with the same depth.) Between parts :func:`decode`, a generator, yields
``None``, and its caller lets the loop run. The containers on the way to the records
(``recordsPath``) are walked member by member, each other member decoded whole.

Why a slice's end is a record's end: the slice starts where a record starts, so it is read as
the document reads it, and it decodes only if it is a complete list of records. The value is
the one :func:`poller.jsonio.loads` gives for the whole body. Whatever this walk does not
expect (a body that is not UTF-8 or not JSON, a byte-order mark, a member beside the records
nested past what the decoders take) raises :class:`NotSteppable`, and the caller decodes the
whole body as before, with that path's messages. Pure: bytes in, a value out.

    walk = decode(body, ("items",))
    try:
        while True:
            next(walk)          # a pause: let other work run
    except StopIteration as done:
        document = done.value
"""

from __future__ import annotations

import re
from collections.abc import Generator
from functools import lru_cache

from poller import jsonio

__all__ = ["DEPTH", "STEP", "NotSteppable", "decode"]

STEP = 1 << 20  # bytes of records per part: 20-40 ms of finding and decoding on a slow core
DEPTH = 16  # levels of nesting inside a record that the expression follows (deeper: the walk of _exact_end)

Walk = Generator[None, None, tuple[object, int]]


class NotSteppable(Exception):
    """The body is not a JSON document this walk reads; decode it whole."""


_WS = rb"[ \t\n\r]*+"  # JSON's whitespace (not \s: \f and \v are not JSON's)
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'


def _container(depth: int) -> bytes:
    inner = rb"|" + _container(depth - 1) if depth else b""
    return rb"[\[{](?:" + _STRING + rb'|[^"\[\]{}]++' + inner + rb")*+[\]}]"


_VALUE = rb"(?:" + _container(DEPTH) + rb"|" + _STRING + rb'|[^"\[\]{}, \t\n\r]++)'
_ONE = re.compile(_VALUE, re.DOTALL)
_NAME = re.compile(_STRING, re.DOTALL)
_BLANK = re.compile(_WS)


# strings (as jsonio.cut_deep reads them), brackets, commas
_TOKENS = re.compile(jsonio.STRING_TO_END + rb'|[\[\]{},]', re.DOTALL)
_TOKENS_PER_PAUSE = 1 << 16


def _exact_end(data: bytes, start: int, target: int) -> Generator[None, None, int | None]:
    """Where the values from ``data[start]`` on end: the first comma between them from ``target``
    on, or the bracket that closes their container; None when neither comes (not JSON). Exact at
    any depth; pauses every ``_TOKENS_PER_PAUSE`` strings and brackets."""
    level = 0
    for count, token in enumerate(_TOKENS.finditer(data, start), 1):
        if not count % _TOKENS_PER_PAUSE:
            yield
        char = data[token.start()]
        if char == 0x22:  # a string, skipped whole: what is inside does not count
            continue
        if char in b"[{":
            level += 1
        elif char == 0x2C:  # a comma
            if not level and token.start() >= target:
                return token.start()
        else:
            level -= 1
            if level < 0:
                return token.start()
    return None


def _part(data: bytes, start: int, end: int) -> Generator[None, None, list | None]:
    """``data[start:end]`` decoded as a list of records, or None when it is not one. When a record
    is nested past what the decoders take, the part is cut as the whole body's decoding would cut
    it (the levels are counted from the records, and this list is where they are)."""
    body = b"[" + data[start:end] + b"]"
    try:
        part = jsonio.loads(body)
    except RecursionError:
        cut = yield from jsonio.cut_deep_steps(body, jsonio.CUT_LEVELS)
        try:
            part = jsonio.loads(cut)
        except (ValueError, RecursionError):
            return None
    except ValueError:  # (a guess that a quote or bracket inside a string misled)
        return None
    return part if isinstance(part, list) else None


@lru_cache(maxsize=32)
def _items(count: int) -> re.Pattern[bytes]:
    """Up to ``count`` + 1 values separated by commas (possessive: no backtracking)."""
    return re.compile(_WS + _VALUE + _WS + rb"(?:," + _WS + _VALUE + _WS + rb"){0,%d}+" % count, re.DOTALL)


def decode(data: bytes, path: tuple[str | int, ...] | None) -> Generator[None, None, object]:
    """The document in ``data``; the records are at ``path`` (``None``: the document itself)."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise NotSteppable("a byte-order mark")
    walker = _Walker(data)
    try:
        value, end = yield from walker.value(walker.skip(0), () if path is None else path)
    except (ValueError, IndexError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NotSteppable(str(exc)) from None
    if walker.skip(end) != len(data):
        raise NotSteppable("more after the document")
    return value


def _balanced_comma(data: bytes, start: int, target: int, tries: int = 256) -> int | None:
    """The first comma from ``target`` on where ``data[start:]`` holds an even number of quotes
    and as many closing brackets as opening ones: most likely the end of a record, in C's time
    (``bytes.count``). A guess: only decoding the slice proves it (a quote or a bracket inside
    a string can mislead the count, either way)."""
    if target >= len(data):
        return None
    counts = [data.count(c, start, target) for c in _COUNTED]
    counted = target  # counts hold data[start:counted]
    for _ in range(tries):
        comma = data.find(b",", counted)
        if comma < 0:
            return None
        for n, c in enumerate(_COUNTED):
            counts[n] += data.count(c, counted, comma)
        if counts[0] % 2 == 0 and counts[1] == counts[2] and counts[3] == counts[4]:
            return comma
        counted = comma + 1  # a comma counts as none of them
    return None


_COUNTED = (b'"', b"{", b"}", b"[", b"]")


class _Walker:
    __slots__ = ("data", "pause_at")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pause_at = STEP

    def skip(self, i: int) -> int:
        return _BLANK.match(self.data, i).end()  # type: ignore[union-attr]

    def whole(self, i: int) -> Walk:
        """The value at ``data[i]``, decoded at once, and where it ends."""
        found = _ONE.match(self.data, i)
        end = found.end() if found is not None else (yield from _exact_end(self.data, i, i))
        if end is None or end == i:
            raise NotSteppable(f"no value at {i}")
        return jsonio.loads(self.data[i:end]), end

    def value(self, i: int, path: tuple[str | int, ...]) -> Walk:
        c = self.data[i:i + 1]
        if c == b"[" and not path:
            return (yield from self._records(i))
        if c == b"[" and isinstance(path[0], int):
            return (yield from self._array(i, path))
        if c == b"{" and path and isinstance(path[0], str):
            return (yield from self._object(i, path))
        return (yield from self.whole(i))

    def _after_item(self, i: int, closing: bytes) -> tuple[int, bool]:
        """Past an item of a container: (after its closing bracket, True) or (the next item, False)."""
        i = self.skip(i)
        c = self.data[i:i + 1]
        if c == closing:
            return i + 1, True
        if c != b",":
            raise NotSteppable(f"expected ',' or {closing.decode()!r} at {i}")
        return self.skip(i + 1), False

    def _pause(self, i: int) -> bool:
        if i < self.pause_at:
            return False
        self.pause_at = i + STEP
        return True

    def _records(self, i: int) -> Walk:
        """The list at ``data[i]``, decoded a part at a time."""
        data = self.data
        records: list[object] = []
        start = self.skip(i + 1)
        if data[start:start + 1] == b"]":
            return records, start + 1
        count = 64  # records per part after the first: as many as fit in STEP bytes
        while True:
            end = _balanced_comma(data, start, start + STEP)
            part = None if end is None else (yield from _part(data, start, end))
            if part is None:  # no guess, or a quote or bracket inside a string misled it
                found = _items(count).match(data, start)
                end = found.end() if found is not None else (yield from _exact_end(data, start, start + STEP))
                part = None if end is None else (yield from _part(data, start, end))
                if not part:  # (empty: no record between two commas, or after the last one)
                    raise NotSteppable(f"no list of records at {start}")
            records.extend(part)
            after = data[end:end + 1]
            if after == b"]":
                return records, end + 1
            if after != b",":
                raise NotSteppable(f"expected ',' or ']' at {end}")
            count = min(1 << 16, max(1, STEP * len(part) // max(1, end - start)))
            count = 1 << (count.bit_length() - 1)  # a power of two: few patterns compiled
            start = end + 1
            yield

    def _array(self, i: int, path: tuple[str | int, ...]) -> Walk:
        """A list on the way to the records: its item ``path[0]`` is walked, the others decoded whole."""
        data = self.data
        items: list[object] = []
        i = self.skip(i + 1)
        if data[i:i + 1] == b"]":
            return items, i + 1
        while True:
            if len(items) == path[0]:
                item, i = yield from self.value(i, path[1:])
            else:
                item, i = yield from self.whole(i)
            items.append(item)
            i, closed = self._after_item(i, b"]")
            if closed:
                return items, i
            if self._pause(i):
                yield

    def _object(self, i: int, path: tuple[str | int, ...]) -> Walk:
        """A dict on the way to the records: its member ``path[0]`` is walked, the others decoded whole."""
        data = self.data
        members: dict[str, object] = {}
        i = self.skip(i + 1)
        if data[i:i + 1] == b"}":
            return members, i + 1
        while True:
            found = _NAME.match(data, i)
            if found is None:
                raise NotSteppable(f"expected a member name at {i}")
            name = jsonio.loads(data[i:found.end()])
            assert isinstance(name, str)
            i = self.skip(found.end())
            if data[i:i + 1] != b":":
                raise NotSteppable(f"expected ':' at {i}")
            i = self.skip(i + 1)
            if name == path[0]:
                members[name], i = yield from self.value(i, path[1:])
            else:
                members[name], i = yield from self.whole(i)
            i, closed = self._after_item(i, b"}")
            if closed:
                return members, i
            if self._pause(i):
                yield
