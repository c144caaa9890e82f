"""The fast paths never disagree with the reference port of SimpleDateFormat.

Hypothesis mutates canonical texts (replacing, inserting and deleting characters) and checks
that whenever a fast path gives an answer it is the reference engine's answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from poller import javadate
from poller.errors import DateFormatError
from poller.javadate import _sdf
from poller.javadate.zone import to_ms

PATTERNS = [
    "yyyy-MM-dd'T'HH:mm:ssXXX", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "yyyy-MM-dd'T'HH:mm:ss.SSSZ", "MM/dd/yyyy HH:mm:ss",
    "EEE, dd MMM yyyy HH:mm:ss Z", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "MM/dd/yyyy hh:mm a",
    "yyyyMMddHHmmss", "dd/MM/yyyy", "MMM d, yyyy h:mm:ss a", "yyyy-MM-dd'T'HH:mm:ssX",
    "EEEE, MMMM d, yyyy", "yyyy-MM-dd",
]
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "EST", "-08:00"]
ALPHABET = "0123456789+-:.TZ ,/aApPmMJjFfSsuUnNdDeEbBcC\t\uff10"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_the_common_patterns_take_a_fast_path() -> None:
    for pattern in PATTERNS:
        fmt = javadate.compile(pattern, "America/New_York")
        assert fmt._fast_parse is not None, pattern
        assert fmt._fast_format is not None, pattern


def _reference(fmt: javadate.DateFormat, text: str) -> int | None:
    try:
        return _sdf.parse_ms(fmt._elements, fmt.pattern, fmt.zone, text, to_ms(javadate.DEFAULT_TWO_DIGIT_YEAR_START))[0]
    except DateFormatError:
        return None


@st.composite
def mutated(draw: st.DrawFn) -> tuple[javadate.DateFormat, str]:
    fmt = javadate.compile(draw(st.sampled_from(PATTERNS)), draw(st.sampled_from(ZONES)))
    ms = draw(st.integers(min_value=-2_500_000_000_000, max_value=4_200_000_000_000))
    text = _sdf.format_ms(fmt._elements, fmt.zone, ms)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        ch = draw(st.sampled_from(ALPHABET))
        if op == "replace" and i < len(text):
            text = text[:i] + ch + text[i + 1:]
        elif op == "insert":
            text = text[:i] + ch + text[i:]
        elif i < len(text):
            text = text[:i] + text[i + 1:]
    return fmt, text


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_fast_parse_agrees_with_the_reference(case: tuple[javadate.DateFormat, str]) -> None:
    fmt, text = case
    fast = fmt._fast_parse(text)
    if fast is not None:
        assert to_ms(fast) == _reference(fmt, text), (fmt, text)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PATTERNS), st.sampled_from(ZONES),
       st.integers(min_value=-2_500_000_000_000, max_value=4_200_000_000_000))
def test_fast_format_agrees_with_the_reference(pattern: str, zone: str, ms: int) -> None:
    fmt = javadate.compile(pattern, zone)
    dt = EPOCH + timedelta(milliseconds=ms)
    fast = fmt._fast_format(dt)
    if fast is not None:
        assert fast == _sdf.format_ms(fmt._elements, fmt.zone, ms)
