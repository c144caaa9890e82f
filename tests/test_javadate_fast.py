"""The fast paths never disagree with the reference port of SimpleDateFormat.

Hypothesis mutates canonical texts (replacing, inserting and deleting characters) and checks
that whenever a fast path gives an answer it is the reference engine's answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
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
    fmt, _, text = draw(mutated_pair())
    return fmt, text


@st.composite
def mutated_pair(draw: st.DrawFn) -> tuple[javadate.DateFormat, str, str]:
    """(format, a canonical text, that text mutated up to three times)."""
    fmt = javadate.compile(draw(st.sampled_from(PATTERNS)), draw(st.sampled_from(ZONES)))
    ms = draw(st.integers(min_value=-2_500_000_000_000, max_value=4_200_000_000_000))
    canonical = text = _sdf.format_ms(fmt._elements, fmt.zone, ms)
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
    return fmt, canonical, text


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_fast_parse_agrees_with_the_reference(case: tuple[javadate.DateFormat, str]) -> None:
    fmt, text = case
    fast = fmt._fast_parse(text)
    if fast is not None:
        assert to_ms(fast) == _reference(fmt, text), (fmt, text)


@settings(max_examples=1500, deadline=None)
@given(mutated_pair())
def test_fast_ms_agrees_with_the_reference(case: tuple[javadate.DateFormat, str, str]) -> None:
    """The ms form (what detection calls) too, with the canonical text read first: the ISO
    patterns keep the minutes they have read, and the mutated text must not get past them."""
    fmt, canonical, text = case
    fast_ms = fmt.fast_ms
    assert fast_ms is not None, fmt
    first = fast_ms(canonical)
    if first is not None:
        assert first == _reference(fmt, canonical), (fmt, canonical)
    again = fast_ms(text)
    if again is not None:
        assert again == _reference(fmt, text), (fmt, canonical, text)


@pytest.mark.parametrize("text", [
    "2024-06-03T11:43:60.065+05:30", "2024-06-03T11:43:3a.065+05:30", "2024-06-03T11:43:30,065+05:30",
    "2024-06-03T11:43:30.06+05:30", "2024-06-03T11:43:30.0651+05:30", "2024-06-03T11:43:30.065+05:60",
    "2024-06-03T11:43:30.065+5:30", "2024-06-03T11:43:30.065 +05:30", "2024-06-03T11:43:30.065+05:30 ",
    "2024-06-03T11:43:30.065z", "2024-06-03T11:43:30.065", "2024-06-03T11:43:30.\uff10\uff10\uff10Z",
    "2024-06-03T11:43:30.065+14:01", "2024-06-03T11:43:30.065-13:01",
])
def test_a_kept_minute_does_not_let_a_wrong_tail_through(text: str) -> None:
    fmt = javadate.compile("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "UTC")
    fast_ms = fmt.fast_ms
    assert fast_ms is not None
    for known in ("2024-06-03T11:43:00.000+05:30", "2024-06-03T11:43:00.000Z", "2024-06-03T11:43:00.000-04:00"):
        assert fast_ms(known) == _reference(fmt, known)
    assert fast_ms(text) is None
    assert fast_ms(text.replace("11:43:", "11:44:", 1)) is None  # and one of a minute not kept


def test_a_kept_minute_reads_the_same_instant_in_another_offset() -> None:
    fmt = javadate.compile("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "UTC")
    fast_ms = fmt.fast_ms
    assert fast_ms is not None
    texts = ["2024-06-03T11:43:00.000+05:30", "2024-06-03T11:43:59.999+05:30", "2024-06-03T11:43:07.250Z",
             "2024-06-03T11:43:07.250-04:00", "2024-06-03T11:43:07.250+05:30"]
    assert [fast_ms(t) for t in texts] == [_reference(fmt, t) for t in texts]
    assert fast_ms(texts[2]) - fast_ms(texts[4]) == 19_800_000


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PATTERNS), st.sampled_from(ZONES),
       st.integers(min_value=-2_500_000_000_000, max_value=4_200_000_000_000))
def test_fast_format_agrees_with_the_reference(pattern: str, zone: str, ms: int) -> None:
    fmt = javadate.compile(pattern, zone)
    dt = EPOCH + timedelta(milliseconds=ms)
    fast = fmt._fast_format(dt)
    if fast is not None:
        assert fast == _sdf.format_ms(fmt._elements, fmt.zone, ms)
