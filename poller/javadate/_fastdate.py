"""Fast paths for the common Java date patterns, equivalent to :mod:`poller.javadate._sdf` where they apply.

A pattern qualifies when its fields are among yyyy, MM/M, dd/d, HH/H, hh/h, mm/m, ss/s, SSS,
E/EEEE, MMM/MMMM, a, X/XX/XXX and Z, separated by literals. The parser is a regular
expression that accepts only the canonical text of such a pattern (exact digit counts, ASCII
digits, no extra spaces); every value it accepts means the same to SimpleDateFormat. Anything
it cannot settle with certainty (no match, years before 1901, an impossible date, a wall time
in a DST gap, a weekday that disagrees) returns ``None`` and the caller asks the reference
engine, which gives the JDK's answer or its error. The formatter is generated Python code
over ``datetime`` fields, used for years 1901..9999 where Java's and Python's zone data agree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo

from poller.javadate._sdf import AM_PM, MONTHS, SHORT_MONTHS, SHORT_WEEKDAYS, WEEKDAYS, Element, Field, Literal

__all__ = ["build_parser", "build_formatter"]

UTC = timezone.utc
_NAMES = {
    "E": {n.lower(): i for i, n in enumerate(WEEKDAYS) if n} | {n.lower(): i for i, n in enumerate(SHORT_WEEKDAYS) if n},
    "M": {n.lower(): i + 1 for i, n in enumerate(MONTHS)} | {n.lower(): i + 1 for i, n in enumerate(SHORT_MONTHS)},
    "a": {"am": 0, "pm": 1},
}
_H_MIN = 13 * 3600
_H_MAX = 14 * 3600
_OFFSETS: dict[str, tzinfo] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # poller.javadate.zone.to_ms, inlined in the generated ms parsers
_ONE_MS = timedelta(milliseconds=1)

Parser = Callable[[str], "datetime | None"]
Formatter = Callable[[datetime], "str | None"]


def _group(el: Field, abutting: bool) -> str | None:
    c, n = el.letter, el.count
    if c == "y":
        return r"(\d{4})" if n == 4 else None
    if c in "MdHhms" and n <= 2 and not (c == "M" and n > 2):
        return rf"(\d{{{n}}})" if n == 2 or abutting else r"(\d{1,2})"
    if c == "M" and n in (3, 4):
        return r"([A-Za-z]+)"
    if c == "S":
        return r"(\d{3})" if n == 3 else None
    if c == "E":
        return r"([A-Za-z]+)"
    if c == "a":
        return r"([AaPp][Mm])"
    if c == "X":
        return (r"(Z|[+-]\d\d)", r"(Z|[+-]\d{4})", r"(Z|[+-]\d\d:\d\d)")[n - 1]
    if c == "Z":
        return r"([+-]\d{4})"
    return None


def build_parser(elements: tuple[Element, ...], tz: tzinfo, fixed: bool) -> Parser | None:
    """A fast parser for ``elements`` in zone ``tz``, or None when the pattern does not qualify."""
    parts: list[str] = []
    slots: list[str] = []
    for i, el in enumerate(elements):
        nxt = elements[i + 1] if i + 1 < len(elements) else None
        if isinstance(el, Literal):
            if any(ch.isdigit() for ch in el.text):
                return None
            prev = elements[i - 1] if i else None
            if el.text.startswith("E") and isinstance(prev, Field) and prev.numeric:
                return None  # DecimalFormat would read "14E3" as an exponent
            parts.append(re.escape(el.text))
            continue
        abutting = isinstance(nxt, Field) and nxt.numeric
        group = _group(el, abutting)
        if group is None:
            return None
        textual = el.letter in "Ea" or (el.letter == "M" and el.count >= 3)
        if textual and nxt is not None and not (isinstance(nxt, Literal) and not nxt.text[0].isalpha()):
            return None  # a following letter could change which name SimpleDateFormat picks
        key = "MT" if el.letter == "M" and el.count >= 3 else el.letter
        if key in slots or (key == "MT" and "M" in slots) or (key == "M" and "MT" in slots):
            return None  # a field twice: leave the conflict rules to the reference engine
        slots.append("Z" if key == "X" else key)
        parts.append(group)
    if "y" not in slots or not ({"M", "MT"} & set(slots)) or "d" not in slots:
        return None
    if "H" in slots and ("h" in slots or "a" in slots):
        return None
    regex = re.compile("".join(parts), re.ASCII)
    index = {key: i + 1 for i, key in enumerate(slots)}
    return _iso_parser(elements, tz, fixed) or _reordered_parser(elements, tz, fixed) or \
        _make_parser(regex, index, tz, fixed, rfc=_rfc_shaped(elements))


# EEE, dd MMM yyyy HH:mm:ss Z, the weekday optional: fields as (letter, count), a name's count
# as 3 and Z's (any count reads +HHMM) as 1; X is not here (it reads "Z" too)
_RFC_FIELDS = {("d", 2), ("M", 3), ("y", 4), ("H", 2), ("m", 2), ("s", 2), ("Z", 1)}


def _rfc_shaped(elements: tuple[Element, ...]) -> bool:
    fields = {(el.letter, 1 if el.letter == "Z" else min(el.count, 3) if el.letter in "EM" else el.count)
              for el in elements if isinstance(el, Field)}
    return sys.version_info >= (3, 11) and fields - {("E", 3)} == _RFC_FIELDS  # (3.11: fromisoformat reads +HHMM)


def _offset_tz(text: str) -> tzinfo | None:
    tz = _OFFSETS.get(text)
    if tz is not None:
        return tz
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        return None
    seconds = sign * (hours * 3600 + minutes * 60)
    if not -_H_MIN <= seconds <= _H_MAX:
        return None  # GregorianCalendar's ZONE_OFFSET range in strict mode
    tz = UTC if seconds == 0 else timezone(timedelta(seconds=seconds))
    if len(_OFFSETS) < 4096:
        _OFFSETS[text] = tz
    return tz


def _make_parser(regex: re.Pattern[str], index: dict[str, int], zone: tzinfo, fixed: bool, *,
                 rfc: bool = False) -> Parser:
    """Generate the parser's code for this field layout: no per-call branching on the pattern."""
    order = sorted(index, key=index.__getitem__)
    if rfc:
        return _exec_parser(_rfc_lines(order, "E" in index), match=regex.fullmatch, ZONE=zone,
                            MONTH2={name: f"{n:02d}" for name, n in _NAMES["M"].items()},
                            MIN_OFFSET=timedelta(hours=-13), MAX_OFFSET=timedelta(hours=14))
    lines = [
        *_groups_lines(order),
        "    year = int(g_y)",
        "    if not 1901 <= year < 9999:",
        "        return None",
    ]
    if "M" in index:
        lines.append("    month = int(g_M)")
    else:
        lines += ["    month = MONTHS.get(g_MT.lower())", "    if month is None:", "        return None"]
    if "H" in index:
        lines.append("    hour = int(g_H)")
    elif "h" in index:
        lines += ["    hour = int(g_h)", "    if not 1 <= hour <= 12:", "        return None", "    hour %= 12"]
        if "a" in index:
            lines.append("    hour += 12 * AMPM[g_a.lower()]")
    elif "a" in index:
        lines.append("    hour = 12 * AMPM[g_a.lower()]")
    else:
        lines.append("    hour = 0")
    if "Z" in index:
        lines += ["    tz = OFFSETS.get(g_Z) or offset_tz(g_Z)", "    if tz is None:", "        return None"]
    else:
        lines.append("    tz = ZONE")
    minute = "int(g_m)" if "m" in index else "0"
    second = "int(g_s)" if "s" in index else "0"
    micro = "int(g_S) * 1000" if "S" in index else "0"
    lines += [
        "    try:",
        # fold=1 matters only in a zone with overlaps (and costs half the constructor)
        f"        dt = datetime(year, month, int(g_d), hour, {minute}, {second}, {micro}, tz"
        + (")" if "Z" in index or fixed else ", fold=1)"),
        "    except ValueError:",
        "        return None",
    ]
    if "E" in index:
        lines += ["    if DAYS.get(g_E.lower()) != dt.isoweekday() % 7 + 1:", "        return None"]
    if "Z" not in index and not fixed:
        lines += _GAP_CHECK
    lines.append("    return dt")
    return _exec_parser(lines, match=regex.fullmatch, ZONE=zone)


def _groups_lines(order: list[str]) -> list[str]:
    """The generated parser's start: the regex's groups as ``g_<field>``, or None for no match."""
    return ["def parse(text):", "    m = match(text)", "    if m is None:", "        return None",
            f"    {', '.join('g_' + k for k in order)}, = m.groups()"]


def _fromiso_lines(argument: str) -> list[str]:
    """The generated parser's start for the regex-checked shapes read by fromisoformat(argument)."""
    return ["def parse(text):", "    if match(text) is None:", "        return None", "    try:",
            f"        dt = fromiso({argument})", "    except ValueError:", "        return None",
            "    if not 1901 <= dt.year < 9999:", "        return None"]


def _offset_s(zone: tzinfo) -> int:
    """A fixed zone's offset (seconds)."""
    return int(datetime(2000, 1, 1, tzinfo=zone).utcoffset().total_seconds())  # type: ignore[union-attr]


def _fixed_suffix(zone: tzinfo) -> str:
    """A fixed zone's offset as fromisoformat reads it (``+05:30``)."""
    sign, minutes = _minutes(_offset_s(zone))
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _rfc_lines(order: list[str], weekday: bool) -> list[str]:
    """RFC 1123 shaped patterns (``EEE, dd MMM yyyy HH:mm:ss Z``): the groups are put in ISO
    order and read by datetime.fromisoformat (3.11 reads +HHMM), instead of five int() and the
    datetime constructor."""
    lines = [
        *_groups_lines(order),
        "    month = MONTH2.get(g_MT.lower())",  # (fromisoformat would take +0560 for +06:00)
        "    if month is None or not '1901' <= g_y < '9999' or g_Z[3] > '5':",
        "        return None",
        "    try:",
        "        dt = fromiso(f'{g_y}-{month}-{g_d}T{g_H}:{g_m}:{g_s}{g_Z}')",
        "    except ValueError:",
        "        return None",
        "    if not MIN_OFFSET <= dt.utcoffset() <= MAX_OFFSET:",
        "        return None",
    ]
    if weekday:
        lines += ["    if DAYS.get(g_E.lower()) != dt.isoweekday() % 7 + 1:", "        return None"]
    lines.append(_RETURN_DT)
    return lines


# A wall time in a DST gap has two offsets that both fail the round trip: strict
# SimpleDateFormat rejects it, so the reference engine must answer.
_GAP_CHECK = [
    "    if dt.utcoffset() != dt.replace(fold=0).utcoffset():",
    "        if dt.astimezone(UTC).astimezone(ZONE).replace(fold=1) != dt:",
    "            return None",
    # An overlap (fold=1): a fixed offset, because PEP 495 makes such datetimes compare unequal
    # to the same instant in any other zone.
    "        return dt.astimezone(fixed_tz(dt.utcoffset()))",
]


def _iso_parser(elements: tuple[Element, ...], zone: tzinfo, fixed: bool) -> Parser | None:
    """ISO-8601 shaped patterns: check the text with a regex, build it with datetime.fromisoformat."""
    # Literals are marked with a leading quote so that 'Z' (a literal) differs from Z (a field).
    shape = [el.letter * el.count if isinstance(el, Field) else "'" + el.text for el in elements]
    if (shape[:5] != ["yyyy", "'-", "MM", "'-", "dd"] or shape[5:6] not in (["'T"], ["' "])
            or shape[6:11] != ["HH", "':", "mm", "':", "ss"]):
        return None
    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}" + re.escape(shape[5][1]) + r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    rest = shape[11:]
    if rest[:2] == ["'.", "SSS"]:
        regex += r"\.[0-9]{3}"
        rest = rest[2:]
    modern = sys.version_info >= (3, 11)  # fromisoformat reads Z and +0530 from 3.11 on
    strip_z = aware = False
    if rest == ["'Z"]:
        regex += "Z"
        strip_z = True
    elif rest == ["XXX"]:
        regex += r"(?:[+-][0-9]{2}:[0-5][0-9])" if not modern else r"(?:Z|[+-][0-9]{2}:[0-5][0-9])"
        aware = True
    elif rest == ["XX"] and modern:
        regex += r"(?:Z|[+-][0-9]{2}[0-5][0-9])"
        aware = True
    elif len(rest) == 1 and set(rest[0]) == {"Z"} and modern:
        regex += r"[+-][0-9]{2}[0-5][0-9]"
        aware = True
    elif rest:
        return None
    # fromisoformat can attach a fixed zone itself: cheaper than datetime.replace
    suffix = _fixed_suffix(zone) if not aware and fixed and modern else None
    argument = "text[:-1]" if strip_z else "text"
    if suffix is not None:
        argument = "text" if strip_z and suffix == "+00:00" else f"{argument} + {suffix!r}"
    lines = _fromiso_lines(argument)
    if aware:
        lines += ["    if not MIN_OFFSET <= dt.utcoffset() <= MAX_OFFSET:", "        return None"]
    elif suffix is None:
        lines.append("    dt = dt.replace(tzinfo=ZONE, fold=1)")
        if not fixed:
            lines += _GAP_CHECK
    lines.append("    return dt")
    parse = _exec_parser(lines, match=re.compile(regex, re.ASCII).fullmatch, ZONE=zone,
                         MIN_OFFSET=timedelta(hours=-13), MAX_OFFSET=timedelta(hours=14))
    if aware or suffix is not None:
        local = 23 if shape[11:13] == ["'.", "SSS"] else 19  # yyyy-MM-ddTHH:mm:ss[.SSS]
        known = {} if aware else {("Z" if strip_z else ""): _minutes_sign(_offset_s(zone)) * 60_000}
        parse.ms = _iso_ms(parse.ms, local, known, learn=aware)  # type: ignore[attr-defined]
    return parse


_NUMERIC = {"yyyy": r"[0-9]{4}", "MM": r"[0-9]{2}", "dd": r"[0-9]{2}", "HH": r"(?:[01][0-9]|2[0-3])",
            "mm": r"[0-5][0-9]", "ss": r"[0-5][0-9]", "SSS": r"[0-9]{3}"}


def _reordered_parser(elements: tuple[Element, ...], zone: tzinfo, fixed: bool) -> Parser | None:
    """Fixed-width numeric patterns in another order than ISO's (``MM/dd/yyyy HH:mm:ss``): the
    text is checked with a regex, its digits moved into ISO order by slicing, and read by
    datetime.fromisoformat (five times cheaper than a regex's groups through int() and datetime)."""
    pos = 0
    where: dict[str, int] = {}
    regex = ""
    for el in elements:
        if isinstance(el, Literal):
            if any(ch.isdigit() for ch in el.text):
                return None
            regex += re.escape(el.text)
            pos += len(el.text)
            continue
        key = el.letter * el.count
        if key not in _NUMERIC or key in where:
            return None
        where[key] = pos
        regex += _NUMERIC[key]
        pos += el.count
    if not {"yyyy", "MM", "dd"} <= where.keys() or ("SSS" in where and "ss" not in where) \
            or ("ss" in where and "mm" not in where) or ("mm" in where and "HH" not in where):
        return None

    def piece(key: str, default: str, width: int = 0) -> str:
        return f"{{text[{where[key]}:{where[key] + (width or len(key))}]}}" if key in where else default

    if "ss" in where and where["mm"] == where["HH"] + 3 and where["ss"] == where["mm"] + 3 \
            and _text_at(elements, where["HH"] + 2) == _text_at(elements, where["mm"] + 2) == ":":
        clock = piece("HH", "", 8)  # HH:mm:ss in one slice
    else:
        clock = f"{piece('HH', '00')}:{piece('mm', '00')}:{piece('ss', '00')}"
    iso = (f"{piece('yyyy', '')}-{piece('MM', '')}-{piece('dd', '')}T{clock}"
           + (f".{piece('SSS', '')}" if "SSS" in where else ""))
    if fixed:  # fromisoformat attaches a fixed zone itself: datetime.replace costs twice the parse
        iso += _fixed_suffix(zone)
    lines = _fromiso_lines(f"f{iso!r}")
    if not fixed:
        lines.append("    dt = dt.replace(tzinfo=ZONE, fold=1)")
        lines += _GAP_CHECK
    lines.append(_RETURN_DT)
    return _exec_parser(lines, match=re.compile(regex, re.ASCII).fullmatch, ZONE=zone)


def _text_at(elements: tuple[Element, ...], pos: int) -> str | None:
    """The literal character at ``pos`` of the pattern's canonical text, or None (a field)."""
    at = 0
    for el in elements:
        width = len(el.text) if isinstance(el, Literal) else el.count
        if at <= pos < at + width:
            return el.text[pos - at] if isinstance(el, Literal) else None
        at += width
    return None


def _minutes_sign(seconds: int) -> int:
    """The zone's offset in whole minutes, signed (as the suffix given to fromisoformat says)."""
    sign, minutes = _minutes(seconds)
    return -minutes if sign == "-" else minutes


_SECOND_MS = {f":{s:02d}": s * 1000 for s in range(60)}  # ":ss" -> its ms (the regex's :[0-5][0-9])
_FRACTION_MS = {f".{n:03d}": n for n in range(1000)}  # ".SSS" -> its ms (the regex's \.[0-9]{3})
_MINUTES_KEPT = 8192  # per parser: "yyyy-MM-ddTHH:mm" -> local ms, about 1 MB when full


def _iso_ms(general: Callable[[str], int | None], local: int, offsets: dict[str, int], *,
            learn: bool) -> Callable[[str], int | None]:
    """``general`` (an ISO parser's ms form), cheaper: the local part is read naive, and the
    suffix's offset comes from ``offsets`` (suffix -> ms to subtract), learnt from ``general``'s
    own answers when ``learn``; a suffix not known yet goes through ``general``.

    A page's stamps share few minutes, so the local ms of each minute read ("yyyy-MM-ddTHH:mm")
    is kept, and a text of a kept minute is settled by four lookups: the minute, ":ss", ".SSS"
    (when the pattern has it) and the suffix. Each lookup accepts exactly what its piece of the
    regex accepts, and the minute was accepted whole (regex, year range, a real date: the
    seconds and suffix never change those), so such a text is one the long way accepts too,
    with the same instant; anything else takes the long way. Half the cost of the long way."""
    match = general.__globals__["match"]
    fromiso = datetime.fromisoformat
    naive_epoch = datetime(1970, 1, 1)
    minutes: dict[str, int] = {}
    minute_get, second_get, fraction_get, offset_get = minutes.get, _SECOND_MS.get, _FRACTION_MS.get, offsets.get

    def long_way(text: str) -> int | None:
        if match(text) is None:
            return None
        offset = offsets.get(text[local:])
        if offset is None:
            ms = general(text)
            if ms is not None and learn and len(offsets) < 4096:
                offsets[text[local:]] = fromiso(text).utcoffset() // _ONE_MS
            return ms
        if not "1901" <= text[:4] < "9999":  # four ASCII digits: the same as 1901 <= year < 9999
            return None
        try:
            x = fromiso(text[:local]) - naive_epoch
        except ValueError:
            return None
        local_ms = (x.days * 86400 + x.seconds) * 1000 + x.microseconds // 1000
        if len(minutes) >= _MINUTES_KEPT:
            minutes.clear()
        minutes[text[:16]] = local_ms - _SECOND_MS[text[16:19]] - (_FRACTION_MS[text[19:23]] if local == 23 else 0)
        return local_ms - offset

    if local == 23:  # yyyy-MM-ddTHH:mm:ss.SSS
        def parse_ms(text: str) -> int | None:
            base = minute_get(text[:16])
            if base is not None:
                second, fraction, offset = second_get(text[16:19]), fraction_get(text[19:23]), offset_get(text[23:])
                if second is not None and fraction is not None and offset is not None:
                    return base + second + fraction - offset
            return long_way(text)
    else:  # yyyy-MM-ddTHH:mm:ss
        def parse_ms(text: str) -> int | None:
            base = minute_get(text[:16])
            if base is not None:
                second, offset = second_get(text[16:19]), offset_get(text[19:])
                if second is not None and offset is not None:
                    return base + second - offset
            return long_way(text)

    return parse_ms


_RETURN_DT = "    return dt"
_RETURN_FIXED = "        return dt.astimezone(fixed_tz(dt.utcoffset()))"


def _exec_parser(lines: list[str], **extra: object) -> Parser:
    """The parser, with ``.ms``: the same code returning ``to_ms`` of its result (or None)."""
    parse = _exec("\n".join(lines) + "\n", "parse", **extra)
    ms_lines = [
        "    return (dt - EPOCH) // ONE_MS" if line == _RETURN_DT
        else "        return (dt.astimezone(fixed_tz(dt.utcoffset())) - EPOCH) // ONE_MS" if line == _RETURN_FIXED
        else line
        for line in lines
    ]
    parse.ms = _exec("\n".join(ms_lines) + "\n", "parse", **extra)  # type: ignore[attr-defined]
    return parse


def _exec(src: str, name: str, **extra: object) -> Callable:
    namespace: dict[str, object] = {
        "datetime": datetime, "UTC": UTC, "MONTHS": _NAMES["M"], "DAYS": _NAMES["E"], "AMPM": _NAMES["a"],
        "OFFSETS": _OFFSETS, "offset_tz": _offset_tz, "fromiso": datetime.fromisoformat, "fixed_tz": timezone,
        "EPOCH": _EPOCH, "ONE_MS": _ONE_MS,
    }
    namespace.update(extra)
    exec(compile(src, f"<javadate {name}>", "exec"), namespace)  # noqa: S102 - code built above
    return namespace[name]  # type: ignore[return-value]


def build_formatter(elements: tuple[Element, ...], tz: tzinfo) -> Formatter | None:
    """A fast formatter (generated f-string code), or None when the pattern does not qualify."""
    pieces: list[str] = []
    need_offset = False
    for el in elements:
        if isinstance(el, Literal):
            pieces.append(el.text.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}")
                          .replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r"))
            continue
        c, n = el.letter, el.count
        if c == "y":
            pieces.append("{l.year % 100:02d}" if n == 2 else f"{{l.year:0{n}d}}")
        elif c == "M":
            pieces.append("{LONG_M[l.month - 1]}" if n >= 4 else "{SHORT_M[l.month - 1]}" if n == 3
                          else f"{{l.month:0{n}d}}")
        elif c in "dHms":
            attr = {"d": "day", "H": "hour", "m": "minute", "s": "second"}[c]
            pieces.append(f"{{l.{attr}:0{n}d}}")
        elif c == "h":
            pieces.append(f"{{l.hour % 12 or 12:0{n}d}}")
        elif c == "S":
            pieces.append(f"{{l.microsecond // 1000:0{n}d}}")
        elif c == "E":
            pieces.append("{LONG_E[l.isoweekday() % 7 + 1]}" if n >= 4 else "{SHORT_E[l.isoweekday() % 7 + 1]}")
        elif c == "a":
            pieces.append("{AMPM[l.hour >= 12]}")
        elif c == "X":
            need_offset = True
            pieces.append(f"{{iso{n}(o)}}")
        elif c == "Z":
            need_offset = True
            pieces.append("{rfc(o)}")
        else:
            return None
    body = '"'.join(("f", "".join(pieces), ""))
    src = "def fmt(dt):\n    l = dt.astimezone(TZ)\n    if not 1901 <= l.year < 9999:\n        return None\n"
    if need_offset:
        src += "    o = int(l.utcoffset().total_seconds())\n"
    src += f"    return {body}\n"
    namespace = {
        "TZ": tz, "LONG_M": MONTHS, "SHORT_M": SHORT_MONTHS, "LONG_E": WEEKDAYS, "SHORT_E": SHORT_WEEKDAYS,
        "AMPM": AM_PM, "iso1": _iso1, "iso2": _iso2, "iso3": _iso3, "rfc": _rfc,
    }
    exec(compile(src, "<javadate formatter>", "exec"), namespace)  # noqa: S102 - code built above
    return namespace["fmt"]


def _minutes(seconds: int) -> tuple[str, int]:
    """Java's truncation toward zero: the sign of less than a minute is '+'."""
    m = abs(seconds) // 60
    return ("-" if seconds < 0 and m else "+"), m


def _iso1(seconds: int) -> str:
    if seconds == 0:
        return "Z"
    sign, m = _minutes(seconds)
    return f"{sign}{m // 60:02d}"


def _iso2(seconds: int) -> str:
    if seconds == 0:
        return "Z"
    sign, m = _minutes(seconds)
    return f"{sign}{m // 60:02d}{m % 60:02d}"


def _iso3(seconds: int) -> str:
    if seconds == 0:
        return "Z"
    sign, m = _minutes(seconds)
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


def _rfc(seconds: int) -> str:
    sign, m = _minutes(seconds)
    return f"{sign}{m // 60:02d}{m % 60:02d}"
