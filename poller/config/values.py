"""Reading configuration values: JSON text, ``${env:...}``, strings-or-natives, and problems.

Every reader takes the value and its JSON path, reports what is wrong to the :class:`Context`
(``FILE: JSON.PATH: message``) and returns ``None`` when the value cannot be used, so that
loading goes on and gathers every problem in one run.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import orjson

from poller.config.templates import zone_problem
from poller.config.types import SecretStr
from poller.config.urls import http_url_problem
from poller.javadate.zone import ZoneError, java_zone
from poller.redact import mask_url

__all__ = ["Context", "JsonObject", "Path", "close_match", "decode_json", "describe", "format_path", "json_error",
           "kind"]

Path = tuple[str | int, ...]
Span = tuple[int, int]
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ENV_START = re.compile(r"\$\{env:", re.I)
_ENV_FULL = re.compile(r"\$\{env:([^}]*?)(?::-([^}]*))?\}", re.I)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_MISSING = object()
_T = TypeVar("_T")


def _memo_key(value: object) -> bytes | str | None:
    """``value`` as canonical JSON, or None when it may not be memoised (see Context.memo).
    (orjson: 200,000 blocks of 100,000 resources cost a sixth of the load with json.dumps. It
    would write NaN as null, but a configuration holding NaN is refused when it is read. The
    walk through the value looking for ``${`` and duplicated keys cost as much again: ``${`` is
    looked for in the encoded text, where a key holding it only costs the memo, and the walk is
    left for when some object of a file read in this process had a key twice.)"""
    try:
        key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits
        return json.dumps(value, sort_keys=True) if _plain(value) else None
    if b"${" in key or (_duplicates_read and not _plain(value)):
        return None
    return key


def _plain(v: object) -> bool:
    """No ``${...}`` and no duplicated key anywhere in ``v``."""
    if isinstance(v, dict):
        return not getattr(v, "duplicates", ()) and all(_plain(x) for x in v.values())
    if isinstance(v, list):
        return all(_plain(x) for x in v)
    return not (isinstance(v, str) and "${" in v)


_duplicates_read = False  # set for good once _pairs finds a key twice (see _memo_key)


class JsonObject(dict):  # type: ignore[type-arg]
    """A decoded JSON object that remembers the keys given more than once."""

    duplicates: tuple[str, ...] = ()  # (a class default: set on the few objects that have one)


def _pairs(pairs: list[tuple[str, object]]) -> JsonObject:
    obj = JsonObject(pairs)
    if len(obj) != len(pairs):
        global _duplicates_read
        _duplicates_read = True
        met: set[str] = set()
        duplicates = []
        for key, _ in pairs:
            if key in met:
                duplicates.append(key)
            met.add(key)
        obj.duplicates = tuple(duplicates)
    return obj


def _missing_comma(exc: json.JSONDecodeError) -> str:
    """Where the comma goes, when a line ends a value and the next begins one (a mistake in some
    published Cloud Elements bodies): the parser only sees the next line."""
    if exc.msg not in ("Expecting ',' delimiter", "Expecting property name enclosed in double quotes"):
        return ""
    before = exc.doc[:exc.pos].rstrip()
    if exc.msg.startswith("Expecting ','") and "\n" in exc.doc[len(before):exc.pos] and before:
        return f" (is a comma missing at the end of line {before.count(chr(10)) + 1}?)"
    if exc.msg.startswith("Expecting property") and before.endswith(",") and exc.doc[exc.pos:exc.pos + 1] == "}":
        return " (a comma before a closing brace is not allowed in JSON)"
    return ""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(text: str) -> object:
    """``json.loads`` with duplicate keys remembered and NaN/Infinity refused.

    Raises ``json.JSONDecodeError``, ``ValueError`` or ``RecursionError``; see :func:`json_error`.
    """
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)


def json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}{_missing_comma(exc)}"
    if isinstance(exc, RecursionError):
        return "not valid JSON: nested too deeply"
    return f"not valid JSON: {exc}"


def format_path(path: Path) -> str:
    out: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _SIMPLE_KEY.fullmatch(segment):
            out.append(f".{segment}" if out else segment)
        else:
            quoted = json.dumps(segment, ensure_ascii=False)
            out.append(f".{quoted}" if out else quoted)
    return "".join(out)


MAX_DURATION_MINUTES = 1_000_000_000  # churros uses 999999999 minutes for "never"
MAX_LOOKBACK = (366 * 86400, "a year: that much is read again on every poll")
_DURATION_MINUTES = {"a number of seconds": 1 / 60, "a number of minutes": 1.0, "a number of hours": 60.0,
                     "a number of days": 1440.0}


def describe(value: object) -> str:
    """A short, secret-free description of a JSON value for messages."""
    if isinstance(value, SecretStr):
        return "'***' (from the environment)"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return "a list" if isinstance(value, list) else "an object"


def kind(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def close_match(word: str, candidates: Iterable[str], cutoff: float = 0.7) -> str | None:
    by_lower = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


class Context:
    """The file being loaded, the environment, and the problems found so far."""

    def __init__(self, source: str, environ: Mapping[str, str], *, env_refused: str | None = None) -> None:
        self.source = source
        self.environ = environ
        # set: ${env:...} is an error with this message (a body from the management API must not
        # read the daemon's environment: its variables hold the operator's secrets)
        self.env_refused = env_refused
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.details: list[tuple[str, str]] = []  # (JSON path, message) of each error, for the API's 400
        self.defaulted: dict[str, list[Path]] = {}  # env variables that fell back to their default
        self._memo: dict[tuple[str, bytes | str], object] = {}

    def memo(self, kind: str, value: object, build: Callable[..., _T], *args: object) -> _T:
        """``build(*args)``, or what it gave for the same JSON ``value`` before in this file
        (arguments rather than a closure: a closure per resource made 20,000 cycles per 10,000).

        100,000 resources mostly repeat a few date and pagination blocks: each is checked once.
        Only a result that added no error and no warning is kept, and never one whose value
        holds a ``${...}`` (environment variables are recorded where they are used) or a
        duplicated key (reported where it is), so the problems found are the same either way."""
        key = _memo_key(value)
        if key is None:
            return build(*args)
        found = self._memo.get((kind, key), _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        errors, warnings = len(self.errors), len(self.warnings)
        result = build(*args)
        if len(self.errors) == errors and len(self.warnings) == warnings:
            self._memo[(kind, key)] = result
        return result

    def finish(self) -> None:
        """Add the warnings gathered over the whole file: one per defaulted variable."""
        for name, paths in self.defaulted.items():
            others = len(paths) - 1
            more = f" (here and in {others} other place{'s' if others > 1 else ''})" if others else ""
            self.warn(paths[0], f"environment variable {name} is not set; using the default written "
                                f"in the file{more}")
        self.defaulted = {}

    def where(self, path: Path) -> str:
        return f"{self.source}: {format_path(path)}" if path else self.source

    def error(self, path: Path, message: str) -> None:
        self.errors.append(f"{self.where(path)}: {message}")
        self.details.append((format_path(path), message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(f"{self.where(path)}: {message}")

    # -- keys

    def check_keys(self, obj: JsonObject | dict, path: Path, *, known: Iterable[str],
                   required: Iterable[str] = (), ignored: Iterable[str] = (),
                   accept: Callable[[str], bool] | None = None, hints: Mapping[str, str] | None = None) -> bool:
        """Warn about unknown keys (with a did-you-mean), report missing required ones.

        A misspelt required key is an error: ``idField is missing (did you mean idFeild?)``.
        ``hints`` names where a key written here belongs (``pageSizeParam`` -> ``pagination.pageSizeParam``).
        Returns False when a required key is missing.
        """
        known = tuple(known)
        ignored = frozenset(ignored)
        for key in getattr(obj, "duplicates", ()):
            self.error(path, f"key {key!r} is given more than once")
        unknown = [k for k in obj if k not in known and k not in ignored and not (accept and accept(k))]
        for key in obj:
            if key in ignored:
                self.warn(path + (key,), "a Cloud Elements key that poller does not implement; ignored")
        complete = True
        for key in required:
            if key in obj:
                continue
            complete = False
            guess = close_match(key, unknown, cutoff=0.75)
            if guess is not None:
                unknown.remove(guess)
                self.error(path, f"{key} is missing (did you mean {guess}?)")
            else:
                self.error(path, f"{key} is missing")
        for key in unknown:
            guess = (hints or {}).get(key) or close_match(key, known)
            hint = f" (did you mean {guess}?)" if guess else ""
            self.warn(path + (key,), f"unknown key{hint}; ignored")
        return complete

    # -- values

    def spanned(self, value: object, path: Path, what: str = "a string") -> tuple[str, tuple[Span, ...]] | None:
        """A string with ``${env:...}`` resolved, and the spans of the resolved parts."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and what != "a string":
            value = str(value)
        if not isinstance(value, str):
            self.error(path, f"expected {what}, got {kind(value)}")
            return None
        return self._resolve_env(value, path)

    def text(self, value: object, path: Path, what: str = "a string") -> str | None:
        resolved = self.spanned(value, path, what)
        if resolved is None:
            return None
        text, spans = resolved
        return SecretStr(text) if spans else text

    def _resolve_env(self, text: str, path: Path) -> tuple[str, tuple[Span, ...]] | None:
        if "${" not in text:
            return text, ()
        out: list[str] = []
        spans: list[Span] = []
        pos, length, ok = 0, 0, True
        for start in _ENV_START.finditer(text):
            if start.start() < pos:
                continue
            match = _ENV_FULL.match(text, start.start())
            if match is None:
                self.error(path, f"unterminated ${{env:...}} at position {start.start()}")
                return None
            name, default = match.group(1), match.group(2)
            value: str | None = ""
            if self.env_refused is not None:
                self.error(path, f"${{env:{name}}} at position {start.start()}: {self.env_refused}")
                ok = False
            elif not _ENV_NAME.fullmatch(name):
                self.error(path, f"invalid environment variable name {name!r} in ${{env:...}} "
                                 f"at position {start.start()}")
                ok = False
            else:
                value = self.environ.get(name)
                if value is None or (value == "" and default is not None):
                    if default is None:
                        self.error(path, f"environment variable {name} is not set")
                        ok = False
                    else:
                        self.defaulted.setdefault(name, []).append(path)
                    value = default or ""
            before = text[pos:start.start()]
            out.append(before)
            length += len(before)
            out.append(value)
            spans.append((length, length + len(value)))
            length += len(value)
            pos = match.end()
        out.append(text[pos:])
        return ("".join(out), tuple(spans)) if ok else None

    def zone(self, value: object, path: Path) -> str | None:
        """A time zone id (IANA, GMT/UTC, a Java short id, an offset), stripped; checked now."""
        zone = self.text(value, path)
        if zone is None:
            return None
        try:
            java_zone(zone.strip())
        except ZoneError as exc:
            self.error(path, zone_problem(zone, exc))
            return None
        return zone.strip()

    def boolean(self, value: object, path: Path) -> bool | None:
        if isinstance(value, str):
            text = self.text(value, path)
            if text is None:
                return None
            if text.strip().lower() in ("true", "false"):
                return text.strip().lower() == "true"
        elif isinstance(value, bool):
            return value
        self.error(path, f"expected true or false, got {describe(value)}")
        return None

    def number(self, value: object, path: Path, what: str = "a number", *, positive: bool = False,
               integer: bool = False, at_most: tuple[float, str] | None = None) -> float | None:
        """A number given as a JSON number or a string; never negative; durations (``what`` is "a
        number of seconds", ...) at most about 1900 years; ``at_most``: (an upper bound, its reason)."""
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            text = self.text(value, path)
            if text is None:
                return None
            if _NUMBER.fullmatch(text.strip()):
                number = float(text.strip())
            value = text
        if number is None or not math.isfinite(number):
            self.error(path, f"expected {what}, got {describe(value)}")
            return None
        if integer and not number.is_integer():
            self.error(path, f"expected a whole number, got {describe(value)}")
            return None
        if positive and number <= 0:
            self.error(path, f"must be greater than 0, got {describe(value)}")
            return None
        if number < 0:
            self.error(path, f"must not be negative, got {describe(value)}")
            return None
        unit_minutes = _DURATION_MINUTES.get(what)
        if unit_minutes is not None and number * unit_minutes > MAX_DURATION_MINUTES:
            # beyond it, instants overflow datetime or SQLite's 64 bits (1e300 s crashed the daemon)
            self.error(path, f"must be at most {MAX_DURATION_MINUTES / unit_minutes:.0f} {what.rsplit(' ', 1)[1]} "
                             f"(about 1900 years), got {number:g}")
            return None
        if at_most is not None and number > at_most[0]:
            self.error(path, f"must be at most {at_most[0]:g} ({at_most[1]}), got {number:g}")
            return None
        return number

    def integer(self, value: object, path: Path, what: str = "a whole number", *,
                positive: bool = True) -> int | None:
        number = self.number(value, path, what, positive=positive, integer=True)
        return None if number is None else int(number)

    def obj(self, value: object, path: Path, what: str = "an object") -> JsonObject | dict | None:
        if isinstance(value, dict):
            return value
        self.error(path, f"expected {what}, got {kind(value)}")
        return None

    def check_http_url(self, text: str, path: Path) -> bool:
        problem = http_url_problem(text, describe(text if isinstance(text, SecretStr) else mask_url(text)))
        if problem is not None:
            self.error(path, problem)
        return problem is None
