"""Java date patterns (``java.text.SimpleDateFormat``, Locale.US) for parsing and formatting.

    >>> fmt = compile("yyyy-MM-dd'T'HH:mm:ssXXX")
    >>> fmt.parse("2024-02-29T12:34:56+05:30").isoformat()
    '2024-02-29T12:34:56+05:30'
    >>> fmt.format(fmt.parse("2024-02-29T12:34:56+05:30"))
    '2024-02-29T07:04:56Z'

Parsing is SimpleDateFormat's strict mode (``setLenient(false)``) with one difference: the
whole text must match (SimpleDateFormat ignores trailing text). An offset or zone in the text
wins over the format's zone. The special pattern ``milliseconds`` means epoch milliseconds.

:meth:`DateFormat.parse_lenient` is for record dates from real providers: when the pattern
does not match it also accepts ISO-8601 text and epoch numbers (seconds or milliseconds, told
apart by magnitude), and says that it fell back so that the mismatch can be counted.

Common patterns take fast paths (a compiled regular expression and ``datetime`` arithmetic);
anything unusual goes through :mod:`poller.javadate._sdf`, the line-by-line port of the JDK they are
tested against.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from poller.errors import DateFormatError
from poller.javadate import _fastdate, _sdf
from poller.javadate.zone import UTC, UTC1900_MS, JavaZone, ZoneError, from_ms, java_zone, parse_zone, to_ms

__all__ = [
    "DateFormat",
    "DateFormatError",
    "MILLISECONDS",
    "ZoneError",
    "compile",
    "parse_zone",
]

MILLISECONDS = "milliseconds"
# SimpleDateFormat reads two-digit years in the 100 years from this instant; a JVM uses
# "now - 80 years", and this is what that gives during 2026.
DEFAULT_TWO_DIGIT_YEAR_START = datetime(1946, 1, 1, tzinfo=UTC)
# Epoch numbers at or above this magnitude are milliseconds (1e11 s is the year 5138;
# 1e11 ms is March 1973).
_MS_THRESHOLD = 100_000_000_000
_EPOCH_MIN = 100_000_000
_EPOCH_MAX = 10_000_000_000_000
_NUMBER_RE = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)
_MILLIS_RE = re.compile(r"-?[0-9]+", re.ASCII)
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)


class DateFormat:
    """A compiled pattern bound to a time zone. Immutable and safe to share between threads."""

    __slots__ = ("pattern", "zone_id", "zone", "tz", "_elements", "_century_ms", "_is_millis",
                 "_fast_parse", "_fast_ms", "_fast_format")

    def __init__(self, pattern: str, zone: str = "UTC", *,
                 two_digit_year_start: datetime = DEFAULT_TWO_DIGIT_YEAR_START) -> None:
        init = object.__setattr__  # instances are immutable once built (they are shared by the cache)
        init(self, "pattern", pattern)
        init(self, "zone_id", zone)
        init(self, "zone", java_zone(zone))
        init(self, "tz", self.zone.tz)
        init(self, "_is_millis", pattern == MILLISECONDS)
        init(self, "_elements", () if self._is_millis else _sdf.compile_pattern(pattern))
        init(self, "_century_ms", to_ms(two_digit_year_start))
        fixed = self.zone.fixed_ms is not None
        init(self, "_fast_parse", None if self._is_millis else _fastdate.build_parser(self._elements, self.tz, fixed))
        init(self, "_fast_ms", getattr(self._fast_parse, "ms", None))
        init(self, "_fast_format", None if self._is_millis else _fastdate.build_formatter(self._elements, self.tz))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DateFormat is immutable: cannot set {name!r}")

    def __repr__(self) -> str:
        return f"DateFormat({self.pattern!r}, {self.zone_id!r})"

    # -- parsing

    def parse(self, text: str) -> datetime:
        """The instant ``text`` denotes; raises :class:`DateFormatError` when it does not match."""
        if not isinstance(text, str):
            raise DateFormatError(f"expected text, got {type(text).__name__}", pattern=self.pattern,
                                  text=repr(text))
        if self._fast_parse is not None:
            fast = self._fast_parse(text)
            if fast is not None:
                return fast
        elif self._is_millis:
            return self._parse_millis(text)
        utc, offset = _sdf.parse_ms(self._elements, self.pattern, self.zone, text, self._century_ms)
        return self._result(utc, offset, text)

    @property
    def fast_ms(self) -> Callable[[str], int | None] | None:
        """The fast path as ``text -> epoch ms``, or None when the pattern has none.

        For a str it returns ``to_ms(self.parse(text))`` when the fast path settles the text
        (and then ``parse_lenient`` would give the same instant, not fallen back), else None:
        the caller must then ask :meth:`parse_lenient`.
        """
        return self._fast_ms

    def parse_lenient(self, value: object) -> tuple[datetime, bool]:
        """Parse a record's date: (instant, fell_back).

        ``fell_back`` is True when the pattern did not match and the value was read as ISO-8601
        text or as an epoch number (seconds below 1e11, else milliseconds). A local time in a DST
        gap matches the pattern, and is pushed forward by the gap, as lenient Java does: not a
        fallback (and tried first: "202403100230" for ``yyyyMMddHHmm`` in New York is 07:30 UTC,
        not the epoch milliseconds of 1976). Raises :class:`DateFormatError` when nothing fits.
        """
        if isinstance(value, str):
            try:
                return self.parse(value), False
            except DateFormatError as exc:
                error = exc
            if not self._is_millis:
                try:
                    utc, offset = _sdf.parse_ms(self._elements, self.pattern, self.zone, value, self._century_ms,
                                                allow_gap=True)
                    return self._result(utc, offset, value), False
                except DateFormatError:
                    pass
            fallback = self._fallback_text(value)
            if fallback is not None:
                return fallback, True
            raise error
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DateFormatError(f"expected a date, got {type(value).__name__}", pattern=self.pattern,
                                  text=repr(value))
        if isinstance(value, float) and not math.isfinite(value):
            raise DateFormatError("not a finite number", pattern=self.pattern, text=repr(value))
        if self._is_millis:
            return self._from_epoch(value, millis=True), False
        return self._from_epoch(value), True

    def _fallback_text(self, text: str) -> datetime | None:
        stripped = text.strip()
        if _NUMBER_RE.fullmatch(stripped):
            number = float(stripped) if "." in stripped else int(stripped)
            try:
                return self._from_epoch(number)
            except (OverflowError, ValueError, DateFormatError):
                return None
        return self._iso(stripped)

    def _iso(self, text: str) -> datetime | None:
        m = _ISO_RE.fullmatch(text)
        if m is None:
            return None
        year, month, day, hour, minute, second, fraction, offset = m.groups()
        try:
            micro = int((fraction or "0").ljust(6, "0")[:6])
            naive = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                             int(second or 0), micro)
        except ValueError:
            return None
        if offset is None:
            local_ms = (naive - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
            std, dst, _ = self.zone.resolve_wall(local_ms)
            return self._result(local_ms - std - dst, None, text).replace(microsecond=naive.microsecond)
        if offset in "Zz":
            return naive.replace(tzinfo=UTC)
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        if minutes > 18 * 60:
            return None
        aware = naive.replace(tzinfo=timezone(timedelta(minutes=sign * minutes)))
        try:
            aware.astimezone(UTC)
        except OverflowError:  # an instant after 9999-12-31T23:59:59.999Z
            return None
        return aware

    def _from_epoch(self, number: float | int, *, millis: bool = False) -> datetime:
        """Epoch milliseconds, or (guessing by magnitude) seconds below 1e11 and milliseconds
        below 1e13: 1973 to 2286 either way, so that a compact date such as 20240229 or
        20240229123456 is not mistaken for an instant."""
        if not millis and not _EPOCH_MIN <= abs(number) < _EPOCH_MAX:
            raise DateFormatError("not a plausible epoch value (seconds or milliseconds since 1970)",
                                  pattern=self.pattern, text=repr(number))
        ms = number if millis or abs(number) >= _MS_THRESHOLD else number * 1000
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        except OverflowError:
            raise DateFormatError("epoch value out of range", pattern=self.pattern, text=repr(number)) from None

    def _parse_millis(self, text: str) -> datetime:
        if text.isascii() and text.isdigit() and len(text) < 14:
            return datetime.fromtimestamp(int(text) / 1000, UTC)  # exact to the ms below year 2286
        if not _MILLIS_RE.fullmatch(text):
            raise DateFormatError("expected epoch milliseconds (digits)", pattern=self.pattern, text=text,
                                  position=_first_bad_digit(text))
        try:
            return from_ms(int(text))
        except OverflowError:
            raise DateFormatError("epoch milliseconds out of range", pattern=self.pattern, text=text) from None

    def _result(self, utc_ms: int, offset_ms: int | None, text: str) -> datetime:
        try:
            instant = from_ms(utc_ms)
            if offset_ms is None:
                if self.zone.fixed_ms is not None:
                    return instant.astimezone(self.tz)
                if utc_ms < UTC1900_MS:  # Java's offset there is the standard one, not local mean time
                    return instant.astimezone(_fixed_tz(self.zone.raw_ms))
                local = instant.astimezone(self.tz)
                if local.utcoffset() != local.replace(fold=1 - local.fold).utcoffset():
                    # in an overlap: PEP 495 makes fold=1 datetimes compare unequal across zones
                    return instant.astimezone(_fixed_tz(to_ms(local.replace(tzinfo=UTC)) - utc_ms))
                return local
            return instant.astimezone(_fixed_tz(offset_ms))
        except (OverflowError, ValueError):
            raise DateFormatError("the date is outside the years 1 to 9999", pattern=self.pattern,
                                  text=text, position=len(text)) from None

    # -- formatting

    def format(self, dt: datetime) -> str:
        """``dt`` rendered in this format's zone, as SimpleDateFormat.format would."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"format() needs an aware datetime, got naive {dt!r}")
        if self._fast_format is not None:
            try:
                fast = self._fast_format(dt)
            except OverflowError:  # the local date is beyond datetime's years: the port copes
                fast = None
            if fast is not None:
                return fast
        elif self._is_millis:
            return str(_exact_ms(dt))
        return _sdf.format_ms(self._elements, self.zone, _exact_ms(dt))


def _exact_ms(dt: datetime) -> int:
    """Epoch ms of an aware datetime, even when its UTC instant is beyond datetime's range."""
    try:
        return to_ms(dt)
    except OverflowError:
        naive = dt.replace(tzinfo=None) - datetime(1970, 1, 1)
        return (naive - dt.utcoffset()) // timedelta(milliseconds=1)  # type: ignore[operator]


def _first_bad_digit(text: str) -> int:
    for i, ch in enumerate(text):
        if not ("0" <= ch <= "9" or (i == 0 and ch == "-")):
            return i
    return len(text)


@lru_cache(maxsize=256)
def _fixed_tz(offset_ms: int) -> tzinfo:
    return UTC if offset_ms == 0 else timezone(timedelta(milliseconds=offset_ms))


@lru_cache(maxsize=1024)
def compile(pattern: str, zone: str = "UTC", *,  # noqa: A001 - the name the API promises
            two_digit_year_start: datetime = DEFAULT_TWO_DIGIT_YEAR_START) -> DateFormat:
    """Compile a SimpleDateFormat pattern (or ``milliseconds``) for a zone; cached.

    Raises :class:`DateFormatError` for an invalid pattern (with the position of the problem)
    and :class:`ZoneError` for an unknown zone.
    """
    return DateFormat(pattern, zone, two_digit_year_start=two_digit_year_start)
