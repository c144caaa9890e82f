"""Every public JDK 17 vector in tests/data/javadates (see the README there).

Deliberate differences, each skipped here with its reason:

* Instants outside 0001-01-01..9999-12-31 (proleptic Gregorian, UTC): a Python datetime
  cannot hold them (year 10000, 1 BC and earlier). format() is only given datetimes, and
  parse() raises DateFormatError for such texts (or, for a local time just inside year 9999
  with a negative offset, returns the right instant), never another instant.
* sdf_strict results that did not consume the whole input: SimpleDateFormat ignores the
  rest of the text (reading "+05:30" with X as "+05"); we require the whole text and raise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from poller import javadate
from poller.errors import DateFormatError
from poller.javadate import _sdf
from poller.javadate.zone import from_ms, to_ms
from tests.conftest import DATA

VECTORS = DATA / "javadates"
PIN = datetime(1946, 1, 1, tzinfo=timezone.utc)  # the two-digit-year start the vectors pin
MIN_MS, MAX_MS = -62135596800000, 253402300799999


def _lines(name: str) -> Iterator[dict]:
    with open(VECTORS / name, encoding="ascii") as f:
        for line in f:
            yield json.loads(line)


def _chunks(items: list[dict], size: int = 500) -> list[list[dict]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


FORMAT = list(_lines("format-public.jsonl"))
PARSE = list(_lines("parse-public.jsonl"))


def test_vector_files_are_complete() -> None:
    assert len(FORMAT) == 13541
    assert len(PARSE) == 6016


@pytest.mark.parametrize("chunk", _chunks(FORMAT), ids=lambda c: f"{c[0]['pattern']}")
def test_format_matches_the_jdk(chunk: list[dict]) -> None:
    mismatches = []
    for v in chunk:
        if "error" in v["sdf"]:
            with pytest.raises(DateFormatError):
                javadate.compile(v["pattern"], v["zone"])
            continue
        if not MIN_MS <= v["epoch_millis"] <= MAX_MS:
            continue  # not representable by datetime (see the module docstring)
        got = javadate.compile(v["pattern"], v["zone"]).format(from_ms(v["epoch_millis"]))
        if got != v["sdf"]["text"]:
            mismatches.append((v["pattern"], v["zone"], v["label"], v["sdf"]["text"], got))
    assert mismatches == []


def _expected(v: dict) -> int | None | str:
    r = v["sdf_strict"]
    if "millis" in r and r["end"] == len(v["input"]):
        return r["millis"]
    if "error" in r and r["error"] != "unparseable":
        return "pattern-error"
    return None


@pytest.mark.parametrize("chunk", _chunks(PARSE), ids=lambda c: f"{c[0]['pattern']}")
def test_parse_matches_the_jdk_strict_mode(chunk: list[dict]) -> None:
    mismatches = []
    checked = 0
    for v in chunk:
        want = _expected(v)
        if want == "pattern-error":
            with pytest.raises(DateFormatError):
                javadate.compile(v["pattern"], v["zone"], two_digit_year_start=PIN)
            continue
        fmt = javadate.compile(v["pattern"], v["zone"], two_digit_year_start=PIN)
        try:
            got: int | None = to_ms(fmt.parse(v["input"]))
        except DateFormatError:
            got = None
        if isinstance(want, int) and not MIN_MS <= want <= MAX_MS:
            # Beyond datetime's UTC range: an error, or (an aware datetime near the edge) the right instant.
            assert got in (None, want), v
            continue
        checked += 1
        if got != want:
            mismatches.append((v["pattern"], v["zone"], v["input"], v["source"], want, got))
    assert mismatches == []
    assert checked > 0


def _reference_parse(fmt: javadate.DateFormat, text: str) -> int | None:
    try:
        utc, _ = _sdf.parse_ms(fmt._elements, fmt.pattern, fmt.zone, text, to_ms(PIN))
    except DateFormatError:
        return None
    return utc


@pytest.mark.parametrize("chunk", _chunks(PARSE, 2000), ids=lambda c: f"{c[0]['pattern']}")
def test_fast_paths_agree_with_the_reference_engine_on_every_vector(chunk: list[dict]) -> None:
    """The fast paths are only an optimisation: the port of the JDK decides."""
    disagreements = []
    for v in chunk:
        if _expected(v) == "pattern-error":
            continue
        fmt = javadate.compile(v["pattern"], v["zone"], two_digit_year_start=PIN)
        if fmt._fast_parse is None:
            continue
        fast = fmt._fast_parse(v["input"])
        if fast is not None and to_ms(fast) != _reference_parse(fmt, v["input"]):
            disagreements.append((v["pattern"], v["zone"], v["input"], to_ms(fast)))
    assert disagreements == []


@pytest.mark.parametrize("chunk", _chunks(FORMAT, 2000), ids=lambda c: f"{c[0]['pattern']}")
def test_fast_formatter_agrees_with_the_reference_engine(chunk: list[dict]) -> None:
    disagreements = []
    for v in chunk:
        if "error" in v["sdf"] or not MIN_MS <= v["epoch_millis"] <= MAX_MS:
            continue
        fmt = javadate.compile(v["pattern"], v["zone"])
        if fmt._fast_format is None:
            continue
        fast = fmt._fast_format(from_ms(v["epoch_millis"]))
        reference = _sdf.format_ms(fmt._elements, fmt.zone, v["epoch_millis"])
        if fast is not None and fast != reference:
            disagreements.append((v["pattern"], v["zone"], v["label"], fast, reference))
    assert disagreements == []
