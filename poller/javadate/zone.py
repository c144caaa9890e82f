"""Time zones as java.util.TimeZone sees them: ids, offsets, and Locale.US names.

Zone ids accepted by :func:`parse_zone`:

* IANA ids (``America/New_York``), matched case-insensitively when the exact id is unknown;
* ``UTC``, ``GMT``, ``Z``;
* Java's three-letter ids (``PST``, ``EST``, ``CST``, ``IST``...) with Java's meaning:
  ``PST`` follows the rules of America/Los_Angeles, while ``EST``, ``MST`` and ``HST`` are fixed
  offsets (-05:00, -07:00, -10:00), as in ``TimeZone.getTimeZone``;
* offsets: ``-8:00``, ``+05:30``, ``+5``, ``-0800``, ``GMT+5``, ``GMT-08:00``, ``UTC+5``.

Where Java and Python's zoneinfo differ, Java wins: before 1900-01-01T00:00Z Java applies the
zone's current standard offset instead of local mean time, and a local time in a DST overlap
means standard time (the later instant) while one in a gap is pushed forward by the gap.

The names (``PST``, ``Pacific Daylight Time``...) and the order in which SimpleDateFormat
tries them when parsing come from ``data/jdk_zones.json``, dumped from OpenJDK 17
(``tests/data/javadates/ZoneNames.java``).
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache, cached_property, lru_cache
from importlib import resources

from poller.errors import PollerError

__all__ = ["JavaZone", "ZoneError", "java_zone", "parse_zone", "zone_strings"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
# java.util.ZoneInfo has no transitions before this instant: it applies the raw offset.
UTC1900_MS = -2_208_988_800_000
_ONE_MS = timedelta(milliseconds=1)
_LAST_SAFE_MS = 253_402_128_000_000  # 9999-12-30T00:00:00Z


class ZoneError(PollerError, ValueError):
    """A time zone id is not known."""

    def __init__(self, zone_id: str, reason: str = "unknown time zone") -> None:
        self.zone_id = zone_id
        super().__init__(f"{reason} {zone_id!r} (use an IANA id such as 'America/New_York', "
                         "a Java id such as 'PST', or an offset such as '-08:00')")


@cache
def _jdk() -> dict:
    with resources.files("poller.javadate").joinpath("data/jdk_zones.json").open(encoding="utf-8") as f:
        return json.load(f)


def zone_strings() -> list[list[str]]:
    """SimpleDateFormat's zone strings in lookup order: [id, long std, short std, long dst, short dst]."""
    return _jdk()["zoneStrings"]


def to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime (floored)."""
    return (dt - EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def custom_id(offset_ms: int) -> str:
    """Java's normalised custom zone id for a fixed offset: GMT+05:30, GMT-08:00, GMT."""
    sign = "-" if offset_ms < 0 else "+"
    minutes = abs(offset_ms) // MS_PER_MINUTE
    return f"GMT{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, eq=False)
class JavaZone:
    """A zone with Java's behaviour. ``tz`` is the Python tzinfo carrying the rules."""

    id: str
    tz: tzinfo
    fixed_ms: int | None  # the offset when the zone is fixed, else None
    raw_ms: int  # Java's current standard offset (used before 1900)
    dst_savings_ms: int
    names: tuple[str, str, str, str]  # short std, long std, short dst, long dst
    negative_dst: bool = False

    def offsets_at(self, utc_ms: int) -> tuple[int, int]:
        """(standard offset, DST offset) in ms at an instant, as java.util.ZoneInfo gives them."""
        if self.fixed_ms is not None:
            return self.fixed_ms, 0
        if utc_ms < UTC1900_MS:
            return self.raw_ms, 0
        # Near datetime's upper limit, the offset of a day earlier (the same rules apply).
        dt = from_ms(min(utc_ms, _LAST_SAFE_MS)).astimezone(self.tz)
        total = _td_ms(dt.utcoffset())
        return total - (dst := self._dst_of(dt, total)), dst

    def _dst_of(self, local: datetime, total: int) -> int:
        dst = _td_ms(local.dst())
        if not self.negative_dst:
            return dst if dst > 0 else 0
        # Java reads tzdb in its "rearguard" form, where Irish summer time is the DST part.
        if dst < 0:
            return 0
        winter = _td_ms(datetime(local.year, 1, 15, tzinfo=self.tz).utcoffset())
        summer = _td_ms(datetime(local.year, 7, 15, tzinfo=self.tz).utcoffset())
        return total - min(winter, summer) if total > min(winter, summer) else 0

    def resolve_wall(self, wall_ms: int) -> tuple[int, int, bool]:
        """Offsets for a local wall time, the way GregorianCalendar resolves it.

        Returns (standard offset, DST offset, in_gap). In an overlap the later (standard)
        instant is chosen; in a gap the offset before the transition applies, which pushes the
        time forward by the gap, and ``in_gap`` is True.
        """
        if self.fixed_ms is not None:
            return self.fixed_ms, 0, False
        if wall_ms < UTC1900_MS + self.offset_1900:
            return self.raw_ms, 0, False
        try:
            naive = datetime(1970, 1, 1) + timedelta(milliseconds=wall_ms)
            later = naive.replace(tzinfo=self.tz, fold=1)
            utc_later = later.astimezone(UTC)
        except OverflowError:  # beyond datetime's range: the result cannot be represented anyway
            return self.raw_ms, 0, False
        if utc_later.astimezone(self.tz).replace(tzinfo=None, fold=0) == naive:
            total = _td_ms(later.utcoffset())
            dst = self._dst_of(utc_later.astimezone(self.tz), total)
            return total - dst, dst, False
        earlier = naive.replace(tzinfo=self.tz, fold=0)
        total = _td_ms(earlier.utcoffset())
        _, dst = self.offsets_at(wall_ms - total - 1)
        return total - dst, dst, True

    @cached_property
    def offset_1900(self) -> int:
        return _td_ms(from_ms(UTC1900_MS).astimezone(self.tz).utcoffset())

    def display_name(self, daylight: bool, long: bool) -> str:
        return self.names[(2 if daylight else 0) + (1 if long else 0)]


def _td_ms(td: timedelta | None) -> int:
    return 0 if td is None else td // _ONE_MS


_OFFSET_RE = re.compile(r"(?:GMT|UTC|UT)?([+-])(\d{1,2})(?::?(\d{2}))?", re.I)


def _fixed(offset_ms: int, zone_id: str | None = None) -> JavaZone:
    cid = custom_id(offset_ms) if offset_ms else "GMT"
    name = zone_id or cid
    tz = UTC if offset_ms == 0 else timezone(timedelta(milliseconds=offset_ms), cid)
    return JavaZone(cid if zone_id is None else zone_id, tz, offset_ms, offset_ms, 0,
                    (name, name, name, name))


@lru_cache(maxsize=None)
def java_zone(zone_id: str) -> JavaZone:
    """The :class:`JavaZone` for an id; raises :class:`ZoneError` when it is unknown."""
    text = zone_id.strip()
    if not text:
        raise ZoneError(zone_id, "empty time zone")
    jdk = _jdk()
    zones = jdk["zones"]
    if text.upper() in ("UTC", "Z", "GMT", "UT"):
        key = "GMT" if text.upper() == "GMT" else "UTC"
        short, long_, dshort, dlong, *_ = zones[key]
        return JavaZone(key, UTC, 0, 0, 0, (short, long_, dshort, dlong))
    m = _OFFSET_RE.fullmatch(text)
    if m:
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ZoneError(zone_id, "offset out of range in time zone")
        offset = (hours * 60 + minutes) * MS_PER_MINUTE * (-1 if sign == "-" else 1)
        return _fixed(offset)
    java_id = text if text in zones else _casefold_ids().get(text.lower())
    if java_id is None:
        python_id = _python_id(text)
        if python_id is None:
            raise ZoneError(zone_id)
        tz = zoneinfo.ZoneInfo(python_id)
        std = _std_offset(tz)
        name = custom_id(std)
        return JavaZone(python_id, tz, None, std, 0, (name, name, name, name))
    short, long_, dshort, dlong, raw, savings, _uses_dst = zones[java_id]
    names = (short, long_, dshort, dlong)
    rules = jdk["shortIds"].get(java_id, java_id)
    if rules.startswith(("+", "-")):
        sign = -1 if rules[0] == "-" else 1
        offset = sign * (int(rules[1:3]) * 60 + int(rules[4:6])) * MS_PER_MINUTE
        return JavaZone(java_id, timezone(timedelta(milliseconds=offset), short), offset, offset, 0, names)
    python_id = _python_id(rules)
    if python_id is None:
        if savings:
            raise ZoneError(zone_id, "unsupported time zone")
        return JavaZone(java_id, timezone(timedelta(milliseconds=raw)), raw, raw, 0, names)
    tz = zoneinfo.ZoneInfo(python_id)
    if _is_fixed(tz):
        return JavaZone(java_id, tz, raw, raw, 0, names)
    return JavaZone(java_id, tz, None, raw, savings, names, negative_dst=_has_negative_dst(tz))


def parse_zone(zone_id: str) -> tzinfo:
    """A tzinfo for a zone id (IANA, UTC/GMT, Java short id, or offset)."""
    return java_zone(zone_id).tz


@cache
def _available() -> frozenset[str]:
    return frozenset(z for z in zoneinfo.available_timezones()
                     if z != "localtime" and not z.startswith(("posix/", "right/", "posixrules")))


@cache
def _casefold_ids() -> dict[str, str]:
    return {z.lower(): z for z in _jdk()["zones"]}


def _python_id(text: str) -> str | None:
    """The IANA id for ``text`` (exact, else case-insensitive); host-only files such as
    ``localtime`` or ``posix/...`` are not zones."""
    available = _available()
    if text in available:
        return text
    lowered = text.lower()
    return next((z for z in available if z.lower() == lowered), None)


def _std_offset(tz: tzinfo) -> int:
    offsets = [_td_ms(datetime(2030, m, 15, tzinfo=tz).utcoffset()) for m in (1, 7)]
    return min(offsets)


def _is_fixed(tz: tzinfo) -> bool:
    probes = [datetime(y, m, 15, tzinfo=tz).utcoffset() for y in (1900, 1950, 2000, 2030) for m in (1, 7)]
    return len(set(probes)) == 1


def _has_negative_dst(tz: tzinfo) -> bool:
    return any(
        (d := datetime(y, m, 15, tzinfo=tz).dst()) is not None and d < timedelta(0)
        for y in (2000, 2030)
        for m in (1, 7)
    )
