"""The reference engine behind :mod:`poller.javadate`: a port of java.text.SimpleDateFormat.

It follows OpenJDK 17's ``SimpleDateFormat.compile``, ``subFormat``, ``parse`` and
``subParse`` (Locale.US, non-lenient) closely, including their quirks: numeric fields read
any number of digits unless another numeric field follows directly, spaces and tabs before a
field are skipped, text fields match case-insensitively and take the longest name, ``S`` is
an integer count of milliseconds. One deliberate difference: the whole text must be consumed
(SimpleDateFormat silently ignores trailing text, which turns ``+05:30`` read by ``X`` into
``+05``). :mod:`poller.javadate` puts fast paths in front of this for common patterns; this
module is the ground truth they are tested against.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from poller.errors import DateFormatError
from poller.javadate import calendar as cal
from poller.javadate.zone import MS_PER_MINUTE, JavaZone, java_zone, zone_strings

PATTERN_CHARS = "GyMdkHmsSEDFwWahKzZYuXL"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
SHORT_MONTHS = tuple(m[:3] for m in MONTHS)
WEEKDAYS = ("", "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
SHORT_WEEKDAYS = ("",) + tuple(d[:3] for d in WEEKDAYS[1:])
AM_PM = ("AM", "PM")
ERAS = ("BC", "AD")
# new SimpleDateFormat(pattern, Locale.US) parses eras from Calendar.getDisplayNames, which
# has the long forms too (it formats them short).
ERA_NAMES = ("BC", "AD", "Before Christ", "Anno Domini")
NUMERIC_LETTERS = frozenset("ydkHmsSDFwWhKYu")  # shouldObeyCount, plus M/L with count <= 2
_FIELD_OF = {
    "G": cal.ERA, "y": cal.YEAR, "M": cal.MONTH, "L": cal.MONTH, "d": cal.DAY_OF_MONTH,
    "k": cal.HOUR_OF_DAY, "H": cal.HOUR_OF_DAY, "m": cal.MINUTE, "s": cal.SECOND,
    "S": cal.MILLISECOND, "E": cal.DAY_OF_WEEK, "D": cal.DAY_OF_YEAR, "F": cal.DAY_OF_WEEK_IN_MONTH,
    "w": cal.WEEK_OF_YEAR, "W": cal.WEEK_OF_MONTH, "a": cal.AM_PM, "h": cal.HOUR, "K": cal.HOUR,
    "Y": cal.WEEK_YEAR, "u": cal.DAY_OF_WEEK,
}
LETTER_NAMES = {
    "G": "era", "y": "year", "Y": "week year", "M": "month", "L": "month", "w": "week of year",
    "W": "week of month", "D": "day of year", "d": "day of month", "F": "day of week in month",
    "E": "day name", "u": "day number of week", "a": "AM/PM marker", "H": "hour (0-23)",
    "k": "hour (1-24)", "K": "hour (0-11)", "h": "hour (1-12)", "m": "minute", "s": "second",
    "S": "millisecond", "z": "time zone", "Z": "time zone offset", "X": "ISO 8601 time zone",
}


@dataclass(frozen=True, slots=True)
class Field:
    letter: str
    count: int
    position: int  # index in the pattern, for error messages

    @property
    def numeric(self) -> bool:
        return self.letter in NUMERIC_LETTERS or (self.letter in "ML" and self.count <= 2)


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


Element = Field | Literal


def compile_pattern(pattern: str) -> tuple[Element, ...]:
    """SimpleDateFormat.compile: the pattern as fields and literals; raises on invalid patterns."""
    out: list[Element] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            if i + 1 < n and pattern[i + 1] == "'":
                out.append(Literal("'"))
                i += 2
                continue
            start = i
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise DateFormatError("unterminated quote", pattern=pattern, position=start)
                if pattern[i] == "'":
                    if i + 1 < n and pattern[i + 1] == "'":
                        buf.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(pattern[i])
                i += 1
            if buf:
                out.append(Literal("".join(buf)))
            continue
        if not ("a" <= c <= "z" or "A" <= c <= "Z"):
            out.append(Literal(c))
            i += 1
            continue
        if c not in PATTERN_CHARS:
            raise DateFormatError(f"unknown pattern letter {c!r}", pattern=pattern, position=i)
        j = i
        while j < n and pattern[j] == c:
            j += 1
        if c == "X" and j - i >= 4:
            raise DateFormatError(f"'X' takes 1 to 3 letters, not {j - i}", pattern=pattern, position=i)
        out.append(Field(c, j - i, i))
        i = j
    return tuple(out)


# ---------------------------------------------------------------- formatting

def _pad(value: int, count: int) -> str:
    if value < 0:
        return "-" + str(-value).rjust(count, "0")
    return str(value).rjust(count, "0")


def _sprintf0d(value: int, width: int) -> str:
    if value < 0:
        return "-" + str(-value).rjust(width - 1, "0")
    return str(value).rjust(width, "0")


def _tdiv(a: int, b: int) -> int:
    """Java's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def format_ms(elements: tuple[Element, ...], zone: JavaZone, utc_ms: int) -> str:
    std, dst = zone.offsets_at(utc_ms)
    f = cal.fields_from_local_ms(utc_ms + std + dst)
    out: list[str] = []
    for el in elements:
        if isinstance(el, Literal):
            out.append(el.text)
            continue
        c, n = el.letter, el.count
        if c == "G":
            out.append(ERAS[f[cal.ERA]])
        elif c in "yY":
            v = f[cal.YEAR] if c == "y" else f[cal.WEEK_YEAR]
            out.append(_pad(v, 2)[-2:] if n == 2 else _pad(v, n))
        elif c in "ML":
            m = f[cal.MONTH]
            out.append(MONTHS[m] if n >= 4 else SHORT_MONTHS[m] if n == 3 else _pad(m + 1, n))
        elif c == "E":
            out.append((WEEKDAYS if n >= 4 else SHORT_WEEKDAYS)[f[cal.DAY_OF_WEEK]])
        elif c == "a":
            out.append(AM_PM[f[cal.AM_PM]])
        elif c == "k":
            out.append(_pad(f[cal.HOUR_OF_DAY] or 24, n))
        elif c == "h":
            out.append(_pad(f[cal.HOUR] or 12, n))
        elif c == "u":
            dow = f[cal.DAY_OF_WEEK]
            out.append(_pad(7 if dow == 1 else dow - 1, n))
        elif c == "z":
            out.append(zone.display_name(dst != 0, n >= 4))
        elif c == "Z":
            v = _tdiv(std + dst, MS_PER_MINUTE)
            num = _tdiv(v, 60) * 100 + (v - _tdiv(v, 60) * 60)
            out.append(("+" + _sprintf0d(num, 4)) if v >= 0 else _sprintf0d(num, 5))
        elif c == "X":
            total = std + dst
            if total == 0:
                out.append("Z")
                continue
            v = _tdiv(total, MS_PER_MINUTE)
            sign = "+" if v >= 0 else "-"
            v = abs(v)
            text = f"{sign}{v // 60:02d}"
            if n != 1:
                text += (":" if n == 3 else "") + f"{v % 60:02d}"
            out.append(text)
        else:
            out.append(_pad(f[_FIELD_OF[c]], n))
    return "".join(out)


# ---------------------------------------------------------------- parsing

class _Fail(Exception):
    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason


def _digit(ch: str) -> int:
    if "0" <= ch <= "9":
        return ord(ch) - 48
    return unicodedata.decimal(ch, -1)


def _java_int(value: int) -> int:
    """Number.intValue() of a parsed Long (wraps), or of a Double beyond long (saturates)."""
    if -(1 << 63) <= value < (1 << 63):
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value >= (1 << 31) else value
    return 2**31 - 1 if value > 0 else -(2**31)


def _parse_number(text: str, pos: int, limit: int) -> tuple[int, int] | None:
    """DecimalFormat (integer only, no grouping) parsing text[pos:limit]."""
    if text.startswith("NaN", pos) and pos + 3 <= limit:
        return 0, pos + 3
    negative = pos < limit and text[pos] == "-"
    i = pos + 1 if negative else pos
    if i < limit and text[i] == "\u221e":
        return (-(2**31) if negative else 2**31 - 1), i + 1
    value = 0
    start = i
    while i < limit and (d := _digit(text[i])) >= 0:
        value = value * 10 + d
        i += 1
    if i == start:
        return None
    if i < limit and text[i] == "E":
        j = i + 1
        exp_negative = j < limit and text[j] == "-"
        if exp_negative:
            j += 1
        exp, k = 0, j
        while k < limit and (d := _digit(text[k])) >= 0:
            exp = exp * 10 + d
            k += 1
        if k > j:
            i = k
            value = value // 10**exp if exp_negative else value * 10**min(exp, 400)
    return _java_int(-value if negative else value), i


def _region_matches(text: str, start: int, name: str) -> bool:
    """String.regionMatches(ignoreCase=true, ...)."""
    end = start + len(name)
    if start < 0 or end > len(text):
        return False
    part = text[start:end]
    return part == name or part.upper() == name.upper() or part.lower() == name.lower()


def _match_names(text: str, start: int, names: tuple[str, ...], first: int = 0) -> tuple[int, int] | None:
    best, best_len = -1, 0
    for i in range(first, len(names)):
        name = names[i]
        if len(name) > best_len and _region_matches(text, start, name):
            best, best_len = i, len(name)
    return (best, start + best_len) if best >= 0 else None


class _Builder:
    """CalendarBuilder: parsed field values and the order they were set in."""

    __slots__ = ("stamp", "value", "next", "zone", "zone_named")

    def __init__(self, zone: JavaZone) -> None:
        self.stamp = [0] * 18
        self.value = [0] * 18
        self.next = 1
        self.zone = zone
        self.zone_named = False

    def set(self, field: int, value: int) -> None:
        self.stamp[field] = self.next
        self.value[field] = value
        self.next += 1

    def clear(self, field: int) -> None:
        self.stamp[field] = 0
        self.value[field] = 0


def _numeric_zone(text: str, index: int, sign: int, count: int, colon: bool, b: _Builder) -> int:
    """subParseNumericZone: returns the index after the offset, or raises _Fail."""
    n = len(text)

    def at(i: int) -> str:
        if i >= n:
            raise _Fail(i, "offset is cut short")
        return text[i]

    start = index
    c = at(index)
    index += 1
    if not "0" <= c <= "9":
        raise _Fail(start, "expected offset hours")
    hours = ord(c) - 48
    c = at(index)
    index += 1
    if "0" <= c <= "9":
        hours = hours * 10 + ord(c) - 48
    else:
        if count > 0 or not colon:
            raise _Fail(index - 1, "offset hours need two digits")
        index -= 1
    if hours > 23:
        raise _Fail(start, "offset hours above 23")
    minutes = 0
    if count != 1:
        c = at(index)
        index += 1
        if colon:
            if c != ":":
                raise _Fail(index - 1, "expected ':' in offset")
            c = at(index)
            index += 1
        if not "0" <= c <= "9":
            raise _Fail(index - 1, "expected offset minutes")
        minutes = ord(c) - 48
        c = at(index)
        index += 1
        if not "0" <= c <= "9":
            raise _Fail(index - 1, "expected offset minutes")
        minutes = minutes * 10 + ord(c) - 48
        if minutes > 59:
            raise _Fail(index - 2, "offset minutes above 59")
    b.set(cal.ZONE_OFFSET, (minutes + hours * 60) * MS_PER_MINUTE * sign)
    b.set(cal.DST_OFFSET, 0)
    return index


def _zone_name(text: str, start: int, b: _Builder) -> int:
    """subParseZoneString: a zone name or abbreviation, tried in SimpleDateFormat's order."""
    table = zone_strings()
    rows: list[list[str]] = []
    for zid in (b.zone.id, "UTC"):
        rows.extend(row for row in table if row[0] == zid)
    for row in (*rows, *table):
        for k in range(1, 5):
            if _region_matches(text, start, row[k]):
                same = k <= 2 and row[k].lower() == row[k + 2].lower()
                tz = java_zone(row[0])
                dst = tz.dst_savings_ms if k >= 3 else 0
                b.zone = tz
                b.zone_named = True
                if not (same or (k >= 3 and dst == 0)):
                    b.clear(cal.ZONE_OFFSET)
                    b.set(cal.DST_OFFSET, dst)
                return start + len(row[k])
    raise _Fail(start, "unknown time zone name")


def _sub_parse(text: str, start: int, el: Field, obey_count: bool, b: _Builder, amb: list[bool],
               century_start_year: int) -> int:
    n = len(text)
    pos = start
    while True:
        if pos >= n:
            raise _Fail(start, f"expected {LETTER_NAMES[el.letter]}, found the end of the text")
        if text[pos] not in " \t":
            break
        pos += 1
    actual_start = pos
    c, count = el.letter, el.count
    value = 0

    def number() -> tuple[int, int]:
        limit = start + count if obey_count else n
        if obey_count and limit > n:
            raise _Fail(pos, f"expected {count} digits of {LETTER_NAMES[c]}")
        got = _parse_number(text, pos, limit)
        if got is None:
            raise _Fail(pos, f"expected {LETTER_NAMES[c]}")
        return got

    if c in "khyY" or (c in "ML" and count <= 2):
        value, pos = number()
    if c == "G":
        got = _match_names(text, start, ERA_NAMES)
        if got is None:
            raise _Fail(pos, "expected era (AD or BC)")
        b.set(cal.ERA, got[0] % 2)
        return got[1]
    if c in "yY":
        if count <= 2 and pos - actual_start == 2 and text[actual_start].isdigit() and text[actual_start + 1].isdigit():
            ambiguous = century_start_year % 100
            amb[0] = value == ambiguous
            value += (century_start_year // 100) * 100 + (100 if value < ambiguous else 0)
        b.set(cal.YEAR if c == "y" else cal.WEEK_YEAR, value)
        return pos
    if c in "ML":
        if count <= 2:
            b.set(cal.MONTH, value - 1)
            return pos
        got = _match_names(text, start, MONTHS) or _match_names(text, start, SHORT_MONTHS)
        if got is None:
            raise _Fail(pos, "expected a month name")
        b.set(cal.MONTH, got[0])
        return got[1]
    if c == "k":
        if not 1 <= value <= 24:
            raise _Fail(actual_start, f"hour {value} is not in 1-24")
        b.set(cal.HOUR_OF_DAY, 0 if value == 24 else value)
        return pos
    if c == "E":
        got = _match_names(text, start, WEEKDAYS, 1) or _match_names(text, start, SHORT_WEEKDAYS, 1)
        if got is None:
            raise _Fail(pos, "expected a day name")
        b.set(cal.DAY_OF_WEEK, got[0])
        return got[1]
    if c == "a":
        got = _match_names(text, start, AM_PM)
        if got is None:
            raise _Fail(pos, "expected AM or PM")
        b.set(cal.AM_PM, got[0])
        return got[1]
    if c == "h":
        if not 1 <= value <= 12:
            raise _Fail(actual_start, f"hour {value} is not in 1-12")
        b.set(cal.HOUR, 0 if value == 12 else value)
        return pos
    if c in "zZ":
        return _sub_parse_zone(text, start, pos, b)
    if c == "X":
        if pos >= n:
            raise _Fail(pos, "expected a time zone offset")
        ch = text[pos]
        if ch == "Z":
            b.set(cal.ZONE_OFFSET, 0)
            b.set(cal.DST_OFFSET, 0)
            return pos + 1
        if ch not in "+-":
            raise _Fail(pos, "expected 'Z', '+' or '-' for the time zone")
        return _numeric_zone(text, pos + 1, 1 if ch == "+" else -1, count, count == 3, b)
    value, pos = number()
    if c == "u":
        b.set(cal.DAY_OF_WEEK, 1 if value == 7 else (value + 1 if 1 <= value <= 6 else value))
    else:
        b.set(_FIELD_OF[c], value)
    return pos


def _sub_parse_zone(text: str, start: int, pos: int, b: _Builder) -> int:
    n = len(text)
    if pos >= n:
        raise _Fail(pos, "expected a time zone")
    ch = text[pos]
    if ch in "+-":
        return _numeric_zone(text, pos + 1, 1 if ch == "+" else -1, 0, False, b)
    if ch in "Gg" and n - start >= 3 and _region_matches(text, start, "GMT"):
        pos = start + 3
        sign = 0
        if pos < n:
            sign = {"+": 1, "-": -1}.get(text[pos], 0)
        if sign == 0:
            b.set(cal.ZONE_OFFSET, 0)
            b.set(cal.DST_OFFSET, 0)
            return pos
        return _numeric_zone(text, pos + 1, sign, 0, True, b)
    return _zone_name(text, pos, b)


def parse_ms(elements: tuple[Element, ...], pattern: str, zone: JavaZone, text: str,
             century_start_ms: int, allow_gap: bool = False) -> tuple[int, int | None]:
    """Parse like SimpleDateFormat (strict) and require the whole text.

    Returns (epoch ms, offset ms when the text named an offset or zone, else None).
    Raises DateFormatError. With ``allow_gap``, a local time in a DST gap is pushed forward by
    the gap (what lenient SimpleDateFormat does) instead of being rejected.
    """
    b = _Builder(zone)
    amb = [False]
    std, dst = zone.offsets_at(century_start_ms)
    century_year = cal.fields_from_local_ms(century_start_ms + std + dst)[cal.YEAR]
    pos = 0
    try:
        for idx, el in enumerate(elements):
            if isinstance(el, Literal):
                for ch in el.text:
                    if pos >= len(text) or text[pos] != ch:
                        found = "the end of the text" if pos >= len(text) else repr(text[pos])
                        raise _Fail(pos, f"expected {ch!r}, found {found}")
                    pos += 1
                continue
            nxt = elements[idx + 1] if idx + 1 < len(elements) else None
            obey = isinstance(nxt, Field) and nxt.numeric
            pos = _sub_parse(text, pos, el, obey, b, amb, century_year)
    except _Fail as fail:
        raise DateFormatError(fail.reason, pattern=pattern, text=text, position=fail.position) from None
    if pos != len(text):
        raise DateFormatError("unexpected text after the date", pattern=pattern, text=text, position=pos)
    try:
        utc, offset = _establish(b, allow_gap)
        if amb[0] and utc < century_start_ms:
            b.value[cal.YEAR] += 100
            b.value[cal.WEEK_YEAR] += 100
            utc, offset = _establish(b, allow_gap)
    except cal.CalendarError as exc:
        raise DateFormatError(str(exc), pattern=pattern, text=text, position=pos) from None
    return utc, offset


def _establish(b: _Builder, allow_gap: bool) -> tuple[int, int | None]:
    local = cal.local_ms_from_fields(b.stamp, b.value)
    has_zone, has_dst = b.stamp[cal.ZONE_OFFSET] > 0, b.stamp[cal.DST_OFFSET] > 0
    if has_zone and has_dst:
        total = b.value[cal.ZONE_OFFSET] + b.value[cal.DST_OFFSET]
        return local - total, total
    std, dst, in_gap = b.zone.resolve_wall(local)
    if has_dst:
        dst = b.value[cal.DST_OFFSET]
    utc = local - std - dst
    if in_gap and not has_dst and not allow_gap:
        # Java pushes the time forward by the gap, then strict mode compares the fields the
        # pattern set: "2018-11-04" (a skipped midnight) passes, "02:30" on a spring-forward night fails.
        std_after, dst_after = b.zone.offsets_at(utc)
        try:
            cal.check_fields(b.stamp, b.value, utc + std_after + dst_after)
        except cal.CalendarError:
            raise cal.CalendarError(f"the local time does not exist in {b.zone.id} (skipped by a DST change)") from None
    return utc, (std + dst) if (has_dst or b.zone_named) else None
