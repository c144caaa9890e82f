"""URL templates: ``${...}`` placeholders parsed once at load time, rendered per poll.

    >>> from datetime import datetime, timezone
    >>> t = parse("/contacts?since=${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}&n=${pageSize}")
    >>> since = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    >>> render(t, since, since, 50)
    '/contacts?since=2024-05-01T12%3A30%3A00Z&n=50'

Placeholders (the descriptor is matched case-insensitively):

==============================  ====================================================
``${gmtDate:FMT}``              ``since`` in GMT, as the Java pattern FMT
``${date:FMT}``                 ``since`` in the engine's ``serverTimeZone``
``${dateTimeZone:ZONE:FMT}``    ``since`` in ZONE (``PST``, ``-8:00``, ``America/Denver``...)
``${nowTimeZone:ZONE:FMT}``     ``now`` (the poll's start) in ZONE
``${epoch}``, ``${epoch:ms}``   ``since`` in epoch milliseconds; also ``${date}``, ``${milliseconds}``
``${epoch:s}``, ``${epoch:us}`` ``since`` in epoch seconds (floored) or microseconds
``${epoch:0}``                  the constant ``0`` ("from the beginning", Repsly); a warning says so
``${pageSize}``                 the resource's ``pageSize``
==============================  ====================================================

Rendered values are URL-encoded as query values (``quote(value, safe="")``); the text around
them is kept as written. ``{name}`` (single braces) is a path parameter that the user must
replace by hand: it is reported in :attr:`Template.path_parameters`, never substituted.
A ``}`` or ``{`` without its partner is an error (neither is a legal URL character).

Zone ids may contain ``:`` (``-8:00``), so ``ZONE:FMT`` is split at the longest prefix before
the pattern's first quote that is a known zone. A closing ``}`` inside a quoted part of the
pattern (``'}'``) or closing a ``{...}`` nested in the placeholder does not end it.

``opaque`` spans (text that came from ``${env:...}``) are taken literally, never scanned for
placeholders, and shown as ``***`` in :attr:`Template.display` and in masked renders.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

from poller import javadate
from poller.errors import DateFormatError, PollerError
from poller.javadate.zone import EPOCH, ZoneError, java_zone, to_ms

__all__ = ["Literal", "Placeholder", "Template", "TemplateError", "join", "parse", "render", "zone_problem"]

MASK = "***"
DESCRIPTORS = ("gmtDate", "date", "dateTimeZone", "nowTimeZone", "epoch", "milliseconds", "pageSize")
_BY_LOWER = {d.lower(): d for d in DESCRIPTORS}
EPOCH_UNITS = ("ms", "s", "us")
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_MEANINGFUL = re.compile(r"[${}]")  # where the scanner looks closer
_COMPILED: dict[tuple[str, str], Placeholder] = {}  # (text, server zone) -> one: see _Scanner._compile
Span = tuple[int, int]


class TemplateError(PollerError, ValueError):
    """A URL template is invalid. ``problems`` holds every message, each naming its position."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class Literal:
    text: str
    secret: bool = False

    def __repr__(self) -> str:
        return f"Literal({MASK!r}, secret=True)" if self.secret else f"Literal({self.text!r})"


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``${...}``: ``kind`` is date, epoch, pageSize or constant; ``instant`` since or now."""

    display: str
    kind: str
    instant: str = "since"
    format: javadate.DateFormat | None = None
    unit: str = "ms"
    constant: str = ""

    def value(self, since: datetime, now: datetime, page_size: int | None) -> str:
        at = now if self.instant == "now" else since
        if self.kind == "date":
            assert self.format is not None
            return self.format.format(at)
        if self.kind == "epoch":
            if self.unit == "s":
                return str(to_ms(at) // 1000)
            if self.unit == "us":
                return str((at - EPOCH) // timedelta(microseconds=1))
            return str(to_ms(at))
        if self.kind == "pageSize":
            if page_size is None:
                raise ValueError(f"{self.display} needs a page size, and none was given")
            return str(page_size)
        return self.constant


Part = Literal | Placeholder


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed URL template. ``display`` is the source text with secrets masked."""

    display: str
    parts: tuple[Part, ...]
    path_parameters: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), repr=False)

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    @property
    def uses_page_size(self) -> bool:
        return any(p.kind == "pageSize" for p in self.placeholders)

    def render(self, since: datetime, now: datetime, page_size: int | None = None, *,
               masked: bool = False, values: dict[tuple[int, int | None], str] | None = None) -> str:
        return render(self, since, now, page_size, masked=masked, values=values)


def render(template: Template, since: datetime, now: datetime, page_size: int | None = None, *,
           masked: bool = False, values: dict[tuple[int, int | None], str] | None = None) -> str:
    """The URL for one poll. ``masked`` shows secret text as ``***`` (for display only). ``values``:
    placeholders rendered already, for many templates rendered at one ``since`` and ``now``."""
    for name, dt in (("since", since), ("now", now)):
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"render() needs an aware {name}, got naive {dt!r}")
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, Literal):
            out.append(MASK if masked and part.secret else part.text)
        elif values is None:  # (a poll: no dict to fill)
            out.append(quote(part.value(since, now, page_size), safe=""))
        else:
            key = (id(part), page_size)  # (parts are shared by templates, and outlive the dict)
            if key not in values:
                values[key] = quote(part.value(since, now, page_size), safe="")
            out.append(values[key])
    return "".join(out)


def parse(text: str, *, server_zone: str = "UTC", opaque: tuple[Span, ...] = ()) -> Template:
    """Parse ``text``; raises :class:`TemplateError` listing every problem (0-based positions)."""
    scanner = _Scanner(text, server_zone, tuple(sorted(opaque)))
    scanner.run()
    if scanner.problems:
        raise TemplateError(scanner.problems)
    return Template(_mask(text, 0, len(text), scanner.opaque), tuple(scanner.parts),
                    tuple(dict.fromkeys(scanner.params)), tuple(scanner.warnings))


def join(base: Template, url: Template) -> Template:
    """``base`` + ``/`` + ``url`` (DESIGN §9: ``base.rstrip('/') + '/' + url.lstrip('/')``)."""
    head = list(base.parts)
    while head and isinstance(head[-1], Literal) and not head[-1].secret and head[-1].text.endswith("/"):
        stripped = head[-1].text.rstrip("/")
        head[-1:] = [Literal(stripped)] if stripped else []
    tail = list(url.parts)
    while tail and isinstance(tail[0], Literal) and not tail[0].secret and tail[0].text.startswith("/"):
        stripped = tail[0].text.lstrip("/")
        tail[:1] = [Literal(stripped)] if stripped else []
    parts = _merge(head + [Literal("/")] + tail)
    display = base.display.rstrip("/") + "/" + url.display.lstrip("/")
    return Template(display, parts, tuple(dict.fromkeys(base.path_parameters + url.path_parameters)),
                    base.warnings + url.warnings)


def _merge(parts: list[Part]) -> tuple[Part, ...]:
    out: list[Part] = []
    for part in parts:
        last = out[-1] if out else None
        if isinstance(part, Literal) and isinstance(last, Literal) and last.secret == part.secret:
            out[-1] = Literal(last.text + part.text, part.secret)
        elif not (isinstance(part, Literal) and not part.text):
            out.append(part)
    return tuple(out)


def _mask(text: str, start: int, end: int, opaque: tuple[Span, ...]) -> str:
    out, i = [], start
    for a, b in opaque:
        if b <= start or a >= end:
            continue
        out.append(text[i:max(a, start)])
        out.append(MASK)
        i = min(b, end)
    out.append(text[i:end])
    return "".join(out)


class _Scanner:
    def __init__(self, text: str, server_zone: str, opaque: tuple[Span, ...]) -> None:
        self.text = text
        self.server_zone = server_zone
        self.opaque = opaque
        self._opaque_at = {a: b for a, b in opaque if b > a}
        self.parts: list[Part] = []
        self.params: list[str] = []
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self._buf: list[str] = []

    def _flush(self) -> None:
        if self._buf:
            self.parts.append(Literal("".join(self._buf)))
            self._buf = []

    def run(self) -> None:
        text, n, i = self.text, len(self.text), 0
        braces: list[int] = []
        while i < n:
            if i in self._opaque_at:
                end = self._opaque_at[i]
                self._flush()
                self.parts.append(Literal(text[i:end], secret=True))
                i = end
                continue
            c = text[i]
            if c == "$" and text.startswith("{", i + 1):
                end = self._placeholder_end(i + 2)
                if end < 0:
                    self.problems.append(f"unterminated placeholder: '${{' at position {i} has no closing '}}'")
                    return
                self._flush()
                placeholder = self._compile(i, end)
                if placeholder is not None:
                    self.parts.append(placeholder)
                i = end + 1
                continue
            if c == "{":
                braces.append(i)
            elif c == "}":
                if not braces:
                    self.problems.append(
                        f"unmatched '}}' at position {i} (a placeholder is written ${{descriptor:format}}, "
                        "a path parameter {name})")
                else:
                    start = braces.pop()
                    name = text[start + 1:i]
                    if not braces and _PARAM_RE.fullmatch(name) and not self._crosses_opaque(start, i):
                        self.params.append(name)
            else:
                # plain characters up to the next that may matter, in one slice (not char by char)
                stop = _MEANINGFUL.search(text, i + 1)
                end = stop.start() if stop is not None else n
                if self._opaque_at:
                    end = min([end] + [a for a in self._opaque_at if i < a < end])
                self._buf.append(text[i:end])
                i = end
                continue
            self._buf.append(c)
            i += 1
        for start in braces:
            self.problems.append(f"unmatched '{{' at position {start}")
        self._flush()
        self.parts = list(_merge(self.parts))  # type: ignore[arg-type]

    def _crosses_opaque(self, start: int, end: int) -> bool:
        return any(a < end and b > start for a, b in self.opaque)

    def _placeholder_end(self, start: int) -> int:
        for track_quotes in (True, False):
            depth, quoted, k, n = 0, False, start, len(self.text)
            while k < n:
                if k in self._opaque_at:
                    k = self._opaque_at[k]
                    continue
                c = self.text[k]
                if c == "'" and track_quotes:
                    quoted = not quoted
                elif not quoted and c == "{":
                    depth += 1
                elif not quoted and c == "}":
                    if depth == 0:
                        return k
                    depth -= 1
                k += 1
        return -1

    def _compile(self, start: int, end: int) -> Placeholder | None:
        body = self.text[start + 2:end]
        plain = not self._crosses_opaque(start, end + 1)
        key = (body, self.server_zone)
        if plain and key in _COMPILED:  # (kept if it added no problem or warning and holds no secret)
            return _COMPILED[key]
        found = len(self.problems), len(self.warnings)
        placeholder = self._compile_new(start, end, body)
        if plain and placeholder is not None and found == (len(self.problems), len(self.warnings)):
            if len(_COMPILED) >= 4096:
                _COMPILED.clear()
            _COMPILED[key] = placeholder
        return placeholder

    def _compile_new(self, start: int, end: int, body: str) -> Placeholder | None:
        display = _mask(self.text, start, end + 1, self.opaque)
        descriptor, colon, rest = body.partition(":")
        name = _BY_LOWER.get(descriptor.strip().lower())
        where = f"{display} at position {start}"
        if name is None:
            self.problems.append(f"unknown placeholder {where}{_suggest(descriptor, body)}; known "
                                 f"placeholders: {', '.join(DESCRIPTORS)}")
            return None
        try:
            return self._build(name, colon, rest, display, start)
        except _Problem as problem:
            self.problems.append(f"{where}: {problem}")
        except (DateFormatError, ZoneError) as exc:
            self.problems.append(f"{where}: {exc}")
        return None

    def _build(self, name: str, colon: str, rest: str, display: str, start: int) -> Placeholder:
        if name in ("gmtDate", "date") and colon:
            zone = "GMT" if name == "gmtDate" else self.server_zone
            return Placeholder(display, "date", format=_compile_format(rest, zone))
        if name == "gmtDate":
            raise _Problem("needs a format: ${gmtDate:FORMAT}")
        if name in ("date", "milliseconds", "pageSize") and colon:
            raise _Problem(f"takes no argument: write ${{{name}}}")
        if name in ("date", "milliseconds"):
            return Placeholder(display, "epoch")
        if name == "pageSize":
            return Placeholder(display, "pageSize")
        if name == "epoch":
            unit = rest.strip() if colon else "ms"
            if unit == "0":
                self.warnings.append(f"{display} at position {start} always renders 0 (fetch from the "
                                     "beginning; changed records are then picked out by their dates)")
                return Placeholder(display, "constant", constant="0")
            if unit not in EPOCH_UNITS:
                raise _Problem(f"unknown epoch unit {unit!r} (use ms, s or us)")
            return Placeholder(display, "epoch", unit=unit)
        zone, fmt = _split_zone(name, rest if colon else "")
        instant = "now" if name == "nowTimeZone" else "since"
        return Placeholder(display, "date", instant=instant, format=_compile_format(fmt, zone))


class _Problem(Exception):
    pass


def _compile_format(pattern: str, zone: str) -> javadate.DateFormat:
    if not pattern.strip():
        raise _Problem("the date format is empty")
    if pattern.strip().lower() == javadate.MILLISECONDS:
        pattern = javadate.MILLISECONDS
    return javadate.compile(pattern, zone)


@lru_cache(maxsize=4096)
def _zone_problem(zone: str) -> str | None:
    try:
        java_zone(zone)
    except ZoneError as exc:
        return str(exc)
    return None


def _split_zone(name: str, rest: str) -> tuple[str, str]:
    quote_at = rest.find("'")
    head = rest if quote_at < 0 else rest[:quote_at]
    colons = [i for i, c in enumerate(head) if c == ":"]
    if not colons:
        raise _Problem(f"expected ${{{name}:ZONE:FORMAT}}")
    for i in reversed(colons):
        if _zone_problem(rest[:i].strip()) is None:
            return rest[:i].strip(), rest[i + 1:]
    zone = rest[:colons[0]].strip()
    raise _Problem(zone_problem(zone, _zone_problem(zone) or f"unknown time zone {zone!r}"))


def zone_problem(zone: str, message: str | Exception) -> str:
    """The message for an unknown zone, with a hint when it is a placeholder left unfilled."""
    if "{" in zone or "%" in zone:
        return (f"time zone {zone!r} is a placeholder left to fill in: replace it with the provider's "
                "time zone (an IANA id such as 'America/New_York', a Java id such as 'PST', or an "
                "offset such as '-08:00')")
    return str(message)


def _suggest(descriptor: str, body: str) -> str:
    close = difflib.get_close_matches(descriptor.strip().lower(), list(_BY_LOWER), n=1, cutoff=0.6)
    if close:
        return f" (did you mean ${{{_BY_LOWER[close[0]]}:...}}?)"
    if any(c in body for c in "yMdHms"):
        try:
            javadate.compile(body, "GMT")
        except (DateFormatError, ZoneError):
            return ""
        return f" (did you mean ${{gmtDate:{body}}}?)"
    return ""
