"""Benchmark: poller.javadate against the standard library and dateutil.

Measures microseconds per call for parsing and formatting with the eight date patterns most
common in the real-world polling-configuration corpus
(``/work/shared/reference/cloud-elements.md`` section 8), and prints them next to

* parsing: ``datetime.strptime`` with the equivalent format (made timezone-aware the same way),
  and ``dateutil.parser.parse`` on the same strings;
* formatting: ``dt.astimezone(zone).strftime(...)`` (or the nearest stdlib equivalent) on the
  same datetimes,

as ratios ``baseline / ours`` measured in the same run, so machine noise mostly cancels.
The issue's target is at least 3x faster than strptime and 10x faster than dateutil.

Every text is first parsed by both sides and the instants (and UTC offsets) are compared, and
every formatted string is compared with the baseline's; a mismatch is reported and that
pattern is not timed (a benchmark of wrong answers is worthless).

Run it from the repository root::

    .venv/bin/python bench/dates.py               # all eight patterns
    .venv/bin/python bench/dates.py --quick       # fewer texts and repeats
    .venv/bin/python bench/dates.py --pattern "yyyy-MM-dd HH:mm:ss"   # or --pattern 3
    .venv/bin/python bench/dates.py --pattern 8 --profile   # cProfile of our parse loop

It is a report, not a gate: the exit status is 0 whether or not the targets are met, and 1 only
when our results disagree with the baseline's.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import platform
import pstats
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

# Measure the checkout this script lives in, whether or not it is the installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dateutil  # noqa: E402
from dateutil import parser as dateutil_parser  # noqa: E402

from poller import javadate  # noqa: E402

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
# Random instants from 2000-01-01 up to the end of 2030, to the millisecond.
START_MS = (datetime(2000, 1, 1, tzinfo=UTC) - EPOCH) // ONE_MS
END_MS = (datetime(2031, 1, 1, tzinfo=UTC) - EPOCH) // ONE_MS
# Texts for patterns that carry an offset are produced in these zones, so they carry
# "Z"/"+0000", a DST-varying negative offset and a half-hour positive one.
OFFSET_ZONES = ("UTC", "America/New_York", "Asia/Kolkata")
# Formatting with an offset-carrying pattern is measured in this zone (DST, negative offset).
OFFSET_FORMAT_ZONE = "America/New_York"

TARGET_STRPTIME = 3.0  # geometric mean (issue 2)
TARGET_EACH_STRPTIME = 5.0  # every common pattern (issue 12)
TARGET_DATEUTIL = 10.0


@dataclass(frozen=True)
class Case:
    pattern: str
    text_zones: tuple[str, ...]       # zones our formatter uses to produce the parse texts
    parse_desc: str                   # the stdlib parse baseline, as shown in the report
    stdlib_parse: Callable[[str], datetime]
    dateutil_parse: Callable[[str], datetime] | None   # None: dateutil cannot read these texts
    format_zone: str
    format_desc: str                  # the stdlib format baseline, as shown in the report
    stdlib_format: Callable[[datetime], str]


def _strptime(fmt: str, *, attach_utc: bool) -> Callable[[str], datetime]:
    strptime = datetime.strptime
    if attach_utc:  # literal 'Z' or no zone in the text: the format's zone (UTC) applies
        return lambda s: strptime(s, fmt).replace(tzinfo=UTC)
    return lambda s: strptime(s, fmt)


def _dateutil(*, attach_utc: bool) -> Callable[[str], datetime]:
    parse = dateutil_parser.parse
    if attach_utc:  # no zone in the text: dateutil returns a naive datetime
        return lambda s: parse(s).replace(tzinfo=UTC)
    return parse


def _strftime(fmt: str, zone: str) -> Callable[[datetime], str]:
    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    return lambda dt: dt.astimezone(tz).strftime(fmt)


def _cases() -> list[Case]:
    ny = ZoneInfo(OFFSET_FORMAT_ZONE)
    fromtimestamp = datetime.fromtimestamp

    def millis_format(dt: datetime) -> str:
        return str((dt - EPOCH) // ONE_MS)

    def xxx_format(dt: datetime) -> str:
        return dt.astimezone(ny).isoformat(timespec="seconds")

    def sss_z_literal_format(dt: datetime) -> str:
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def sss_offset_format(dt: datetime) -> str:
        s = dt.astimezone(ny).strftime("%Y-%m-%dT%H:%M:%S.%f%z")
        return s[:23] + s[26:]  # drop the last three digits of %f (4-digit years only)

    return [
        Case("milliseconds", ("UTC",),
             "datetime.fromtimestamp(int(s) / 1000, timezone.utc)",
             lambda s: fromtimestamp(int(s) / 1000, UTC),
             None,
             "UTC", "str((dt - EPOCH) // timedelta(milliseconds=1))", millis_format),
        Case("yyyy-MM-dd'T'HH:mm:ssXXX", OFFSET_ZONES,
             "strptime %Y-%m-%dT%H:%M:%S%z",
             _strptime("%Y-%m-%dT%H:%M:%S%z", attach_utc=False), _dateutil(attach_utc=False),
             OFFSET_FORMAT_ZONE,
             "dt.astimezone(zone).isoformat(timespec='seconds')  (%:z needs Python 3.12)",
             xxx_format),
        Case("yyyy-MM-dd HH:mm:ss", ("UTC",),
             "strptime %Y-%m-%d %H:%M:%S, then .replace(tzinfo=utc)",
             _strptime("%Y-%m-%d %H:%M:%S", attach_utc=True), _dateutil(attach_utc=True),
             "UTC", "strftime %Y-%m-%d %H:%M:%S", _strftime("%Y-%m-%d %H:%M:%S", "UTC")),
        Case("yyyy-MM-dd'T'HH:mm:ss'Z'", ("UTC",),
             "strptime %Y-%m-%dT%H:%M:%SZ, then .replace(tzinfo=utc)",
             _strptime("%Y-%m-%dT%H:%M:%SZ", attach_utc=True), _dateutil(attach_utc=False),
             "UTC", "strftime %Y-%m-%dT%H:%M:%SZ", _strftime("%Y-%m-%dT%H:%M:%SZ", "UTC")),
        Case("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", ("UTC",),
             "strptime %Y-%m-%dT%H:%M:%S.%fZ, then .replace(tzinfo=utc)",
             _strptime("%Y-%m-%dT%H:%M:%S.%fZ", attach_utc=True), _dateutil(attach_utc=False),
             "UTC", "strftime %Y-%m-%dT%H:%M:%S.%f, [:-3] + 'Z'", sss_z_literal_format),
        Case("yyyy-MM-dd'T'HH:mm:ss.SSSZ", OFFSET_ZONES,
             "strptime %Y-%m-%dT%H:%M:%S.%f%z",
             _strptime("%Y-%m-%dT%H:%M:%S.%f%z", attach_utc=False), _dateutil(attach_utc=False),
             OFFSET_FORMAT_ZONE, "strftime %Y-%m-%dT%H:%M:%S.%f%z, 3 digits of %f sliced out",
             sss_offset_format),
        Case("MM/dd/yyyy HH:mm:ss", ("UTC",),
             "strptime %m/%d/%Y %H:%M:%S, then .replace(tzinfo=utc)",
             _strptime("%m/%d/%Y %H:%M:%S", attach_utc=True), _dateutil(attach_utc=True),
             "UTC", "strftime %m/%d/%Y %H:%M:%S", _strftime("%m/%d/%Y %H:%M:%S", "UTC")),
        Case("EEE, dd MMM yyyy HH:mm:ss Z", OFFSET_ZONES,
             "strptime %a, %d %b %Y %H:%M:%S %z",
             _strptime("%a, %d %b %Y %H:%M:%S %z", attach_utc=False), _dateutil(attach_utc=False),
             OFFSET_FORMAT_ZONE, "strftime %a, %d %b %Y %H:%M:%S %z",
             _strftime("%a, %d %b %Y %H:%M:%S %z", OFFSET_FORMAT_ZONE)),
    ]


# -- data


def _inputs(case: Case, n: int, seed: int) -> tuple[list[str], list[datetime]]:
    """``n`` distinct texts (made by our own formatter) and ``n`` distinct UTC datetimes."""
    rng = random.Random(f"{seed}:{case.pattern}")
    formatters = [javadate.compile(case.pattern, zone) for zone in case.text_zones]
    texts: dict[str, None] = {}
    instants: dict[int, None] = {}
    i = 0
    while len(texts) < n or len(instants) < n:
        ms = rng.randrange(START_MS, END_MS)
        dt = EPOCH + timedelta(milliseconds=ms)
        if len(instants) < n:
            instants[ms] = None
        if len(texts) < n:
            texts[formatters[i % len(formatters)].format(dt)] = None
        i += 1
    return list(texts), [EPOCH + timedelta(milliseconds=ms) for ms in instants]


# -- verification


def _same(a: datetime, b: datetime) -> bool:
    return a == b and a.utcoffset() == b.utcoffset()


def _check_parse(name: str, ours: Callable[[str], datetime], other: Callable[[str], datetime],
                 texts: list[str]) -> list[str]:
    problems = []
    for text in texts:
        try:
            mine = ours(text)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            problems.append(f"{text!r}: ours raised {exc!r}")
            continue
        try:
            theirs = other(text)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{text!r}: {name} raised {exc!r}")
            continue
        if not _same(mine, theirs):
            problems.append(f"{text!r}: ours {mine.isoformat()} != {name} {theirs.isoformat()}")
    return problems


def _check_format(ours: Callable[[datetime], str], other: Callable[[datetime], str],
                  datetimes: list[datetime]) -> list[str]:
    problems = []
    for dt in datetimes:
        try:
            mine = ours(dt)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{dt.isoformat()}: ours raised {exc!r}")
            continue
        theirs = other(dt)
        if mine != theirs:
            problems.append(f"{dt.isoformat()}: ours {mine!r} != stdlib {theirs!r}")
    return problems


def _report_problems(what: str, pattern: str, problems: list[str]) -> None:
    print(f"MISMATCH {what} {pattern!r}: {len(problems)} disagreement(s); first ones:")
    for line in problems[:5]:
        print(f"    {line}")


# -- timing


def _best_ns_per_call(contenders: list[Callable], items: list, repeats: int) -> list[float]:
    """Best-of-``repeats`` ns per call for each contender, the repeats interleaved round-robin
    so that a slow patch of the machine hits every contender alike."""
    best = [math.inf] * len(contenders)
    perf = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for k, func in enumerate(contenders):
                t0 = perf()
                for item in items:
                    func(item)
                best[k] = min(best[k], perf() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [b / len(items) for b in best]


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def _us(ns: float | None) -> str:
    return "n/a" if ns is None else f"{ns / 1000:.2f}"


def _ratio(base: float | None, ours: float | None) -> str:
    return "n/a" if base is None or ours is None else f"{base / ours:.2f}x"


def _below(ratios: list[tuple[str, float]], target: float) -> str:
    below = [f"{p} ({r:.2f}x)" for p, r in ratios if r < target]
    return ", ".join(below) if below else "none"


def _verdict(value: float, target: float) -> str:
    return f"{'met' if value >= target else 'NOT met'} (target >= {target:g}x)"


# -- main


def _select(cases: list[Case], which: str | None, ap: argparse.ArgumentParser) -> list[Case]:
    if which is None:
        return cases
    if which.isdigit() and 1 <= int(which) <= len(cases):
        return [cases[int(which) - 1]]
    for case in cases:
        if case.pattern == which:
            return [case]
    choices = "\n".join(f"  {i}: {c.pattern}" for i, c in enumerate(cases, 1))
    ap.error(f"--pattern must be one of these patterns (or its number):\n{choices}")


def _profile(case: Case, texts: list[str], repeats: int, sort: str) -> None:
    parse = javadate.compile(case.pattern).parse
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        for text in texts:
            parse(text)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(sort).print_stats(15)
    print(f"\ncProfile of our parse, {case.pattern!r}: {repeats} x {len(texts)} texts, "
          f"top 15 by {sort}")
    print(out.getvalue().rstrip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 texts and 3 repeats")
    ap.add_argument("-n", type=int, help="texts (and datetimes) per pattern (default 2000)")
    ap.add_argument("--repeats", type=int, help="timed loops per contender; the best counts "
                                                "(default 5)")
    ap.add_argument("--seed", type=int, default=20240229)
    ap.add_argument("--pattern", metavar="P", help="run one pattern (exact text, or 1-8)")
    ap.add_argument("--profile", action="store_true",
                    help="instead of the tables, run our parse loop under cProfile")
    ap.add_argument("--profile-sort", default="tottime", choices=("tottime", "cumulative"),
                    help="order of the profile listing (default tottime)")
    args = ap.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    repeats = args.repeats or (3 if args.quick else 5)
    if n < 1 or repeats < 1:
        ap.error("-n and --repeats must be positive")
    cases = _select(_cases(), args.pattern, ap)

    print(f"poller.javadate benchmark: {n} texts/datetimes per pattern, best of {repeats}, "
          f"seed {args.seed}")
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on "
          f"{platform.machine()}, dateutil {dateutil.__version__}")

    failed = False
    parse_rows, format_rows = [], []
    for case in cases:
        texts, datetimes = _inputs(case, n, args.seed)
        fmt_parse = javadate.compile(case.pattern)  # zone UTC, as the baselines assume
        fmt_format = javadate.compile(case.pattern, case.format_zone)

        problems = _check_parse("stdlib", fmt_parse.parse, case.stdlib_parse, texts)
        if problems:
            _report_problems("parse vs stdlib", case.pattern, problems)
            failed = True
            continue
        dateutil_parse = case.dateutil_parse
        if dateutil_parse is not None:
            problems = _check_parse("dateutil", fmt_parse.parse, dateutil_parse, texts)
            if problems:  # dateutil's reading, not ours: leave it out of the comparison
                _report_problems("parse vs dateutil (dateutil left out)", case.pattern, problems)
                dateutil_parse = None
        format_problems = _check_format(fmt_format.format, case.stdlib_format, datetimes)
        if format_problems:
            _report_problems("format vs stdlib", case.pattern, format_problems)
            failed = True

        if args.profile:
            _profile(case, texts, repeats, args.profile_sort)
            continue

        contenders = [fmt_parse.parse, case.stdlib_parse]
        if dateutil_parse is not None:
            contenders.append(dateutil_parse)
        times = _best_ns_per_call(contenders, texts, repeats)
        parse_rows.append((case.pattern, times[0], times[1],
                           times[2] if dateutil_parse is not None else None))
        if not format_problems:
            ours_ns, std_ns = _best_ns_per_call([fmt_format.format, case.stdlib_format],
                                                datetimes, repeats)
            format_rows.append((case.pattern, case.format_zone, ours_ns, std_ns))

    if args.profile:
        return 1 if failed else 0

    width = max([len(c.pattern) for c in cases] + [len("pattern")])
    if parse_rows:
        print(f"\nPARSE (µs per call; ratio = baseline / ours, higher is better)")
        print(f"{'pattern':<{width}}  {'ours':>7}  {'strptime':>8}  {'dateutil':>8}  "
              f"{'x strptime':>10}  {'x dateutil':>10}")
        for pattern, ours, std, du in parse_rows:
            std_us = _us(std) + ("*" if pattern == javadate.MILLISECONDS else "")
            print(f"{pattern:<{width}}  {_us(ours):>7}  {std_us:>8}  {_us(du):>8}  "
                  f"{_ratio(std, ours):>10}  {_ratio(du, ours):>10}")
    if format_rows:
        zwidth = max(len(r[1]) for r in format_rows)
        print(f"\nFORMAT (µs per call; same UTC datetimes, rendered in the zone shown)")
        print(f"{'pattern':<{width}}  {'zone':<{zwidth}}  {'ours':>7}  {'stdlib':>7}  "
              f"{'x stdlib':>8}")
        for pattern, zone, ours, std in format_rows:
            print(f"{pattern:<{width}}  {zone:<{zwidth}}  {_us(ours):>7}  {_us(std):>7}  "
                  f"{_ratio(std, ours):>8}")

    print("\nBaselines (* 'milliseconds' has no strptime form: its stdlib baseline is "
          "fromtimestamp; dateutil cannot read epoch numbers):")
    for case in cases:
        print(f"  {case.pattern:<{width}}  parse: {case.parse_desc}")
        print(f"  {'':<{width}}  format: {case.format_desc}")

    print("\nSUMMARY")
    if parse_rows:
        # The target is stated against strptime; 'milliseconds' has no strptime form, so it is
        # summarised on its own against fromtimestamp and left out of the strptime verdict.
        strp = [(p, std / ours) for p, ours, std, _ in parse_rows if p != javadate.MILLISECONDS]
        millis = [(p, std / ours) for p, ours, std, _ in parse_rows if p == javadate.MILLISECONDS]
        vs_du = [(p, du / ours) for p, ours, _, du in parse_rows if du is not None]
        if strp:
            g = _geomean([r for _, r in strp])
            print(f"  parse vs strptime ({len(strp)} patterns): geometric mean {g:.2f}x, "
                  f"{_verdict(g, TARGET_STRPTIME)}; below target: {_below(strp, TARGET_STRPTIME)}")
            worst = min(r for _, r in strp)
            print(f"  parse vs strptime, every pattern >= {TARGET_EACH_STRPTIME:g}x: slowest {worst:.2f}x, "
                  f"{_verdict(worst, TARGET_EACH_STRPTIME)}; below: {_below(strp, TARGET_EACH_STRPTIME)}")
        if millis:
            g_all = _geomean([r for _, r in strp + millis])
            print(f"  parse milliseconds vs datetime.fromtimestamp: {millis[0][1]:.2f}x "
                  f"(geometric mean of all {len(strp) + 1} stdlib ratios: {g_all:.2f}x)")
        if vs_du:
            g = _geomean([r for _, r in vs_du])
            print(f"  parse vs dateutil ({len(vs_du)} patterns): geometric mean {g:.2f}x, "
                  f"{_verdict(g, TARGET_DATEUTIL)}; below target: {_below(vs_du, TARGET_DATEUTIL)}")
    if format_rows:
        ratios = [(p, std / ours) for p, _, ours, std in format_rows]
        g = _geomean([r for _, r in ratios])
        print(f"  format vs stdlib ({len(ratios)} patterns): geometric mean {g:.2f}x "
              f"(no target in the issue); slower than stdlib: {_below(ratios, 1.0)}")
    if failed:
        print("  RESULTS DISAGREE with the baseline for some pattern (see above); "
              "those patterns were not timed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
