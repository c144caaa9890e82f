"""Unit tests for the public API of poller.javadate, beyond the JDK vectors.

Every expected value below that is a SimpleDateFormat result (format text, parse instant,
accept/reject) was produced by OpenJDK 17.0.15 (``new SimpleDateFormat(pattern, Locale.US)``,
``setTimeZone(TimeZone.getTimeZone(zone))``, ``setLenient(false)``, two-digit-year start pinned
to 1946-01-01T00:00Z unless a test says otherwise) and is written out literally: no test needs
Java. Where SimpleDateFormat accepts a text without consuming all of it, the expected result
here is an error (poller requires the whole text; see tests/data/javadates/NOTES.md item 1).

Behaviour that is poller's own (zone ids Java would not accept, ``milliseconds``,
``parse_lenient``) is tested against the requirements of the issue.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from poller import javadate
from poller.javadate import DateFormat, DateFormatError, compile, parse_zone
from poller.javadate.zone import ZoneError

UTC = timezone.utc
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Instants the tables refer to.
LEAP = datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC)  # a Thursday, week 9, day 60
MIDNIGHT = datetime(2024, 2, 29, 0, 0, 0, 5000, tzinfo=UTC)
JULY = datetime(2023, 7, 14, 9, 8, 7, 56000, tzinfo=UTC)  # a Friday, the 2nd Friday of July
WEEK_YEAR_EDGE = datetime(2024, 12, 29, 12, 0, tzinfo=UTC)  # a Sunday in week 1 of week-year 2025
INSTANTS = {"leap": LEAP, "midnight": MIDNIGHT, "july": JULY, "weekyear": WEEK_YEAR_EDGE}


def iso(text: str) -> datetime:
    """An aware datetime from ISO text; 'Z' means UTC (fromisoformat only accepts it from 3.11)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def at(dt: datetime) -> datetime:
    """The instant of ``dt`` in UTC.

    Compare instants, never aware datetimes in different zones with ``==``: by PEP 495 a
    datetime in a repeated (DST overlap) hour compares unequal to every datetime in another
    zone, even to the same instant.
    """
    return dt.astimezone(UTC)


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


# --------------------------------------------------------------------------- formatting letters

# (pattern, zone, instant label, expected text)
FORMAT_LETTERS = [
    # G: era, any count is the short form
    ("G", "UTC", "leap", "AD"),
    ("GGGG", "UTC", "leap", "AD"),
    ("GGGGG", "UTC", "leap", "AD"),
    # y: year; yy is the last two digits, other counts pad
    ("y", "UTC", "leap", "2024"),
    ("yy", "UTC", "leap", "24"),
    ("yy", "UTC", "july", "23"),
    ("yyy", "UTC", "leap", "2024"),
    ("yyyy", "UTC", "leap", "2024"),
    ("yyyyy", "UTC", "leap", "02024"),
    # Y: week year (US weeks: start Sunday, week 1 holds Jan 1)
    ("YYYY", "UTC", "leap", "2024"),
    ("YYYY", "UTC", "weekyear", "2025"),
    ("yyyy", "UTC", "weekyear", "2024"),
    ("YY", "UTC", "weekyear", "25"),
    # M and L: month, numeric up to 2 letters, text from 3
    ("M", "UTC", "leap", "2"),
    ("MM", "UTC", "leap", "02"),
    ("MMM", "UTC", "leap", "Feb"),
    ("MMMM", "UTC", "leap", "February"),
    ("MMMMM", "UTC", "leap", "February"),
    ("MMM", "UTC", "weekyear", "Dec"),
    ("L", "UTC", "july", "7"),
    ("LL", "UTC", "leap", "02"),
    ("LLL", "UTC", "leap", "Feb"),
    ("LLLL", "UTC", "july", "July"),
    # w: week of year, W: week of month
    ("w", "UTC", "leap", "9"),
    ("ww", "UTC", "leap", "09"),
    ("w", "UTC", "weekyear", "1"),
    ("w", "UTC", "july", "28"),
    ("W", "UTC", "leap", "5"),
    ("W", "UTC", "july", "3"),
    # D: day of year, d: day of month, F: day of week in month
    ("D", "UTC", "leap", "60"),
    ("DDD", "UTC", "leap", "060"),
    ("D", "UTC", "weekyear", "364"),
    ("d", "UTC", "leap", "29"),
    ("d", "UTC", "july", "14"),
    ("dd", "UTC", "leap", "29"),
    ("ddd", "UTC", "leap", "029"),
    ("F", "UTC", "leap", "5"),
    ("F", "UTC", "july", "2"),
    # E: day name, u: day number (1 = Monday)
    ("E", "UTC", "leap", "Thu"),
    ("EEE", "UTC", "leap", "Thu"),
    ("EEEE", "UTC", "leap", "Thursday"),
    ("EEEEE", "UTC", "leap", "Thursday"),
    ("EEEE", "UTC", "july", "Friday"),
    ("u", "UTC", "leap", "4"),
    ("uu", "UTC", "leap", "04"),
    ("u", "UTC", "weekyear", "7"),
    # a, H, k, K, h
    ("a", "UTC", "leap", "PM"),
    ("a", "UTC", "midnight", "AM"),
    ("H", "UTC", "midnight", "0"),
    ("HH", "UTC", "midnight", "00"),
    ("HH", "UTC", "leap", "12"),
    ("k", "UTC", "leap", "12"),
    ("kk", "UTC", "midnight", "24"),
    ("K", "UTC", "leap", "0"),
    ("KK", "UTC", "midnight", "00"),
    ("K", "UTC", "july", "9"),
    ("h", "UTC", "leap", "12"),
    ("hh", "UTC", "midnight", "12"),
    ("h", "UTC", "july", "9"),
    # m, s
    ("m", "UTC", "july", "8"),
    ("mm", "UTC", "july", "08"),
    ("mm", "UTC", "leap", "34"),
    ("s", "UTC", "july", "7"),
    ("ss", "UTC", "leap", "56"),
    # S: milliseconds as a number, zero-padded to the count (not a fraction)
    ("S", "UTC", "leap", "789"),
    ("S", "UTC", "midnight", "5"),
    ("SS", "UTC", "july", "56"),
    ("SSS", "UTC", "midnight", "005"),
    ("SSSS", "UTC", "leap", "0789"),
    ("SSSSSS", "UTC", "midnight", "000005"),
    # z: zone names (1-3 letters short, 4+ long)
    ("z", "UTC", "leap", "UTC"),
    ("zzzz", "UTC", "leap", "Coordinated Universal Time"),
    ("z", "America/Los_Angeles", "leap", "PST"),
    ("zzz", "America/Los_Angeles", "july", "PDT"),
    ("zzzz", "America/Los_Angeles", "leap", "Pacific Standard Time"),
    ("zzzzz", "America/Los_Angeles", "july", "Pacific Daylight Time"),
    ("z", "PST", "july", "PDT"),
    ("z", "America/New_York", "july", "EDT"),
    ("z", "Europe/Berlin", "leap", "CET"),
    ("z", "Europe/Berlin", "july", "CEST"),
    ("z", "Asia/Kolkata", "leap", "IST"),
    ("zzzz", "Asia/Kolkata", "leap", "India Standard Time"),
    ("z", "GMT+05:30", "leap", "GMT+05:30"),
    ("z", "GMT", "leap", "GMT"),
    # Z: RFC 822 offset, any count
    ("Z", "UTC", "leap", "+0000"),
    ("Z", "America/Los_Angeles", "leap", "-0800"),
    ("Z", "America/Los_Angeles", "july", "-0700"),
    ("Z", "Asia/Kolkata", "leap", "+0530"),
    ("ZZZZ", "Asia/Kolkata", "leap", "+0530"),
    ("ZZZZZ", "Australia/Lord_Howe", "leap", "+1100"),
    ("Z", "Australia/Lord_Howe", "july", "+1030"),
    # X: ISO 8601 offset; one letter drops the minutes
    ("X", "UTC", "leap", "Z"),
    ("XX", "UTC", "leap", "Z"),
    ("XXX", "UTC", "leap", "Z"),
    ("X", "America/Los_Angeles", "leap", "-08"),
    ("XX", "America/Los_Angeles", "leap", "-0800"),
    ("XXX", "America/Los_Angeles", "leap", "-08:00"),
    ("X", "Asia/Kolkata", "leap", "+05"),
    ("XX", "Asia/Kolkata", "leap", "+0530"),
    ("XXX", "Asia/Kolkata", "leap", "+05:30"),
    ("XXX", "Australia/Lord_Howe", "july", "+10:30"),
]


@pytest.mark.parametrize(
    ("pattern", "zone", "label", "expected"),
    FORMAT_LETTERS,
    ids=[f"{p}@{z}@{label}" for p, z, label, _ in FORMAT_LETTERS],
)
def test_format_each_letter(pattern: str, zone: str, label: str, expected: str) -> None:
    assert compile(pattern, zone).format(INSTANTS[label]) == expected


# (pattern, zone, instant label, expected text): whole patterns, rendered in the format's zone
FORMAT_PATTERNS = [
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "Asia/Kolkata", "leap", "2024-02-29T18:04:56.789+05:30"),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "UTC", "leap", "2024-02-29T12:34:56.789Z"),
    ("yyyy-MM-dd'T'HH:mm:ssX", "Asia/Kolkata", "leap", "2024-02-29T18:04:56+05"),
    ("EEE, dd MMM yyyy HH:mm:ss Z", "America/New_York", "july", "Fri, 14 Jul 2023 05:08:07 -0400"),
    ("EEE, dd MMM yyyy HH:mm:ss Z", "UTC", "leap", "Thu, 29 Feb 2024 12:34:56 +0000"),
    ("dd-MMM-yyyy HH:mm:ss z", "Asia/Kolkata", "leap", "29-Feb-2024 18:04:56 IST"),
    ("EEE MMM dd HH:mm:ss zzz yyyy", "Europe/Berlin", "july", "Fri Jul 14 11:08:07 CEST 2023"),
    ("MM/dd/yyyy hh:mm a", "America/Los_Angeles", "leap", "02/29/2024 04:34 AM"),
    ("MMM d, yyyy h:mm:ss a", "UTC", "midnight", "Feb 29, 2024 12:00:00 AM"),
    ("yyyy-MM-dd HH:mm:ss", "GMT-08:00", "leap", "2024-02-29 04:34:56"),
    ("yyyyMMddHHmmss", "UTC", "leap", "20240229123456"),
    ("yyyy-MM-dd EEE", "Pacific/Kiritimati", "leap", "2024-03-01 Fri"),  # +14:00: the next day
    ("yyyy-MM-dd EEE", "Pacific/Pago_Pago", "midnight", "2024-02-28 Wed"),  # -11:00: the day before
]


@pytest.mark.parametrize(
    ("pattern", "zone", "label", "expected"),
    FORMAT_PATTERNS,
    ids=[f"{p}@{z}@{label}" for p, z, label, _ in FORMAT_PATTERNS],
)
def test_format_whole_patterns_in_the_format_zone(pattern: str, zone: str, label: str, expected: str) -> None:
    assert compile(pattern, zone).format(INSTANTS[label]) == expected


def test_format_converts_any_aware_datetime_to_the_format_zone() -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss.SSS", "UTC")
    kolkata = LEAP.astimezone(ZoneInfo("Asia/Kolkata"))
    fixed = LEAP.astimezone(timezone(timedelta(hours=-3, minutes=-30)))
    assert fmt.format(kolkata) == fmt.format(fixed) == fmt.format(LEAP) == "2024-02-29 12:34:56.789"


def test_format_truncates_microseconds_to_milliseconds() -> None:
    fmt = compile("HH:mm:ss.SSS")
    assert fmt.format(datetime(2024, 2, 29, 12, 34, 56, 789999, tzinfo=UTC)) == "12:34:56.789"
    # before the epoch the instant is floored too (Date holds whole milliseconds)
    assert fmt.format(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == "23:59:59.999"


def test_format_honours_fold_of_the_input() -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss z", "America/New_York")
    ny = ZoneInfo("America/New_York")
    assert fmt.format(datetime(2024, 11, 3, 1, 30, tzinfo=ny, fold=0)) == "2024-11-03 01:30:00 EDT"
    assert fmt.format(datetime(2024, 11, 3, 1, 30, tzinfo=ny, fold=1)) == "2024-11-03 01:30:00 EST"


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> None:
        return None

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "?"


@pytest.mark.parametrize(
    "value",
    [datetime(2024, 2, 29, 12, 34, 56), datetime(2024, 2, 29, tzinfo=_NoOffset())],
    ids=["naive", "tzinfo-without-offset"],
)
@pytest.mark.parametrize("pattern", ["yyyy-MM-dd HH:mm:ss", "milliseconds"])
def test_format_rejects_naive_datetimes(pattern: str, value: datetime) -> None:
    with pytest.raises(ValueError, match="aware"):
        compile(pattern).format(value)


# --------------------------------------------------------------------------- quoting

# (pattern, expected text of LEAP in UTC)
QUOTING_FORMAT = [
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "2024-02-29T12:34:56Z"),
    ("h 'o''clock' a", "12 o'clock PM"),
    ("''yyyy''", "'2024'"),
    ("''''", "''"),
    ("'''T'''", "'T'"),
    ("'It''s' yyyy", "It's 2024"),
    ("'yyyy-MM-dd'", "yyyy-MM-dd"),
    ("'Year: 'yyyy", "Year: 2024"),
    ("yyyy'' MM", "2024' 02"),
    ("yyyy''MM", "2024'02"),
    ("yyyy'-'MM'-'dd", "2024-02-29"),
    ("yyyy''", "2024'"),
    ("''", "'"),
    ("", ""),
    ("yyyy[MM]", "2024[02]"),  # brackets are plain literals in SimpleDateFormat
    ("yyyy#MM{dd}", "2024#02{29}"),
    ("yyyy\u5e74MM\u6708dd\u65e5", "2024\u5e7402\u670829\u65e5"),  # non-ASCII letters are literals
]


@pytest.mark.parametrize(("pattern", "expected"), QUOTING_FORMAT, ids=[p or "<empty>" for p, _ in QUOTING_FORMAT])
def test_quoting_format(pattern: str, expected: str) -> None:
    assert compile(pattern).format(LEAP) == expected


# (pattern, text, expected UTC instant); fields the pattern lacks come from 1970-01-01T00:00
QUOTING_PARSE = [
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z"),
    ("hh 'o''clock' a", "12 o'clock PM", "1970-01-01T12:00:00Z"),
    ("''yyyy''", "'2024'", "2024-01-01T00:00:00Z"),
    ("'Year' yyyy", "Year 2024", "2024-01-01T00:00:00Z"),
    ("yyyy'-'MM'-'dd", "2024-02-29", "2024-02-29T00:00:00Z"),
    ("yyyy''MM", "2024'02", "2024-02-01T00:00:00Z"),
    ("yyyy[MM]", "2024[02]", "2024-02-01T00:00:00Z"),
    ("", "", "1970-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"), QUOTING_PARSE, ids=[t or "<empty>" for _, t, _ in QUOTING_PARSE]
)
def test_quoting_parse(pattern: str, text: str, expected: str) -> None:
    assert at(compile(pattern).parse(text)) == iso(expected)


# (pattern, text, position): quoted literals are case-sensitive and must be there
QUOTING_PARSE_ERRORS = [
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "2024-02-29t12:34:56Z", 10),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "2024-02-29T12:34:56z", 19),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "2024-02-29T12:34:56", 19),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "2024-02-29T12:34:56+00:00", 19),
    ("'Year' yyyy", "year 2024", 0),
    ("''yyyy''", "2024", 0),
    ("h 'o''clock' a", "12 oclock PM", 4),
]


@pytest.mark.parametrize(
    ("pattern", "text", "position"), QUOTING_PARSE_ERRORS, ids=[t for _, t, _ in QUOTING_PARSE_ERRORS]
)
def test_quoting_parse_errors(pattern: str, text: str, position: int) -> None:
    with pytest.raises(DateFormatError) as info:
        compile(pattern).parse(text)
    assert info.value.position == position


# --------------------------------------------------------------------------- parsing letters

# (pattern, zone, text, expected UTC instant)
PARSE_LETTERS = [
    # G
    ("G yyyy-MM-dd", "UTC", "AD 2024-02-29", "2024-02-29T00:00:00Z"),
    ("G yyyy-MM-dd", "UTC", "ad 2024-02-29", "2024-02-29T00:00:00Z"),
    ("G yyyy-MM-dd", "UTC", "Anno Domini 2024-02-29", "2024-02-29T00:00:00Z"),
    # y
    ("y-M-d", "UTC", "2024-2-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd", "UTC", "2024-2-9", "2024-02-09T00:00:00Z"),
    ("yyyy-MM-dd", "UTC", " 2024-02-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd", "UTC", "2024- 02-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd", "UTC", "\uff12\uff10\uff12\uff14-\uff10\uff12-\uff12\uff19", "2024-02-29T00:00:00Z"),
    ("yyyyMMdd", "UTC", "20240229", "2024-02-29T00:00:00Z"),
    ("yyyyMMddHHmmss", "UTC", "20240229123456", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd", "UTC", "1582-10-04", "1582-10-14T00:00:00Z"),  # Julian before the cutover
    ("yyyy-MM-dd", "UTC", "1582-10-15", "1582-10-15T00:00:00Z"),
    ("yyyy-MM-dd", "UTC", "1000-02-29", "1000-03-06T00:00:00Z"),
    # Y: week year alone gives the first day of that week year
    ("YYYY", "UTC", "2025", "2024-12-29T00:00:00Z"),
    ("YYYY-MM-dd", "UTC", "2024-02-29", "2023-12-31T00:00:00Z"),
    ("YYYY 'w'w u", "UTC", "2024 w9 4", "2024-02-29T00:00:00Z"),
    # M, L (text matches case-insensitively, short or long form)
    ("yyyy-MMM-dd", "UTC", "2024-Feb-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MMM-dd", "UTC", "2024-feb-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MMM-dd", "UTC", "2024-FEB-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MMM-dd", "UTC", "2024-February-29", "2024-02-29T00:00:00Z"),
    ("yyyy-MMMM-dd", "UTC", "2024-Feb-29", "2024-02-29T00:00:00Z"),
    ("yyyy-LLLL-dd", "UTC", "2024-February-29", "2024-02-29T00:00:00Z"),
    ("yyyy-LL-dd", "UTC", "2024-02-29", "2024-02-29T00:00:00Z"),
    # w, W, D, F
    ("yyyy 'week' w EEE", "UTC", "2024 week 9 Thu", "2024-02-29T00:00:00Z"),
    ("yyyy-MM 'W'W EEE", "UTC", "2024-02 W5 Thu", "2024-02-29T00:00:00Z"),
    ("yyyy-DDD", "UTC", "2024-060", "2024-02-29T00:00:00Z"),
    ("yyyy-DDD", "UTC", "2024-366", "2024-12-31T00:00:00Z"),
    ("yyyy-MM F EEE", "UTC", "2024-02 5 Thu", "2024-02-29T00:00:00Z"),
    # d, E, u
    ("yyyy-MM-dd EEE", "UTC", "2024-02-29 Thu", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd EEE", "UTC", "2024-02-29 Thursday", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd EEE", "UTC", "2024-02-29 thu", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd EEEE", "UTC", "2024-02-29 Thu", "2024-02-29T00:00:00Z"),
    ("EEE, dd MMM yyyy", "UTC", "Thu, 29 Feb 2024", "2024-02-29T00:00:00Z"),
    ("yyyy-MM-dd u", "UTC", "2024-02-29 4", "2024-02-29T00:00:00Z"),
    # a, h, k, K, H
    ("yyyy-MM-dd hh:mm a", "UTC", "2024-02-29 12:34 PM", "2024-02-29T12:34:00Z"),
    ("yyyy-MM-dd hh:mm a", "UTC", "2024-02-29 12:34 AM", "2024-02-29T00:34:00Z"),
    ("yyyy-MM-dd hh:mm a", "UTC", "2024-02-29 01:34 pm", "2024-02-29T13:34:00Z"),
    ("yyyy-MM-dd h:mm a", "UTC", "2024-02-29 1:34 PM", "2024-02-29T13:34:00Z"),
    ("yyyy-MM-dd hh:mm", "UTC", "2024-02-29 12:34", "2024-02-29T00:34:00Z"),  # no 'a': AM
    ("yyyy-MM-dd kk:mm", "UTC", "2024-02-29 24:00", "2024-02-29T00:00:00Z"),  # same day
    ("yyyy-MM-dd kk:mm", "UTC", "2024-02-29 12:34", "2024-02-29T12:34:00Z"),
    ("yyyy-MM-dd KK:mm a", "UTC", "2024-02-29 00:34 PM", "2024-02-29T12:34:00Z"),
    ("yyyy-MM-dd KK:mm a", "UTC", "2024-02-29 11:34 AM", "2024-02-29T11:34:00Z"),
    ("HH:mm", "UTC", "12:34", "1970-01-01T12:34:00Z"),
    ("MM/dd", "UTC", "03/01", "1970-03-01T00:00:00Z"),
    # m, s, S (S is a count of milliseconds, not a fraction)
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "2024-02-29 12:34:56.789", "2024-02-29T12:34:56.789Z"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "2024-02-29 12:34:56.5", "2024-02-29T12:34:56.005Z"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "2024-02-29 12:34:56.0500", "2024-02-29T12:34:56.500Z"),
    ("yyyy-MM-dd HH:mm:ss.S", "UTC", "2024-02-29 12:34:56.789", "2024-02-29T12:34:56.789Z"),
    ("yyyy-MM-dd HH:mm:ss.SSSSSS", "UTC", "2024-02-29 12:34:56.000789", "2024-02-29T12:34:56.789Z"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "1969-12-31 23:59:59.999", "1969-12-31T23:59:59.999Z"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "9999-12-31 23:59:59.999", "9999-12-31T23:59:59.999Z"),
    # z: names (case-insensitive, with their own fixed meaning), GMT offsets, RFC 822 offsets
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 04:34:56 PST", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-07-01 04:34:56 PST", "2024-07-01T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-07-01 04:34:56 PDT", "2024-07-01T11:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-07-01 04:34:56 pdt", "2024-07-01T11:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 04:34:56 Pacific Standard Time", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 18:04:56 GMT+05:30", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 18:04:56 IST", "2024-02-29T16:04:56Z"),  # Israel!
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 12:34:56 UTC", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 12:34:56 utc", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 12:34:56 GMT", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 07:34:56 EST", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 13:34:56 CET", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 12:34:56 BST", "2024-02-29T11:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 18:04:56 +0530", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "America/New_York", "2024-02-29 12:34:56 EST", "2024-02-29T17:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss z", "America/New_York", "2024-11-03 01:30:00 EDT", "2024-11-03T05:30:00Z"),
    ("yyyy-MM-dd HH:mm:ss z", "America/New_York", "2024-11-03 01:30:00 EST", "2024-11-03T06:30:00Z"),
    ("yyyy-MM-dd HH:mm:ss zzzz", "UTC", "2024-02-29 23:34:56 Lord Howe Daylight Time", "2024-02-29T12:34:56Z"),
    # Z: RFC 822, and zone names as a fallback
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 18:04:56 +0530", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 04:34:56 -0800", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 12:34:56 -0000", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 12:34:56 GMT", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 04:34:56 PST", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 18:04:56 GMT+05:30", "2024-02-29T12:34:56Z"),
    # X
    ("yyyy-MM-dd'T'HH:mm:ssX", "UTC", "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssX", "UTC", "2024-02-29T17:34:56+05", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssX", "UTC", "2024-02-29T04:34:56-08", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssXX", "UTC", "2024-02-29T18:04:56+0530", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssXX", "UTC", "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "UTC", "2024-02-29T18:04:56+05:30", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "UTC", "2024-02-29T12:34:56-00:00", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "America/New_York", "2024-02-29T04:34:56-08:00", "2024-02-29T12:34:56Z"),
    # the format's zone applies when the text has no offset (also for a quoted 'Z')
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "America/New_York", "2024-02-29T12:34:56Z", "2024-02-29T17:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss", "GMT+05:30", "2024-02-29 18:04:56", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss", "GMT-08:00", "2024-02-29 04:34:56", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss", "GMT+5", "2024-02-29 17:34:56", "2024-02-29T12:34:56Z"),
    ("yyyy-MM-dd HH:mm:ss", "IST", "2024-02-29 18:04:56", "2024-02-29T12:34:56Z"),  # the zone id is India
    ("yyyy-MM-dd HH:mm:ss", "MST", "2024-07-01 05:00:00", "2024-07-01T12:00:00Z"),
    ("yyyy-MM-dd HH:mm:ss", "HST", "2024-07-01 02:00:00", "2024-07-01T12:00:00Z"),
    ("yyyy-MM-dd HH:mm:ss", "CST", "2024-07-01 07:00:00", "2024-07-01T12:00:00Z"),
    ("yyyy-MM-dd HH:mm:ss", "EST", "2024-03-10 02:30:00", "2024-03-10T07:30:00Z"),  # EST is fixed
    ("yyyy-MM-dd HH:mm:ss", "Pacific/Apia", "2011-12-29 12:00:00", "2011-12-29T22:00:00Z"),
    ("yyyy-MM-dd HH:mm:ss", "Pacific/Apia", "2011-12-31 12:00:00", "2011-12-30T22:00:00Z"),
]


@pytest.mark.parametrize(
    ("pattern", "zone", "text", "expected"),
    PARSE_LETTERS,
    ids=[f"{p}@{z}@{t}" for p, z, t, _ in PARSE_LETTERS],
)
def test_parse_each_letter(pattern: str, zone: str, text: str, expected: str) -> None:
    got = compile(pattern, zone).parse(text)
    assert got.tzinfo is not None
    assert at(got) == iso(expected)


# (pattern, zone, text, expected UTC offset of the returned datetime)
PARSE_RESULT_OFFSETS = [
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "America/New_York", "2024-02-29T18:04:56+05:30", hours(5.5)),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "America/New_York", "2024-02-29T12:34:56Z", hours(0)),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", "UTC", "2024-02-29T04:34:56.789-0800", hours(-8)),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-07-01 04:34:56 PST", hours(-8)),  # PST means -08:00 all year
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-07-01 04:34:56 PDT", hours(-7)),
    ("yyyy-MM-dd HH:mm:ss", "America/New_York", "2024-02-29 12:34:56", hours(-5)),
    ("yyyy-MM-dd HH:mm:ss", "America/New_York", "2024-07-01 12:34:56", hours(-4)),
    ("yyyy-MM-dd HH:mm:ss", "Asia/Kolkata", "2024-07-01 12:34:56", hours(5.5)),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "Australia/Lord_Howe", "2024-07-01T12:34:56Z", hours(10.5)),
    ("yyyy-MM-dd HH:mm:ss", "UTC", "2024-07-01 12:34:56", hours(0)),
]


@pytest.mark.parametrize(
    ("pattern", "zone", "text", "offset"),
    PARSE_RESULT_OFFSETS,
    ids=[f"{p}@{z}@{t}" for p, z, t, _ in PARSE_RESULT_OFFSETS],
)
def test_parse_offset_in_text_wins_else_format_zone(pattern: str, zone: str, text: str, offset: timedelta) -> None:
    got = compile(pattern, zone).parse(text)
    assert got.utcoffset() == offset
    # the wall clock of the result is the one written in the text
    wall = re.search(r"\d\d:\d\d:\d\d", text)
    assert wall is not None
    assert got.strftime("%H:%M:%S") == wall.group()


# (pattern, zone, text): SimpleDateFormat (strict) rejects these
PARSE_REJECTED = [
    ("yyyy-MM-dd", "UTC", "2023-02-29"),
    ("yyyy-MM-dd", "UTC", "2024-13-01"),
    ("yyyy-MM-dd", "UTC", "2024-02-30"),
    ("yyyy-MM-dd", "UTC", "1582-10-10"),  # skipped by the Julian-Gregorian cutover
    ("yyyy-MM-dd", "UTC", "-2024-02-29"),
    ("yyyy-MM-dd", "UTC", "+2024-02-29"),
    ("yyyy-MM-dd", "UTC", "2024 -02-29"),
    ("yyyy-MM-dd", "UTC", "2024-02--9"),
    ("yyyy-MM-dd", "UTC", ""),
    ("yyyy-MM-dd", "UTC", "2024-02"),
    ("yyyy-MM-dd", "UTC", "2024-02-"),
    ("yyyy-MMM-dd", "UTC", "2024-02-29"),
    ("yyyy-DDD", "UTC", "2023-366"),
    ("yyyy-MM-dd EEE", "UTC", "2024-02-29 Fri"),  # wrong weekday
    ("yyyy-MM-dd u", "UTC", "2024-02-29 5"),
    ("yyyy-MM-dd hh:mm a", "UTC", "2024-02-29 00:34 AM"),
    ("yyyy-MM-dd hh:mm a", "UTC", "2024-02-29 13:34 PM"),
    ("yyyy-MM-dd kk:mm", "UTC", "2024-02-29 00:00"),
    ("yyyy-MM-dd KK:mm a", "UTC", "2024-02-29 12:34 AM"),
    ("yyyy-MM-dd HH:mm", "UTC", "2024-02-29 24:00"),
    ("yyyy-MM-dd HH:mm", "UTC", "2024-02-29 23:60"),
    ("yyyy-MM-dd HH:mm:ss", "UTC", "2024-02-29 23:59:60"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "2024-02-29 12:34:56.1234"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "UTC", "2024-02-29 12:34:56"),
    ("yyyy-MM-dd HH:mm:ss.SSSSSS", "UTC", "2024-02-29 12:34:56.123456"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 12:34:56 Z"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 04:34:56 -08:00"),
    ("yyyy-MM-dd HH:mm:ss z", "UTC", "2024-02-29 04:34:56 America/Los_Angeles"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 18:04:56 +05:30"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 12:34:56 Z"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 04:34:56 -08"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 12:34:56 +2400"),
    ("yyyy-MM-dd HH:mm:ss Z", "UTC", "2024-02-29 12:34:56 +0060"),
    ("yyyy-MM-dd'T'HH:mm:ssX", "UTC", "2024-02-29T12:34:56z"),
    ("yyyy-MM-dd'T'HH:mm:ssXX", "UTC", "2024-02-29T18:04:56+05:30"),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "UTC", "2024-02-29T12:34:56+0000"),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "UTC", "2024-02-29T12:34:56+00"),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", "UTC", "2024-02-29T12:34:56UTC"),
    ("MM/dd", "UTC", "02/29"),  # 1970 has no Feb 29
    ("dd MMM yyyy", "UTC", "29  Feb 2024"),  # no space skipping before text fields
    ("dd MMM yyyy", "UTC", "29 Sept 2024"),
    ("yyyy-MM-dd", "Pacific/Apia", "2011-12-30"),  # a day that does not exist
]


@pytest.mark.parametrize(
    ("pattern", "zone", "text"),
    PARSE_REJECTED,
    ids=[f"{p}@{z}@{t}" for p, z, t in PARSE_REJECTED],
)
def test_parse_rejects_what_strict_simpledateformat_rejects(pattern: str, zone: str, text: str) -> None:
    with pytest.raises(DateFormatError) as info:
        compile(pattern, zone).parse(text)
    assert 0 <= info.value.position <= len(text)
    assert info.value.text == text
    assert info.value.pattern == pattern


# Instants a Python datetime cannot hold in UTC (before 0001-01-01T00:00Z or after
# 9999-12-31T23:59:59.999Z) raise DateFormatError (tests/test_javadate_vectors.py), never come
# back as another instant or as a datetime that cannot be converted to UTC.
@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        pytest.param("G yyyy-MM-dd", "BC 0044-03-15", id="bc"),
        pytest.param("yyyy-MM-dd HH:mm:ss.SSS", "0001-01-01 00:00:00.000", id="year-1-julian"),
        pytest.param("yyyy-MM-dd", "10000-01-01", id="year-10000"),
        pytest.param("yyyy-MM-dd'T'HH:mm:ssXXX", "0001-01-01T00:00:00+01:00", id="before-year-1-via-offset"),
        pytest.param("yyyy-MM-dd HH:mm:ss z", "9999-12-31 23:59:59 GMT-01:00", id="after-9999-via-zone-name"),
        pytest.param(
            "yyyy-MM-dd'T'HH:mm:ssXXX", "9999-12-31T23:59:59-01:00", id="after-9999-via-offset",
        ),
        pytest.param(
            "yyyy-MM-dd'T'HH:mm:ss.SSSZ", "9999-12-31T23:59:59.000-0100", id="after-9999-via-offset-Z",
        ),
        pytest.param(
            "yyyy-MM-dd HH:mm:ss Z", "9999-12-31 23:59:59 -0100", id="after-9999-via-offset-generic",
        ),
    ],
)
def test_parse_outside_datetime_range_raises(pattern: str, text: str) -> None:
    with pytest.raises(DateFormatError):
        compile(pattern).parse(text)


# (aware datetime, zone, pattern, JDK 17 text). Dates before 1582-10-15 are Julian.
FORMAT_EDGES = [
    pytest.param(datetime(1, 1, 1, 1, tzinfo=UTC), "UTC", "yyyy-MM-dd HH:mm", "0001-01-03 01:00", id="year-1-utc"),
    pytest.param(datetime(1, 1, 1, 1, tzinfo=UTC), "Asia/Kolkata", "yyyy-MM-dd HH:mm", "0001-01-03 06:30",
                 id="year-1-kolkata"),
    pytest.param(datetime(9999, 12, 31, 23, 59, tzinfo=UTC), "UTC", "yyyy-MM-dd HH:mm", "9999-12-31 23:59",
                 id="year-9999-utc"),
    pytest.param(datetime(9999, 12, 31, 23, tzinfo=UTC), "America/New_York", "yyyy-MM-dd HH:mm",
                 "9999-12-31 18:00", id="year-9999-new-york"),
    # the local date is in range but the fast path converts it to the zone first
    pytest.param(datetime(1, 1, 1, 1, tzinfo=UTC), "America/New_York", "yyyy-MM-dd HH:mm", "0001-01-02 20:00",
                 id="year-1-new-york"),
    # the local date is in year 10000
    pytest.param(datetime(9999, 12, 31, 23, tzinfo=UTC), "Asia/Kolkata", "yyyy-MM-dd HH:mm", "10000-01-01 04:30",
                 id="year-10000-kolkata"),
    # the input's UTC instant is outside datetime's range, the local date in the format's zone is not
    pytest.param(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), "America/New_York",
                 "yyyy-MM-dd HH:mm", "9999-12-31 23:00", id="after-9999-utc-new-york"),
    pytest.param(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), "UTC",
                 "yyyy-MM-dd'T'HH:mm:ssXXX", "10000-01-01T04:00:00Z", id="after-9999-utc"),
    pytest.param(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "Asia/Kolkata", "yyyy-MM-dd HH:mm",
                 "0001-01-03 00:30", id="before-year-1-utc-kolkata"),
]


@pytest.mark.parametrize(("value", "zone", "pattern", "expected"), FORMAT_EDGES)
def test_format_at_the_edges_of_datetime(value: datetime, zone: str, pattern: str, expected: str) -> None:
    assert compile(pattern, zone).format(value) == expected


# --------------------------------------------------------------------------- common patterns

# The patterns real configurations use, with ordinary and awkward inputs (generated with
# SimpleDateFormat strict, whole input required): (pattern, zone, text, UTC instant or None
# for an error). A regression net for fast paths in front of the reference engine.
COMMON = [
    # yyyy-MM-dd'T'HH:mm:ssXXX
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T18:04:56+05:30', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T04:34:56-08:00', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-2-9T1:2:3Z', '2024-02-09T01:02:03Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+00:00', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56-00:00', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+0000', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56z', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56.789Z', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29 12:34:56Z', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T24:00:00Z', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-30T12:34:56Z', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+24:00', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+05:60', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+5:30', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+14:00', '2024-02-28T22:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '２０２４-02-29T12:34:56Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', ' 2024-02-29T12:34:56Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T 12:34:56Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56 Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56Z ', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '02024-02-29T12:34:56Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-002-029T012:034:056Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '1899-12-31T23:59:59Z', '1899-12-31T23:59:59Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '0999-12-31T23:59:59Z', '1000-01-05T23:59:59Z'),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '2024-02-29T12:34:56+05:30:00', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'UTC', '-2024-02-29T12:34:56Z', None),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", 'America/New_York', '2024-11-03T01:30:00-04:00', '2024-11-03T05:30:00Z'),
    # yyyy-MM-dd HH:mm:ss
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 12:34:56', '2024-02-29T12:34:56Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 12:34:56.789', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29T12:34:56', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29  12:34:56', '2024-02-29T12:34:56Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29\t12:34:56', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 \t12:34:56', '2024-02-29T12:34:56Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-2-9 1:2:3', '2024-02-09T01:02:03Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 12:34', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 12:34:60', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 23:59:59', '2024-02-29T23:59:59Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-12-31 23:59:59', '2024-12-31T23:59:59Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-02-29 12:34:56Z', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2023-02-29 00:00:00', None),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-11-03 01:30:00', '2024-11-03T01:30:00Z'),
    ('yyyy-MM-dd HH:mm:ss', 'UTC', '2024-03-10 02:30:00', '2024-03-10T02:30:00Z'),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-02-29 12:34:56', '2024-02-29T17:34:56Z'),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-2-9 1:2:3', '2024-02-09T06:02:03Z'),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-02-29 23:59:59', '2024-03-01T04:59:59Z'),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-12-31 23:59:59', '2025-01-01T04:59:59Z'),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-11-03 01:30:00', '2024-11-03T06:30:00Z'),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-03-10 02:30:00', None),
    ('yyyy-MM-dd HH:mm:ss', 'America/New_York', '2024-03-10 03:30:00', '2024-03-10T07:30:00Z'),
    # yyyy-MM-dd'T'HH:mm:ss'Z'
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-02-29T12:34:56Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-02-29T12:34:56z', None),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-02-29T12:34:56+00:00', None),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-02-29T12:34:56', None),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-02-29T12:34:56.789Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-03-10T02:30:00Z', '2024-03-10T02:30:00Z'),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'UTC', '2024-02-29t12:34:56Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'America/New_York', '2024-02-29T12:34:56Z', '2024-02-29T17:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'America/New_York', '2024-11-03T01:30:00Z', '2024-11-03T06:30:00Z'),
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", 'America/New_York', '2024-03-10T02:30:00Z', None),
    # yyyy-MM-dd'T'HH:mm:ss.SSS'Z'
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.789Z', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.5Z', '2024-02-29T12:34:56.005Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.05Z', '2024-02-29T12:34:56.005Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.0500Z', '2024-02-29T12:34:56.500Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.1234Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.999Z', '2024-02-29T12:34:56.999Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.000Z', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.789123Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.-1Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'UTC', '2024-02-29T12:34:56.+1Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'America/New_York', '2024-02-29T12:34:56.789Z', '2024-02-29T17:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", 'America/New_York', '2024-11-03T01:30:00.000Z', '2024-11-03T06:30:00Z'),
    # yyyy-MM-dd'T'HH:mm:ss.SSSZ
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789+0000', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T18:04:56.789+0530', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T04:34:56.789-0800', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T18:04:56.789+05:30', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789-0000', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789GMT', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T04:34:56.789PST', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789UTC', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T18:04:56.789GMT+05:30', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789 +0000', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789+000', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789+00000', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.7+0000', '2024-02-29T12:34:56.007Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", 'UTC', '2024-02-29T12:34:56.789gmt', '2024-02-29T12:34:56.789Z'),
    # MM/dd/yyyy HH:mm:ss
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '02/29/2024 12:34:56', '2024-02-29T12:34:56Z'),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '2/9/2024 1:2:3', '2024-02-09T01:02:03Z'),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '29/02/2024 12:34:56', None),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '02/29/24 12:34:56', '0024-02-27T12:34:56Z'),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '02/29/2024 12:34:56 PM', None),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '02/29/2024', None),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '13/01/2024 00:00:00', None),
    ('MM/dd/yyyy HH:mm:ss', 'UTC', '02-29-2024 12:34:56', None),
    ('MM/dd/yyyy HH:mm:ss', 'America/New_York', '02/29/2024 12:34:56', '2024-02-29T17:34:56Z'),
    ('MM/dd/yyyy HH:mm:ss', 'America/New_York', '11/03/2024 01:30:00', '2024-11-03T06:30:00Z'),
    ('MM/dd/yyyy HH:mm:ss', 'America/New_York', '03/10/2024 02:30:00', None),
    # EEE, dd MMM yyyy HH:mm:ss Z
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 +0000', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 GMT', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 07:34:56 EST', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 04:34:56 PST', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 -0000', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 18:04:56 +0530', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'thu, 29 feb 2024 12:34:56 +0000', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'THU, 29 FEB 2024 12:34:56 +0000', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thursday, 29 February 2024 12:34:56 +0000', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Fri, 29 Feb 2024 12:34:56 +0000', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 +00:00', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 Z', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', '29 Feb 2024 12:34:56 +0000', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu,29 Feb 2024 12:34:56 +0000', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 9 Feb 2024 12:34:56 +0000', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Fri, 9 Feb 2024 12:34:56 +0000', '2024-02-09T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 24 12:34:56 +0000', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 UT', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 UTC', '2024-02-29T12:34:56Z'),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 +0000 (UTC)', None),
    ('EEE, dd MMM yyyy HH:mm:ss Z', 'UTC', 'Thu, 29 Feb 2024 12:34:56 CET', '2024-02-29T11:34:56Z'),
    # yyyy-MM-dd'T'HH:mm:ss.SSSXXX
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T12:34:56.789Z', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T18:04:56.789+05:30', '2024-02-29T12:34:56.789Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T12:34:56.789+0000', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T12:34:56Z', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T12:34:56.7Z', '2024-02-29T12:34:56.007Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T12:34:56.789123+00:00', None),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'UTC', '2024-02-29T12:34:56.000-00:00', '2024-02-29T12:34:56Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'America/New_York', '2024-11-03T01:30:00.000-04:00', '2024-11-03T05:30:00Z'),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", 'America/New_York', '2024-11-03T01:30:00.000-05:00', '2024-11-03T06:30:00Z'),
]


@pytest.mark.parametrize(
    ("pattern", "zone", "text", "expected"),
    COMMON,
    ids=[f"{p}@{z}@{t}" for p, z, t, _ in COMMON],
)
def test_common_patterns_match_simpledateformat(pattern: str, zone: str, text: str, expected: str | None) -> None:
    fmt = compile(pattern, zone)
    if expected is None:
        with pytest.raises(DateFormatError):
            fmt.parse(text)
    else:
        assert at(fmt.parse(text)) == iso(expected)


# --------------------------------------------------------------------------- whole input, errors

# (pattern, text, position of the first unread character): SimpleDateFormat would return a
# date for each of these and ignore the rest; poller requires the whole text.
TRAILING_TEXT = [
    ("yyyy-MM-dd", "2024-02-29x", 10),
    ("yyyy-MM-dd", "2024-02-29 ", 10),
    ("yyyy-MM-dd", "2024-02-29T12:34:56Z", 10),
    ("yyyy-MM-dd", "2024-02-3x", 9),
    ("yyyy-MM-dd HH:mm:ss", "2024-02-29 12:34:56.789", 19),
    ("yyyy-MM-dd'T'HH:mm:ssX", "2024-02-29T18:04:56+05:30", 22),  # X would read +05 only
    ("yyyy-MM-dd'T'HH:mm:ssX", "2024-02-29T18:04:56+0530", 22),
    ("yyyy-MM-dd HH:mm:ss z", "2024-02-29 12:34:56 UTC+05:30", 23),  # z would read UTC only
    ("dd MMM yyyy", "29 Feb 2024 (Thu)", 11),
    ("", "x", 0),
]


@pytest.mark.parametrize(("pattern", "text", "position"), TRAILING_TEXT, ids=[t for _, t, _ in TRAILING_TEXT])
def test_trailing_text_is_an_error(pattern: str, text: str, position: int) -> None:
    with pytest.raises(DateFormatError) as info:
        compile(pattern).parse(text)
    assert info.value.position == position


def test_parse_error_names_pattern_text_and_position() -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss")
    with pytest.raises(DateFormatError) as info:
        fmt.parse("2024-02-29T12:34:56")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.pattern, err.text, err.position) == ("yyyy-MM-dd HH:mm:ss", "2024-02-29T12:34:56", 10)
    assert err.reason
    message = str(err)
    assert "'yyyy-MM-dd HH:mm:ss'" in message
    assert "'2024-02-29T12:34:56'" in message
    assert "position 10" in message
    assert err.reason in message


def test_parse_of_a_non_string_raises() -> None:
    with pytest.raises(DateFormatError):
        compile("yyyy").parse(2024)  # type: ignore[arg-type]


# (pattern, position, words the reason must contain)
COMPILE_ERRORS = [
    ("yyyy-MM-bb", 8, "'b'"),
    ("yyyy-MM-dd'T'HH:mm:ssxxx", 21, "'x'"),
    ("uuuu-MM-dd VV", 11, "'V'"),
    ("qqqq", 0, "'q'"),
    ("yyyy-MM-dd'T", 10, "quote"),
    ("'", 0, "quote"),
    ("yyyy 'at HH", 5, "quote"),
    ("yyyy-MM-dd'''", 12, "quote"),  # '' is a quote, the third one opens a literal
    ("yyyy-MM-dd'T'HH:mm:ss'", 21, "quote"),
    ("XXXX", 0, "X"),
    ("yyyy-MM-dd'T'HH:mm:ssXXXX", 21, "X"),
    ("XXXXX", 0, "X"),
    ("Milliseconds", 1, "'i'"),  # only the exact word is the special format
]


@pytest.mark.parametrize(("pattern", "position", "word"), COMPILE_ERRORS, ids=[p for p, _, _ in COMPILE_ERRORS])
def test_invalid_patterns_raise_at_compile_time_with_the_position(pattern: str, position: int, word: str) -> None:
    with pytest.raises(DateFormatError) as info:
        compile(pattern)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.pattern == pattern
    assert err.text is None
    assert err.position == position
    assert word in err.reason
    assert repr(pattern) in str(err)
    assert f"position {position}" in str(err)


@pytest.mark.parametrize(
    "pattern",
    ["uuuu-MM-dd", "yyyy[-MM]", "yyyy#", "yyyy-MM-dd HH:mm:ss.SSSSSSSSSS", "aa", "GGGGGG", "''''", ""],
)
def test_patterns_simpledateformat_accepts_compile(pattern: str) -> None:
    assert isinstance(compile(pattern), DateFormat)


# --------------------------------------------------------------------------- zones

_JAN = datetime(2024, 1, 15, 12, tzinfo=UTC)
_JUL = datetime(2024, 7, 15, 12, tzinfo=UTC)

# (zone id, UTC offset on 2024-01-15, on 2024-07-15); Java ids keep Java's meaning
# (TimeZone.getTimeZone: PST follows Los Angeles, EST/MST/HST are fixed, IST is India).
ZONE_IDS = [
    ("America/New_York", -5, -4),
    ("america/new_york", -5, -4),
    ("AMERICA/NEW_YORK", -5, -4),
    ("Europe/Berlin", 1, 2),
    ("Australia/Lord_Howe", 11, 10.5),
    ("Asia/Kolkata", 5.5, 5.5),
    ("Asia/Calcutta", 5.5, 5.5),
    ("US/Pacific", -8, -7),
    ("Etc/GMT+5", -5, -5),
    ("UTC", 0, 0),
    ("utc", 0, 0),
    ("GMT", 0, 0),
    ("Z", 0, 0),
    ("PST", -8, -7),
    ("pst", -8, -7),
    ("EST", -5, -5),
    ("MST", -7, -7),
    ("HST", -10, -10),
    ("IST", 5.5, 5.5),
    ("CST", -6, -5),
    ("CET", 1, 2),
    ("AET", 11, 10),
    ("-8:00", -8, -8),
    ("-08:00", -8, -8),
    ("+05:30", 5.5, 5.5),
    ("+5", 5, 5),
    ("-0800", -8, -8),
    ("+0530", 5.5, 5.5),
    ("GMT+5", 5, 5),
    ("GMT-08:00", -8, -8),
    ("GMT+05:30", 5.5, 5.5),
    ("UTC+5", 5, 5),
    ("UTC-3", -3, -3),
    ("+00:00", 0, 0),
]


@pytest.mark.parametrize(("zone_id", "january", "july"), ZONE_IDS, ids=[z for z, _, _ in ZONE_IDS])
def test_parse_zone(zone_id: str, january: float, july: float) -> None:
    tz = parse_zone(zone_id)
    assert isinstance(tz, tzinfo)
    assert _JAN.astimezone(tz).utcoffset() == hours(january)
    assert _JUL.astimezone(tz).utcoffset() == hours(july)
    # and a format in that zone renders with it
    assert compile("Z", zone_id).format(_JUL) == _rfc822(hours(july))


def _rfc822(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


UNKNOWN_ZONES = ["Mars/Olympus", "", "   ", "GMT+25", "+24:00", "+5:75", "PSTX", "GMT+", "+", "1",
                 "Europe/Berlin/x", "America//New_York", "../etc/passwd", "/etc/localtime"]


@pytest.mark.parametrize("zone_id", UNKNOWN_ZONES, ids=[repr(z) for z in UNKNOWN_ZONES])
def test_unknown_zone_ids_raise_zone_error(zone_id: str) -> None:
    with pytest.raises(ZoneError) as info:
        parse_zone(zone_id)
    assert isinstance(info.value, ValueError)
    assert repr(zone_id) in str(info.value)
    with pytest.raises(ZoneError):
        compile("yyyy-MM-dd", zone_id)


# Names that exist only as files of this machine's tz database (Debian's /usr/share/zoneinfo):
# neither IANA zone ids (the tzdata package has none of them) nor Java ids (the JDK reads them
# as unknown, i.e. GMT). "localtime" links to /etc/localtime, the host's own zone.
@pytest.mark.parametrize("zone_id", ["localtime", "posix/Asia/Kolkata", "right/UTC"])
def test_host_only_zone_files_are_not_zone_ids(zone_id: str) -> None:
    try:
        ZoneInfo(zone_id)
    except (ZoneInfoNotFoundError, ValueError):
        pytest.skip(f"{zone_id} is not a file of this machine's tz database")
    with pytest.raises(ZoneError):
        parse_zone(zone_id)


def test_zone_error_is_exported_by_javadate() -> None:
    assert javadate.ZoneError is ZoneError
    assert issubclass(ZoneError, ValueError)


# --------------------------------------------------------------------------- DST

# (zone, text, UTC instant, UTC offset of the result): an ambiguous wall time is standard
# time (the later instant), the hours around it are unambiguous.
DST_STRICT = [
    ("America/New_York", "2024-11-03 00:59:59", "2024-11-03T04:59:59Z", -4),
    ("America/New_York", "2024-11-03 01:00:00", "2024-11-03T06:00:00Z", -5),
    ("America/New_York", "2024-11-03 01:30:00", "2024-11-03T06:30:00Z", -5),
    ("America/New_York", "2024-11-03 01:59:59", "2024-11-03T06:59:59Z", -5),
    ("America/New_York", "2024-11-03 02:00:00", "2024-11-03T07:00:00Z", -5),
    ("America/New_York", "2024-03-10 01:59:59", "2024-03-10T06:59:59Z", -5),
    ("America/New_York", "2024-03-10 03:00:00", "2024-03-10T07:00:00Z", -4),
    ("Europe/Berlin", "2024-10-27 01:59:59", "2024-10-26T23:59:59Z", 2),
    ("Europe/Berlin", "2024-10-27 02:30:00", "2024-10-27T01:30:00Z", 1),
    ("Europe/Berlin", "2024-10-27 03:00:00", "2024-10-27T02:00:00Z", 1),
    ("Europe/Berlin", "2024-03-31 01:59:59", "2024-03-31T00:59:59Z", 1),
    ("Europe/Berlin", "2024-03-31 03:00:00", "2024-03-31T01:00:00Z", 2),
    ("Australia/Lord_Howe", "2024-04-07 01:45:00", "2024-04-06T15:15:00Z", 10.5),
    ("PST", "2024-11-03 01:30:00", "2024-11-03T09:30:00Z", -8),
    ("Europe/Dublin", "2024-10-27 01:30:00", "2024-10-27T01:30:00Z", 0),
    ("Europe/London", "2024-10-27 01:30:00", "2024-10-27T01:30:00Z", 0),
    ("Asia/Kolkata", "1945-10-14 23:30:00", "1945-10-14T18:00:00Z", 5.5),
]


@pytest.mark.parametrize(
    ("zone", "text", "expected", "offset"), DST_STRICT, ids=[f"{z}@{t}" for z, t, _, _ in DST_STRICT]
)
def test_dst_overlap_reads_as_standard_time(zone: str, text: str, expected: str, offset: float) -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss", zone)
    got = fmt.parse(text)
    assert at(got) == iso(expected)
    assert got.utcoffset() == hours(offset)
    lenient, fell_back = fmt.parse_lenient(text)
    assert (at(lenient), fell_back) == (iso(expected), False)


# (zone, wall time in a gap, where lenient parsing puts it: pushed forward by the gap)
DST_GAPS = [
    ("America/New_York", "2024-03-10 02:00:00", "2024-03-10T07:00:00Z"),
    ("America/New_York", "2024-03-10 02:30:00", "2024-03-10T07:30:00Z"),
    ("America/New_York", "2024-03-10 02:59:59", "2024-03-10T07:59:59Z"),
    ("Europe/Berlin", "2024-03-31 02:00:00", "2024-03-31T01:00:00Z"),
    ("Europe/Berlin", "2024-03-31 02:30:00", "2024-03-31T01:30:00Z"),
    ("Australia/Lord_Howe", "2024-10-06 02:15:00", "2024-10-05T15:45:00Z"),
    ("PST", "2024-03-10 02:30:00", "2024-03-10T10:30:00Z"),
    ("Europe/Dublin", "2024-03-31 01:30:00", "2024-03-31T01:30:00Z"),
    ("America/Sao_Paulo", "2018-11-04 00:30:00", "2018-11-04T03:30:00Z"),
    ("Asia/Kolkata", "1906-01-01 00:00:00", "1905-12-31T18:38:50Z"),
]


@pytest.mark.parametrize(("zone", "text", "lenient"), DST_GAPS, ids=[f"{z}@{t}" for z, t, _ in DST_GAPS])
def test_dst_gap_strict_rejects_lenient_pushes_forward(zone: str, text: str, lenient: str) -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss", zone)
    with pytest.raises(DateFormatError) as info:
        fmt.parse(text)
    assert info.value.text == text
    got, fell_back = fmt.parse_lenient(text)
    assert at(got) == iso(lenient)
    assert fell_back is False  # the pattern matched: no date_fallbacks, no "check datesConfiguration"


def test_a_dst_gap_time_in_a_compact_numeric_pattern_is_the_pattern_not_epoch_milliseconds() -> None:
    """(It matched the epoch-number fallback first: 1976-05-31T15:05:00.230Z, counted as a fallback.)"""
    fmt = compile("yyyyMMddHHmm", "America/New_York")
    assert fmt.parse_lenient("202403100230") == (datetime(2024, 3, 10, 7, 30, tzinfo=timezone.utc), False)
    got, fell_back = fmt.parse_lenient("2024-03-10T06:30:00Z")  # what the pattern does not read still falls back
    assert (at(got), fell_back) == (iso("2024-03-10T06:30:00Z"), True)


# SimpleDateFormat's strict check compares only the fields the pattern set with the fields of
# the resolved instant, so a gap wall time is rejected only when a field it parsed moved: a
# date-only pattern accepts the day a midnight DST change skips 00:00-00:59 (JDK 17:
# 2018-11-04 in America/Sao_Paulo parses to 2018-11-04T03:00:00Z, i.e. 01:00-02:00), and
# "yyyy-MM-dd HH" accepts 02 in Lord Howe's half-hour gap (2024-10-05T15:30:00Z = 02:30+11:00).
MIDNIGHT_GAPS = [
    pytest.param("yyyy-MM-dd", "America/Sao_Paulo", "2018-11-04", "2018-11-04T03:00:00Z"),
    pytest.param("MM/dd/yyyy", "America/Sao_Paulo", "11/04/2018", "2018-11-04T03:00:00Z"),
    pytest.param("yyyy-MM-dd", "America/Havana", "2024-03-10", "2024-03-10T05:00:00Z"),
    pytest.param("yyyy-MM-dd", "America/Santiago", "2024-09-08", "2024-09-08T04:00:00Z"),
    pytest.param("yyyy-MM-dd", "Asia/Beirut", "2024-03-31", "2024-03-30T22:00:00Z"),
    pytest.param("yyyy-MM-dd", "Africa/Cairo", "2024-04-26", "2024-04-25T22:00:00Z"),
    pytest.param("yyyy-MM-dd", "Asia/Tehran", "2021-03-22", "2021-03-21T20:30:00Z"),
    pytest.param("yyyy-MM-dd HH", "Australia/Lord_Howe", "2024-10-06 02", "2024-10-05T15:30:00Z"),
    pytest.param("yyyy-MM-dd mm:ss", "America/Sao_Paulo", "2018-11-04 30:00", "2018-11-04T03:30:00Z"),
    # controls: no midnight DST change, or the parsed hour itself moved
    pytest.param("yyyy-MM-dd", "America/New_York", "2024-03-10", "2024-03-10T05:00:00Z"),
    pytest.param("yyyy-MM-dd", "America/Sao_Paulo", "2018-11-05", "2018-11-05T02:00:00Z"),
]


@pytest.mark.parametrize(("pattern", "zone", "text", "expected"), MIDNIGHT_GAPS)
def test_gap_shift_that_moves_no_parsed_field_is_accepted(pattern: str, zone: str, text: str, expected: str) -> None:
    fmt = compile(pattern, zone)
    assert at(fmt.parse(text)) == iso(expected)
    lenient, fell_back = fmt.parse_lenient(text)
    assert (at(lenient), fell_back) == (iso(expected), False)


@pytest.mark.parametrize(
    ("pattern", "zone", "text"),
    [
        ("yyyy-MM-dd HH", "America/New_York", "2024-03-10 02"),
        ("yyyy-MM-dd hh a", "America/New_York", "2024-03-10 02 AM"),
        ("yyyy-MM-dd HH:mm", "Australia/Lord_Howe", "2024-10-06 02:15"),
        ("yyyy-MM-dd'T'HH:mm:ss", "America/Sao_Paulo", "2018-11-04T00:30:00"),
    ],
)
def test_gap_shift_that_moves_a_parsed_field_is_rejected(pattern: str, zone: str, text: str) -> None:
    with pytest.raises(DateFormatError):
        compile(pattern, zone).parse(text)


# (zone, UTC instant, expected text with "yyyy-MM-dd HH:mm:ss z")
DST_FORMAT = [
    ("America/New_York", "2024-11-03T05:30:00Z", "2024-11-03 01:30:00 EDT"),
    ("America/New_York", "2024-11-03T06:30:00Z", "2024-11-03 01:30:00 EST"),
    ("America/New_York", "2024-03-10T06:59:59Z", "2024-03-10 01:59:59 EST"),
    ("America/New_York", "2024-03-10T07:00:00Z", "2024-03-10 03:00:00 EDT"),
    ("Europe/Berlin", "2024-10-27T00:30:00Z", "2024-10-27 02:30:00 CEST"),
    ("Europe/Berlin", "2024-10-27T01:30:00Z", "2024-10-27 02:30:00 CET"),
    ("Europe/Berlin", "2024-03-31T01:00:00Z", "2024-03-31 03:00:00 CEST"),
]


@pytest.mark.parametrize(("zone", "instant", "expected"), DST_FORMAT, ids=[f"{z}@{i}" for z, i, _ in DST_FORMAT])
def test_dst_format_and_zone_name_round_trip(zone: str, instant: str, expected: str) -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss z", zone)
    assert fmt.format(iso(instant)) == expected
    # with the zone name in the text, both instants of an overlap come back
    assert at(fmt.parse(expected)) == iso(instant)


# --------------------------------------------------------------------------- before 1900

# java.util.TimeZone has no history before 1900-01-01T00:00Z: it applies the zone's standard
# offset (no local mean time). (zone, UTC instant, "yyyy-MM-dd HH:mm:ss Z" text, instant that
# text parses back to)
PRE_1900 = [
    ("America/Los_Angeles", "1850-06-15T12:00:00Z", "1850-06-15 04:00:00 -0800", None),
    ("America/New_York", "1850-06-15T12:00:00Z", "1850-06-15 07:00:00 -0500", None),
    ("America/New_York", "1883-11-18T17:00:00Z", "1883-11-18 12:00:00 -0500", None),
    ("Asia/Kolkata", "1850-06-15T12:00:00Z", "1850-06-15 17:30:00 +0530", None),
    ("Australia/Lord_Howe", "1850-06-15T12:00:00Z", "1850-06-15 22:30:00 +1030", None),
    ("Europe/Berlin", "1850-06-15T12:00:00Z", "1850-06-15 13:00:00 +0100", None),
    ("Europe/Berlin", "1893-03-31T23:05:00Z", "1893-04-01 00:05:00 +0100", None),
    ("America/Los_Angeles", "1899-12-31T23:59:59Z", "1899-12-31 15:59:59 -0800", None),
    ("America/Los_Angeles", "1900-01-01T00:00:00Z", "1899-12-31 16:00:00 -0800", None),
    ("Asia/Kolkata", "1899-12-31T23:59:59Z", "1900-01-01 05:29:59 +0530", None),
    # from 1900 on the tz history applies: Kolkata was at +05:21:10, and Z writes whole minutes
    ("Asia/Kolkata", "1900-01-01T00:00:00Z", "1900-01-01 05:21:10 +0521", "1900-01-01T00:00:10Z"),
    ("Australia/Lord_Howe", "1899-12-31T23:59:59Z", "1900-01-01 10:29:59 +1030", None),
    ("Australia/Lord_Howe", "1900-01-01T00:00:00Z", "1900-01-01 10:00:00 +1000", None),
    ("UTC", "1000-06-15T12:00:00Z", "1000-06-09 12:00:00 +0000", None),  # Julian calendar
]


@pytest.mark.parametrize(("zone", "instant", "text", "back"), PRE_1900, ids=[f"{z}@{i}" for z, i, _, _ in PRE_1900])
def test_pre_1900_uses_the_standard_offset(zone: str, instant: str, text: str, back: str | None) -> None:
    fmt = compile("yyyy-MM-dd HH:mm:ss Z", zone)
    assert fmt.format(iso(instant)) == text
    assert at(fmt.parse(text)) == iso(back or instant)


# (zone, local text without offset, UTC instant)
PRE_1900_PARSE = [
    ("America/Los_Angeles", "1850-06-15 04:00:00", "1850-06-15T12:00:00Z"),
    ("America/New_York", "1850-06-15 07:00:00", "1850-06-15T12:00:00Z"),
    ("Asia/Kolkata", "1850-06-15 17:30:00", "1850-06-15T12:00:00Z"),
    ("Australia/Lord_Howe", "1850-06-15 22:30:00", "1850-06-15T12:00:00Z"),
    ("Europe/Berlin", "1850-06-15 13:00:00", "1850-06-15T12:00:00Z"),
    ("America/Los_Angeles", "1899-12-31 15:59:59", "1899-12-31T23:59:59Z"),
    ("America/Los_Angeles", "1899-12-31 16:00:00", "1900-01-01T00:00:00Z"),
    ("Asia/Kolkata", "1899-12-31 23:59:59", "1899-12-31T18:29:59Z"),
    ("Asia/Kolkata", "1900-01-01 05:20:00", "1899-12-31T23:50:00Z"),
    ("Asia/Kolkata", "1900-01-01 05:21:10", "1900-01-01T00:00:00Z"),
    ("Asia/Kolkata", "1900-01-01 05:29:59", "1900-01-01T00:08:49Z"),
    ("Asia/Kolkata", "1900-01-01 05:40:00", "1900-01-01T00:18:50Z"),
    ("Australia/Lord_Howe", "1900-01-01 10:00:00", "1900-01-01T00:00:00Z"),
    ("Australia/Lord_Howe", "1900-01-01 10:30:00", "1900-01-01T00:30:00Z"),
    ("Europe/Berlin", "1900-01-01 00:59:59", "1899-12-31T23:59:59Z"),
    ("Europe/Berlin", "1900-01-01 01:00:00", "1900-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("zone", "text", "expected"), PRE_1900_PARSE, ids=[f"{z}@{t}" for z, t, _ in PRE_1900_PARSE])
def test_pre_1900_parse_in_the_format_zone(zone: str, text: str, expected: str) -> None:
    assert at(compile("yyyy-MM-dd HH:mm:ss", zone).parse(text)) == iso(expected)


# --------------------------------------------------------------------------- milliseconds

MILLIS_PARSE = [
    ("1700000000000", "2023-11-14T22:13:20Z"),
    ("-1", "1969-12-31T23:59:59.999Z"),
    ("0", "1970-01-01T00:00:00Z"),
    ("1", "1970-01-01T00:00:00.001Z"),
    ("-62135596800000", "0001-01-01T00:00:00Z"),
    ("253402300799999", "9999-12-31T23:59:59.999Z"),
]


@pytest.mark.parametrize(("text", "expected"), MILLIS_PARSE, ids=[t for t, _ in MILLIS_PARSE])
def test_milliseconds_parse(text: str, expected: str) -> None:
    fmt = compile("milliseconds", "America/New_York")  # the zone plays no part
    got = fmt.parse(text)
    assert at(got) == iso(expected)
    assert got.utcoffset() == timedelta(0)
    assert fmt.format(got) == text


@pytest.mark.parametrize("text", ["", "abc", "1.5", "1e3", "+5", "0x10", "17000000000OO", "99999999999999999999"])
def test_milliseconds_parse_rejects(text: str) -> None:
    with pytest.raises(DateFormatError) as info:
        compile("milliseconds").parse(text)
    assert info.value.pattern == "milliseconds"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "1700000000000"),
        (datetime(2023, 11, 14, 17, 13, 20, 123456, tzinfo=ZoneInfo("America/New_York")), "1700000000123"),
        (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "-1"),
        (datetime(1970, 1, 1, tzinfo=UTC), "0"),
    ],
    ids=["utc", "new-york-microseconds", "before-epoch", "epoch"],
)
def test_milliseconds_format(value: datetime, expected: str) -> None:
    assert compile("milliseconds").format(value) == expected


# --------------------------------------------------------------------------- parse_lenient

_NY = "America/New_York"
# (pattern, zone, value, expected UTC instant, fell_back, expected UTC offset of the result or None)
LENIENT = [
    # the pattern matches: no fallback
    ("MM/dd/yyyy HH:mm:ss", _NY, "02/29/2024 12:34:56", "2024-02-29T17:34:56Z", False, -5),
    ("yyyy-MM-dd'T'HH:mm:ssXXX", _NY, "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z", False, 0),
    # ISO-8601 text
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z", True, 0),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56z", "2024-02-29T12:34:56Z", True, 0),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56+05:30", "2024-02-29T07:04:56Z", True, 5.5),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56+0530", "2024-02-29T07:04:56Z", True, 5.5),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56-08:00", "2024-02-29T20:34:56Z", True, -8),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56", "2024-02-29T17:34:56Z", True, -5),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-07-01T12:34:56", "2024-07-01T16:34:56Z", True, -4),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29 12:34:56", "2024-02-29T17:34:56Z", True, -5),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29", "2024-02-29T05:00:00Z", True, -5),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56.123Z", "2024-02-29T12:34:56.123Z", True, 0),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56.123456Z", "2024-02-29T12:34:56.123456Z", True, 0),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56.5+01:00", "2024-02-29T11:34:56.500Z", True, 1),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-02-29T12:34:56.250", "2024-02-29T17:34:56.250Z", True, -5),
    ("MM/dd/yyyy HH:mm:ss", _NY, " 2024-02-29T12:34:56Z ", "2024-02-29T12:34:56Z", True, 0),
    ("yyyy-MM-dd", "UTC", "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z", True, 0),  # trailing text
    ("MM/dd/yyyy HH:mm:ss", "Asia/Kolkata", "2024-02-29T12:34:56", "2024-02-29T07:04:56Z", True, 5.5),
    # ISO without offset follows the format zone's DST rules: overlap = standard, gap = forward
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-11-03T01:30:00", "2024-11-03T06:30:00Z", True, -5),
    ("MM/dd/yyyy HH:mm:ss", _NY, "2024-03-10T02:30:00", "2024-03-10T07:30:00Z", True, -4),
    # epoch numbers: seconds below 1e11, milliseconds from 1e11 on
    ("MM/dd/yyyy HH:mm:ss", _NY, 1700000000, "2023-11-14T22:13:20Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, 1700000000000, "2023-11-14T22:13:20Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, 1700000000.5, "2023-11-14T22:13:20.500Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, 1700000000123.0, "2023-11-14T22:13:20.123Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, "1700000000", "2023-11-14T22:13:20Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, "1700000000000", "2023-11-14T22:13:20Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, "1700000000.25", "2023-11-14T22:13:20.250Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, 99_999_999_999, "5138-11-16T09:46:39Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, 100_000_000_000, "1973-03-03T09:46:40Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, 1e11, "1973-03-03T09:46:40Z", True, None),
    ("MM/dd/yyyy HH:mm:ss", _NY, -100_000_000_000, "1966-10-31T14:13:20Z", True, None),
    # the milliseconds format: numbers are its own values, so no fallback
    ("milliseconds", "UTC", 1700000000000, "2023-11-14T22:13:20Z", False, 0),
    ("milliseconds", "UTC", "1700000000000", "2023-11-14T22:13:20Z", False, 0),
    ("milliseconds", "UTC", 1700000000, "1970-01-20T16:13:20Z", False, 0),
    ("milliseconds", "UTC", -1, "1969-12-31T23:59:59.999Z", False, 0),
    ("milliseconds", "UTC", "2024-02-29T12:34:56Z", "2024-02-29T12:34:56Z", True, 0),
    ("milliseconds", "America/New_York", "2024-02-29T12:34:56", "2024-02-29T17:34:56Z", True, -5),
]


@pytest.mark.parametrize(
    ("pattern", "zone", "value", "expected", "fell_back", "offset"),
    LENIENT,
    ids=[f"{p}@{z}@{v!r}" for p, z, v, _, _, _ in LENIENT],
)
def test_parse_lenient(pattern: str, zone: str, value: object, expected: str, fell_back: bool,
                       offset: float | None) -> None:
    got, flag = compile(pattern, zone).parse_lenient(value)
    assert at(got) == iso(expected)
    assert flag is fell_back
    assert got.tzinfo is not None
    if offset is not None:
        assert got.utcoffset() == hours(offset)


LENIENT_GARBAGE = [
    "garbage", "", "   ", "2024-02-30T00:00:00Z", "2024-02-29T25:00:00Z", "2024-02-29T12:34:56+19:00",
    "29.02.2024", "1e11", "0x10", "NaN", "99999999999999999999999", "2024-13-01",
]


@pytest.mark.parametrize("value", LENIENT_GARBAGE, ids=[repr(v) for v in LENIENT_GARBAGE])
@pytest.mark.parametrize("pattern", ["MM/dd/yyyy HH:mm:ss", "milliseconds"])
def test_parse_lenient_rejects_garbage(pattern: str, value: str) -> None:
    with pytest.raises(DateFormatError) as info:
        compile(pattern).parse_lenient(value)
    assert info.value.pattern == pattern


# Epoch numbers are only guessed inside 1e8..1e13 (1973..2286 as seconds or milliseconds), so that
# a compact date (20240229, 20240229123456) or a small counter is not read as an instant.
@pytest.mark.parametrize("value", [0, -1, "-1", "20240229", "20240229123456", 99_999_999, 10**13])
def test_parse_lenient_rejects_implausible_epoch_numbers(value: object) -> None:
    with pytest.raises(DateFormatError):
        compile("yyyy-MM-dd").parse_lenient(value)


def test_parse_lenient_iso_outside_datetime_range_raises() -> None:
    with pytest.raises(DateFormatError):
        compile("MM/dd/yyyy").parse_lenient("9999-12-31T23:59:59-01:00")


def test_parse_lenient_garbage_reports_the_pattern_error() -> None:
    with pytest.raises(DateFormatError) as info:
        compile("MM/dd/yyyy").parse_lenient("02-29-2024")
    assert (info.value.text, info.value.position) == ("02-29-2024", 2)


NOT_DATES = [True, False, None, float("nan"), float("inf"), float("-inf"), b"1700000000", [1700000000],
             {"date": 1}, 10**30]


@pytest.mark.parametrize("value", NOT_DATES, ids=[repr(v) for v in NOT_DATES])
@pytest.mark.parametrize("pattern", ["MM/dd/yyyy HH:mm:ss", "milliseconds"])
def test_parse_lenient_rejects_values_that_are_not_dates(pattern: str, value: object) -> None:
    with pytest.raises(DateFormatError):
        compile(pattern).parse_lenient(value)


# --------------------------------------------------------------------------- caching

def test_compile_is_cached() -> None:
    a = compile("yyyy-MM-dd HH:mm:ss", "America/New_York")
    assert compile("yyyy-MM-dd HH:mm:ss", "America/New_York") is a
    assert compile("yyyy-MM-dd HH:mm:ss", "Europe/Berlin") is not a
    assert compile("yyyy-MM-dd HH:mm", "America/New_York") is not a
    start = datetime(2000, 1, 1, tzinfo=UTC)
    b = compile("yy-MM-dd", "UTC", two_digit_year_start=start)
    assert compile("yy-MM-dd", "UTC", two_digit_year_start=datetime(2000, 1, 1, tzinfo=UTC)) is b
    assert compile("yy-MM-dd", "UTC", two_digit_year_start=datetime(1950, 1, 1, tzinfo=UTC)) is not b
    assert compile("milliseconds") is compile("milliseconds")


def test_compiled_format_keeps_its_zone_after_parsing_a_zone_name() -> None:
    # SimpleDateFormat.parse changes the instance's own zone to the one it read; a shared,
    # cached DateFormat must not.
    fmt = compile("yyyy-MM-dd HH:mm:ss z", "UTC")
    assert at(fmt.parse("2024-02-29 04:34:56 PST")) == iso("2024-02-29T12:34:56Z")
    assert fmt.format(LEAP) == "2024-02-29 12:34:56 UTC"
    assert at(compile("yyyy-MM-dd HH:mm:ss", "UTC").parse("2024-02-29 12:34:56")) == iso("2024-02-29T12:34:56Z")


# --------------------------------------------------------------------------- two-digit years

# (text, UTC instant) with the default window 1946-01-01..2045-12-31
TWO_DIGIT_DEFAULT = [
    ("46-01-01", "1946-01-01T00:00:00Z"),
    ("45-12-31", "2045-12-31T00:00:00Z"),
    ("99-12-31", "1999-12-31T00:00:00Z"),
    ("00-01-01", "2000-01-01T00:00:00Z"),
    ("24-02-29", "2024-02-29T00:00:00Z"),
    ("2024-02-29", "2024-02-29T00:00:00Z"),  # only exactly two digits are windowed
    ("5-02-28", "0005-02-26T00:00:00Z"),  # year 5 AD (Julian calendar)
]


@pytest.mark.parametrize(("text", "expected"), TWO_DIGIT_DEFAULT, ids=[t for t, _ in TWO_DIGIT_DEFAULT])
def test_two_digit_year_default_window(text: str, expected: str) -> None:
    assert at(compile("yy-MM-dd").parse(text)) == iso(expected)


# (window start, zone, pattern, text, UTC instant)
TWO_DIGIT_EXPLICIT = [
    ("1950-06-15T00:00:00Z", "UTC", "yy-MM-dd", "50-06-14", "2050-06-14T00:00:00Z"),
    ("1950-06-15T00:00:00Z", "UTC", "yy-MM-dd", "50-06-15", "1950-06-15T00:00:00Z"),
    ("1950-06-15T00:00:00Z", "UTC", "yy-MM-dd", "50-06-16", "1950-06-16T00:00:00Z"),
    ("1950-06-15T00:00:00Z", "UTC", "yy-MM-dd", "49-12-31", "2049-12-31T00:00:00Z"),
    ("2000-01-01T00:00:00Z", "UTC", "yy-MM-dd", "99-12-31", "2099-12-31T00:00:00Z"),
    ("2000-01-01T00:00:00Z", "UTC", "yy-MM-dd", "00-01-01", "2000-01-01T00:00:00Z"),
    ("2000-01-01T00:00:00.001Z", "UTC", "yy-MM-dd", "00-01-01", "2100-01-01T00:00:00Z"),
    ("2000-01-01T00:00:00.001Z", "UTC", "yy-MM-dd HH:mm", "00-01-01 00:00", "2100-01-01T00:00:00Z"),
    ("1946-01-01T00:00:00Z", "America/New_York", "yy-MM-dd", "46-01-01", "1946-01-01T05:00:00Z"),
    ("1946-01-01T00:00:00.001Z", "UTC", "yy-MM-dd", "46-01-01", "2046-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(
    ("start", "zone", "pattern", "text", "expected"),
    TWO_DIGIT_EXPLICIT,
    ids=[f"{s}@{z}@{t}" for s, z, _, t, _ in TWO_DIGIT_EXPLICIT],
)
def test_two_digit_year_explicit_start(start: str, zone: str, pattern: str, text: str, expected: str) -> None:
    fmt = compile(pattern, zone, two_digit_year_start=iso(start))
    assert at(fmt.parse(text)) == iso(expected)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [("1999-12-31T00:00:00Z", "99"), ("2005-06-01T00:00:00Z", "05"), ("2100-01-01T00:00:00Z", "00")],
)
def test_two_digit_year_format(instant: str, expected: str) -> None:
    assert compile("yy").format(iso(instant)) == expected


# --------------------------------------------------------------------------- no local-zone dependence

_LOCAL_ZONE_SCRIPT = textwrap.dedent(
    """
    import time
    from datetime import datetime, timezone
    from poller import javadate

    if time.localtime(0).tm_gmtoff == 0:
        raise SystemExit("NO-TZ")  # this TZ value is unknown to the C library here
    utc = timezone.utc
    leap = datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=utc)
    out = [
        javadate.compile("yyyy-MM-dd HH:mm:ss").format(leap),
        javadate.compile("yyyy-MM-dd HH:mm:ss.SSSXXX", "America/New_York").format(leap),
        javadate.compile("yyyy-MM-dd HH:mm:ss").parse("2024-02-29 12:34:56").isoformat(),
        javadate.compile("yyyy-MM-dd HH:mm:ss", "Europe/Berlin").parse("2024-10-27 02:30:00").isoformat(),
        javadate.compile("EEE, dd MMM yyyy HH:mm:ss z").parse("Thu, 29 Feb 2024 04:34:56 PST").isoformat(),
        javadate.compile("yyyy-MM-dd").parse("2024-03-10").isoformat(),
        javadate.compile("milliseconds").parse("0").isoformat(),
        javadate.compile("milliseconds").format(datetime(1970, 1, 1, tzinfo=utc)),
        javadate.compile("MM/dd/yyyy").parse_lenient("2024-02-29T12:34:56")[0].isoformat(),
        javadate.compile("MM/dd/yyyy").parse_lenient(1700000000)[0].isoformat(),
        javadate.compile("yy-MM-dd").parse("46-01-01").isoformat(),
        javadate.compile("z").format(leap),
    ]
    print("\\n".join(out))
    """
)
_LOCAL_ZONE_EXPECTED = [
    "2024-02-29 12:34:56",
    "2024-02-29 07:34:56.789-05:00",
    "2024-02-29T12:34:56+00:00",
    "2024-10-27T02:30:00+01:00",
    "2024-02-29T04:34:56-08:00",
    "2024-03-10T00:00:00+00:00",
    "1970-01-01T00:00:00+00:00",
    "0",
    "2024-02-29T12:34:56+00:00",
    "2023-11-14T22:13:20+00:00",
    "1946-01-01T00:00:00+00:00",
    "UTC",
]


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["IST-5:30", "Asia/Kolkata", "EST5EDT,M3.2.0,M11.1.0"])
def test_no_dependence_on_the_process_local_zone(tz: str) -> None:
    env = dict(os.environ, TZ=tz, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", _LOCAL_ZONE_SCRIPT], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    if "NO-TZ" in result.stderr and tz == "Asia/Kolkata":
        pytest.skip("the system has no tz database for TZ=Asia/Kolkata")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == _LOCAL_ZONE_EXPECTED


# --------------------------------------------------------------------------- round trip (property)

ROUND_TRIP_PATTERNS = [
    "yyyy-MM-dd'T'HH:mm:ssXXX",
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
    "MM/dd/yyyy HH:mm:ss",
    "EEE, dd MMM yyyy HH:mm:ss Z",
    "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
]
ROUND_TRIP_ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
_MIN_MS = -2_208_988_800_000  # 1900-01-01T00:00:00Z
_MAX_MS = 4_133_980_799_999  # 2100-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _transitions(zone: str, years: range) -> list[int]:
    """UTC milliseconds of the zone's offset changes in these years (to the second)."""
    if zone == "UTC":
        return []
    tz = ZoneInfo(zone)
    found = []
    for year in years:
        t = datetime(year, 1, 1, tzinfo=UTC)
        for _ in range(366):
            nxt = t + timedelta(days=1)
            if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
                lo, hi = t, nxt
                while hi - lo > timedelta(seconds=1):
                    mid = lo + (hi - lo) / 2
                    if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                        lo = mid
                    else:
                        hi = mid
                found.append((hi - _EPOCH) // timedelta(milliseconds=1))
            t = nxt
    return found


_TRANSITIONS = sorted(
    ms
    for zone, years in [
        ("America/New_York", [1918, 1945, 1974, 2007, 2024, 2099]),
        ("Asia/Kolkata", [1905, 1941, 1942, 1945]),
        ("Australia/Lord_Howe", [1981, 1985, 2024, 2100]),
    ]
    for year in years
    for ms in _transitions(zone, range(year, year + 1))
)
_NEAR_TRANSITION = st.sampled_from(_TRANSITIONS).flatmap(
    lambda t: st.integers(min_value=t - 2 * 3_600_000, max_value=t + 2 * 3_600_000)
)
_INSTANTS = st.one_of(st.integers(min_value=_MIN_MS, max_value=_MAX_MS), _NEAR_TRANSITION)


def _java_offset_minutes_ms(offset: timedelta) -> int:
    """The offset as Z/XXX write it: whole minutes, truncated toward zero, in milliseconds."""
    ms = offset // timedelta(milliseconds=1)
    return int(ms / 60_000) * 60_000


@pytest.mark.parametrize("zone", ROUND_TRIP_ZONES)
@pytest.mark.parametrize("pattern", ROUND_TRIP_PATTERNS)
@settings(max_examples=200, deadline=None)
@given(ms=_INSTANTS)
@example(ms=1_730_611_800_000)  # 2024-11-03T05:30Z: 01:30 EDT, ambiguous in New York
@example(ms=1_730_615_400_000)  # 2024-11-03T06:30Z: 01:30 EST
@example(ms=-2_208_988_800_000)  # 1900-01-01T00:00Z: Kolkata at +05:21:10
@example(ms=_MAX_MS)
def test_format_then_parse_round_trips(pattern: str, zone: str, ms: int) -> None:
    """format() then parse() gives back the instant, truncated to the pattern's precision.

    Exceptions, both what SimpleDateFormat does too:

    * Patterns without an offset (``yyyy-MM-dd HH:mm:ss``, a quoted ``'Z'``...) write the wall
      clock only. A wall time in a DST overlap names two instants and parse() picks the later
      one (standard time), so the earlier instant of an overlap comes back one DST step later.
    * Offsets are written in whole minutes; before 1906 Asia/Kolkata was at +05:21:10, so
      patterns with an offset come back 10 seconds off there.
    """
    instant = _EPOCH + timedelta(milliseconds=ms)
    fmt = compile(pattern, zone)
    text = fmt.format(instant)
    parsed = fmt.parse(text)

    precision = 1 if "SSS" in pattern else 1000
    expected_ms = ms // precision * precision
    tz = parse_zone(zone)
    local = instant.astimezone(tz)
    has_offset = any(letter in pattern.replace("'Z'", "") for letter in "XZz")
    if has_offset:
        offset = local.utcoffset()
        assert offset is not None
        expected_ms += offset // timedelta(milliseconds=1) - _java_offset_minutes_ms(offset)
    else:
        other = local.replace(fold=1 - local.fold)
        if other.utcoffset() != local.utcoffset():  # a real instant in an overlap
            later = local.replace(fold=1)
            expected_ms = (later - _EPOCH) // timedelta(milliseconds=1) // precision * precision
    assert (parsed - _EPOCH) // timedelta(milliseconds=1) == expected_ms, text
