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

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlsplit

from poller.config.placeholders import Placeholder, compile_placeholder, zone_problem
from poller.errors import PollerError

__all__ = ["Literal", "Placeholder", "Template", "TemplateError", "join", "origin", "parse", "render",
           "zone_problem"]

MASK = "***"
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_MEANINGFUL = re.compile(r"[${}]")  # where the scanner looks closer
_BRACELESS_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
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
        return any(type(p) is Placeholder and p.kind == "pageSize" for p in self.parts)

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


def origin(template: Template) -> str:
    """``scheme://host:port`` of an absolute URL template, lower-cased, the port always given:
    the provider the URL reaches. Read from the literal text before the first placeholder (a
    port that a placeholder writes counts as the scheme's)."""
    head = []
    for part in template.parts:
        if not isinstance(part, Literal):
            break
        head.append(part.text)
    text = "".join(head)
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
        return f"{scheme}://{(parts.hostname or '').lower()}:{port or ''}"
    except ValueError:  # the literal text stops inside the authority ("http://[${...}]/"): that text
        return text.split("@")[-1].lower()  # (never the user and password before an @)


def parse(text: str, *, server_zone: str = "UTC", opaque: tuple[Span, ...] = ()) -> Template:
    """Parse ``text``; raises :class:`TemplateError` listing every problem (0-based positions)."""
    if not opaque:
        known = _parse_known(text, server_zone)
        if known is not None:
            return known
    scanner = _Scanner(text, server_zone, tuple(sorted(opaque)))
    scanner.run()
    if scanner.problems:
        raise TemplateError(scanner.problems)
    return Template(_mask(text, 0, len(text), scanner.opaque), tuple(scanner.parts),
                    tuple(dict.fromkeys(scanner.params)), tuple(scanner.warnings))


def _parse_known(text: str, server_zone: str) -> Template | None:
    """``parse(text)`` for the usual URL, or None: one whose only braces are those of
    placeholders compiled before (so without problem or warning), each holding an even number of
    quotes (so its first ``}`` ends it, as the scanner would find). 100,000 resources share a few
    placeholders, and scanning each URL character by character was a quarter of their load."""
    parts: list[Part] = []
    at = 0
    for match in _BRACELESS_PLACEHOLDER.finditer(text):
        body = match.group(1)
        placeholder = _COMPILED.get((body, server_zone))
        literal = text[at:match.start()]
        if placeholder is None or body.count("'") % 2 or "{" in literal or "}" in literal:
            return None
        if literal:
            parts.append(Literal(literal))
        parts.append(placeholder)
        at = match.end()
    literal = text[at:]
    if "{" in literal or "}" in literal:
        return None
    if literal:
        parts.append(Literal(literal))
    return Template(text, tuple(parts))


def join(base: Template, url: Template) -> Template:
    """``base`` + ``/`` + ``url`` (DESIGN §9: ``base.rstrip('/') + '/' + url.lstrip('/')``)."""
    display = base.display.rstrip("/") + "/" + url.display.lstrip("/")
    params = tuple(dict.fromkeys(base.path_parameters + url.path_parameters))
    if base.parts and url.parts:  # the usual case, without building lists: plain text meets plain text
        last, first = base.parts[-1], url.parts[0]
        if type(last) is Literal and type(first) is Literal and not last.secret and not first.secret:
            head, tail = last.text.rstrip("/"), first.text.lstrip("/")
            if head and tail:  # (parts of a parsed template are merged: no plain Literal beside these)
                return Template(display, (*base.parts[:-1], Literal(head + "/" + tail), *url.parts[1:]), params,
                                base.warnings + url.warnings)
    head = list(base.parts)
    while head and isinstance(head[-1], Literal) and not head[-1].secret and head[-1].text.endswith("/"):
        stripped = head[-1].text.rstrip("/")
        head[-1:] = [Literal(stripped)] if stripped else []
    tail = list(url.parts)
    while tail and isinstance(tail[0], Literal) and not tail[0].secret and tail[0].text.startswith("/"):
        stripped = tail[0].text.lstrip("/")
        tail[:1] = [Literal(stripped)] if stripped else []
    return Template(display, _merge(head + [Literal("/")] + tail), params, base.warnings + url.warnings)


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
        display = _mask(self.text, start, end + 1, self.opaque)
        placeholder = compile_placeholder(body, display, start, self.server_zone, self.problems, self.warnings)
        if plain and placeholder is not None and found == (len(self.problems), len(self.warnings)):
            if len(_COMPILED) >= 4096:
                _COMPILED.clear()
            _COMPILED[key] = placeholder
        return placeholder
