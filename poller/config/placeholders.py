"""The placeholders of URL templates (``${gmtDate:FMT}``, ``${epoch:s}``...), each compiled
once, and how each renders; the list of them is in :mod:`poller.config.templates`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from poller import javadate
from poller.errors import DateFormatError
from poller.javadate.zone import EPOCH, ZoneError, java_zone, to_ms

__all__ = ["DESCRIPTORS", "EPOCH_UNITS", "Placeholder", "compile_placeholder", "zone_problem"]

DESCRIPTORS = ("gmtDate", "date", "dateTimeZone", "nowTimeZone", "epoch", "milliseconds", "pageSize")
_BY_LOWER = {d.lower(): d for d in DESCRIPTORS}
EPOCH_UNITS = ("ms", "s", "us")


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


def compile_placeholder(body: str, display: str, start: int, server_zone: str, problems: list[str],
                        warnings: list[str]) -> Placeholder | None:
    """The placeholder ``${body}`` found at ``start`` (``display``: its text, secrets masked), or
    None; what is wrong with it is added to ``problems``, what is odd to ``warnings``."""
    descriptor, colon, rest = body.partition(":")
    name = _BY_LOWER.get(descriptor.strip().lower())
    where = f"{display} at position {start}"
    if name is None:
        problems.append(f"unknown placeholder {where}{_suggest(descriptor, body)}; known "
                        f"placeholders: {', '.join(DESCRIPTORS)}")
        return None
    try:
        return _build(name, colon, rest, display, start, server_zone, warnings)
    except _Problem as problem:
        problems.append(f"{where}: {problem}")
    except (DateFormatError, ZoneError) as exc:
        problems.append(f"{where}: {exc}")
    return None


def _build(name: str, colon: str, rest: str, display: str, start: int, server_zone: str,
           warnings: list[str]) -> Placeholder:
    if name in ("gmtDate", "date") and colon:
        zone = "GMT" if name == "gmtDate" else server_zone
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
            warnings.append(f"{display} at position {start} always renders 0 (fetch from the "
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
