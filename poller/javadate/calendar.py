"""java.util.GregorianCalendar arithmetic (Locale.US: weeks start on Sunday, week 1 holds Jan 1).

Dates before 1582-10-15 are Julian, as in Java. Everything works on integers: "local
milliseconds" are milliseconds since 1970-01-01T00:00 of the wall clock, and "fixed dates"
count days from 0001-01-01 (proleptic Gregorian) = 1, like ``date.toordinal()``.

:func:`local_ms_from_fields` is a port of ``GregorianCalendar.computeTime`` in non-lenient
mode (field selection, range checks, and the check that every field set by the parser agrees
with the date it produced); :func:`fields_from_local_ms` is ``computeFields``.
"""

from __future__ import annotations

__all__ = [
    "CalendarError",
    "check_fields",
    "fields_from_local_ms",
    "local_ms_from_fields",
    "FIELD_NAMES",
]

(ERA, YEAR, MONTH, WEEK_OF_YEAR, WEEK_OF_MONTH, DAY_OF_MONTH, DAY_OF_YEAR, DAY_OF_WEEK,
 DAY_OF_WEEK_IN_MONTH, AM_PM, HOUR, HOUR_OF_DAY, MINUTE, SECOND, MILLISECOND, ZONE_OFFSET,
 DST_OFFSET, WEEK_YEAR) = range(18)
FIELD_COUNT = 17
FIELD_NAMES = (
    "era", "year", "month", "week of year", "week of month", "day of month", "day of year",
    "day of week", "day of week in month", "AM/PM", "hour", "hour of day", "minute", "second",
    "millisecond", "zone offset", "DST offset", "week year",
)
SUNDAY = 1
FIRST_DAY_OF_WEEK = SUNDAY
MINIMAL_DAYS_IN_FIRST_WEEK = 1
MS_PER_DAY = 86_400_000
EPOCH_FIXED = 719_163  # fixed date of 1970-01-01
CUTOVER_FIXED = 577_736  # fixed date of 1582-10-15, the first Gregorian day
CUTOVER_YEAR = 1582
_H = 3_600_000
_MIN = (0, 1, 0, 1, 0, 1, 1, 1, -1, 0, 0, 0, 0, 0, 0, -13 * _H, 0)
_MAX = (1, 292_278_994, 11, 53, 6, 31, 366, 7, 6, 1, 11, 23, 59, 59, 999, 14 * _H, 2 * _H)
_CUMULATIVE = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


class CalendarError(ValueError):
    """The parsed fields do not make a valid date in strict mode."""


def is_gregorian_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def is_julian_leap(y: int) -> bool:
    return y % 4 == 0


def gregorian_fixed(y: int, m: int, d: int) -> int:
    """Fixed date of a proleptic Gregorian date (y may be <= 0; m is 1..12)."""
    p = y - 1
    fixed = 365 * p + p // 4 - p // 100 + p // 400 + (367 * m - 362) // 12 + d
    if m > 2:
        fixed -= 1 if is_gregorian_leap(y) else 2
    return fixed


def julian_fixed(y: int, m: int, d: int) -> int:
    """Fixed date of a Julian date; y is the normalised year (0 is 1 BC)."""
    p = y - 1
    fixed = -2 + 365 * p + p // 4 + (367 * m - 362) // 12 + d
    if m > 2:
        fixed -= 1 if is_julian_leap(y) else 2
    return fixed


def gregorian_from_fixed(fd: int) -> tuple[int, int, int]:
    d0 = fd - 1
    n400, d1 = divmod(d0, 146_097)
    n100, d2 = divmod(d1, 36_524)
    n4, d3 = divmod(d2, 1_461)
    n1, _ = divmod(d3, 365)
    year = 400 * n400 + 100 * n100 + 4 * n4 + n1
    if not (n100 == 4 or n1 == 4):
        year += 1
    prior = fd - gregorian_fixed(year, 1, 1)
    correction = 0 if fd < gregorian_fixed(year, 3, 1) else (1 if is_gregorian_leap(year) else 2)
    month = (12 * (prior + correction) + 373) // 367
    return year, month, fd - gregorian_fixed(year, month, 1) + 1


def julian_from_fixed(fd: int) -> tuple[int, int, int]:
    year = (4 * (fd + 1) + 1464) // 1461
    prior = fd - julian_fixed(year, 1, 1)
    correction = 0 if fd < julian_fixed(year, 3, 1) else (1 if is_julian_leap(year) else 2)
    month = (12 * (prior + correction) + 373) // 367
    return year, month, fd - julian_fixed(year, month, 1) + 1


def _month_length(year: int, month: int, julian: bool) -> int:
    if month == 2:
        return 29 if (is_julian_leap(year) if julian else is_gregorian_leap(year)) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def dow_on_or_before(fixed: int, dow: int) -> int:
    """The fixed date of weekday ``dow`` (1 = Sunday) on or before ``fixed``."""
    return fixed - (fixed - (dow - 1)) % 7


def day_of_week(fixed: int) -> int:
    return fixed % 7 + 1


def _week_number(fixed_day1: int, fixed: int) -> int:
    first = dow_on_or_before(fixed_day1 + 6, FIRST_DAY_OF_WEEK)
    if first - fixed_day1 >= MINIMAL_DAYS_IN_FIRST_WEEK:
        first -= 7
    return (fixed - first) // 7 + 1


def _date_of(fixed: int) -> tuple[int, int, int, bool]:
    if fixed >= CUTOVER_FIXED:
        return (*gregorian_from_fixed(fixed), False)
    return (*julian_from_fixed(fixed), True)


def _jan1(year: int, fixed: int) -> int:
    if fixed >= CUTOVER_FIXED and year != CUTOVER_YEAR:
        return gregorian_fixed(year, 1, 1)
    return julian_fixed(year, 1, 1)


def _fixed_of(year: int, month: int, day: int) -> int:
    """Fixed date of a calendar date in Java's hybrid calendar (Julian before the cutover)."""
    if year > CUTOVER_YEAR or (year == CUTOVER_YEAR and gregorian_fixed(year, month, day) >= CUTOVER_FIXED):
        return gregorian_fixed(year, month, day)
    return julian_fixed(year, month, day)


def fields_from_local_ms(local_ms: int) -> list[int]:
    """All calendar fields (ERA..MILLISECOND, then WEEK_YEAR at index 17) of a wall-clock time."""
    fixed, tod = divmod(local_ms, MS_PER_DAY)
    fixed += EPOCH_FIXED
    year, month, dom, julian = _date_of(fixed)
    jan1 = _jan1(year, fixed)
    woy = _week_number(jan1, fixed)
    if woy == 0:
        prev_jan1 = _jan1(year - 1, jan1 - 1)
        woy = _week_number(prev_jan1, jan1 - 1)
    elif woy >= 52:
        next_jan1 = _fixed_of(year + 1, 1, 1)
        next_first = dow_on_or_before(next_jan1 + 6, FIRST_DAY_OF_WEEK)
        if next_first - next_jan1 >= MINIMAL_DAYS_IN_FIRST_WEEK and fixed >= next_first - 7:
            woy = 1
    month1 = fixed - dom + 1
    hour, rest = divmod(tod, _H)
    minute, rest = divmod(rest, 60_000)
    second, ms = divmod(rest, 1000)
    week_year = year
    if month == 1 and woy >= 52:
        week_year -= 1
    elif month != 1 and woy == 1:
        week_year += 1
    era, year_of_era = (1, year) if year > 0 else (0, 1 - year)
    week_year_of_era = week_year if week_year > 0 else 1 - week_year
    return [
        era, year_of_era, month - 1, woy, _week_number(month1, fixed), dom, fixed - jan1 + 1,
        day_of_week(fixed), (dom - 1) // 7 + 1, 1 if hour >= 12 else 0, hour % 12, hour, minute,
        second, ms, 0, 0, week_year_of_era,
    ]


def _aggregate(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else max(a, b)


def _select_fields(stamp: list[int]) -> set[int]:
    """Calendar.selectFields: which of the set fields determine the date and time."""
    mask = {YEAR}
    if stamp[ERA]:
        mask.add(ERA)
    dow_s = stamp[DAY_OF_WEEK]
    month_s = stamp[MONTH]
    dom_s = stamp[DAY_OF_MONTH]
    wom_s = _aggregate(stamp[WEEK_OF_MONTH], dow_s)
    dowim_s = _aggregate(stamp[DAY_OF_WEEK_IN_MONTH], dow_s)
    doy_s = stamp[DAY_OF_YEAR]
    woy_s = _aggregate(stamp[WEEK_OF_YEAR], dow_s)
    best = max(dom_s, wom_s, dowim_s, doy_s, woy_s)
    if best == 0:
        wom_s = stamp[WEEK_OF_MONTH]
        dowim_s = max(stamp[DAY_OF_WEEK_IN_MONTH], dow_s)
        woy_s = stamp[WEEK_OF_YEAR]
        best = max(wom_s, dowim_s, woy_s)
        if best == 0:
            best = dom_s = month_s
    if (best == dom_s
            or (best == wom_s and stamp[WEEK_OF_MONTH] >= stamp[WEEK_OF_YEAR])
            or (best == dowim_s and stamp[DAY_OF_WEEK_IN_MONTH] >= stamp[WEEK_OF_YEAR])):
        mask.add(MONTH)
        if best == dom_s:
            mask.add(DAY_OF_MONTH)
        else:
            if dow_s:
                mask.add(DAY_OF_WEEK)
            if wom_s == dowim_s:
                if stamp[WEEK_OF_MONTH] >= stamp[DAY_OF_WEEK_IN_MONTH]:
                    mask.add(WEEK_OF_MONTH)
                else:
                    mask.add(DAY_OF_WEEK_IN_MONTH)
            elif best == wom_s:
                mask.add(WEEK_OF_MONTH)
            elif stamp[DAY_OF_WEEK_IN_MONTH]:
                mask.add(DAY_OF_WEEK_IN_MONTH)
    elif best == doy_s:
        mask.add(DAY_OF_YEAR)
    else:
        if dow_s:
            mask.add(DAY_OF_WEEK)
        mask.add(WEEK_OF_YEAR)
    hod_s = stamp[HOUR_OF_DAY]
    hour_s = _aggregate(stamp[HOUR], stamp[AM_PM])
    best = max(hour_s, hod_s)
    if best == 0:
        best = max(stamp[HOUR], stamp[AM_PM])
    if best:
        if best == hod_s:
            mask.add(HOUR_OF_DAY)
        else:
            mask.add(HOUR)
            if stamp[AM_PM]:
                mask.add(AM_PM)
    return mask


def _fixed_from_fields(julian: bool, year: int, mask: set[int], value: list[int], stamp: list[int]) -> int:
    """GregorianCalendar.getFixedDate for one calendar system."""
    fixed_of = julian_fixed if julian else gregorian_fixed
    month = 0
    if MONTH in mask:
        month = value[MONTH]
        year += month // 12
        month %= 12
    fixed = fixed_of(year, month + 1, 1)
    if MONTH in mask:
        if DAY_OF_MONTH in mask:
            if stamp[DAY_OF_MONTH]:
                fixed += value[DAY_OF_MONTH] - 1
        elif WEEK_OF_MONTH in mask:
            first = dow_on_or_before(fixed + 6, FIRST_DAY_OF_WEEK)
            if first - fixed >= MINIMAL_DAYS_IN_FIRST_WEEK:
                first -= 7
            if DAY_OF_WEEK in mask:
                first = dow_on_or_before(first + 6, value[DAY_OF_WEEK])
            fixed = first + 7 * (value[WEEK_OF_MONTH] - 1)
        else:
            dow = value[DAY_OF_WEEK] if DAY_OF_WEEK in mask else FIRST_DAY_OF_WEEK
            dowim = value[DAY_OF_WEEK_IN_MONTH] if DAY_OF_WEEK_IN_MONTH in mask else 1
            if dowim >= 0:
                fixed = dow_on_or_before(fixed + 7 * dowim - 1, dow)
            else:
                last = _month_length(year, month + 1, julian) + 7 * (dowim + 1)
                fixed = dow_on_or_before(fixed + last - 1, dow)
    else:
        if year == CUTOVER_YEAR and not julian and fixed < CUTOVER_FIXED:
            fixed = CUTOVER_FIXED
        if DAY_OF_YEAR in mask:
            fixed += value[DAY_OF_YEAR] - 1
        else:
            first = dow_on_or_before(fixed + 6, FIRST_DAY_OF_WEEK)
            if first - fixed >= MINIMAL_DAYS_IN_FIRST_WEEK:
                first -= 7
            if DAY_OF_WEEK in mask and value[DAY_OF_WEEK] != FIRST_DAY_OF_WEEK:
                first = dow_on_or_before(first + 6, value[DAY_OF_WEEK])
            fixed = first + 7 * (value[WEEK_OF_YEAR] - 1)
    return fixed


def _week_date(week_year: int, week: int, dow: int, era: int) -> tuple[int, int, int]:
    """GregorianCalendar.setWeekDate (strict): the (year, month 0-based, day) it sets."""
    if not 1 <= dow <= 7:
        raise CalendarError(f"invalid day of week {dow}")
    year = week_year if era == 1 else 1 - week_year
    jan1 = _fixed_of(year, 1, 1)
    first = dow_on_or_before(jan1 + 6, FIRST_DAY_OF_WEEK)
    if first - jan1 >= MINIMAL_DAYS_IN_FIRST_WEEK:
        first -= 7
    fixed = first + (dow - FIRST_DAY_OF_WEEK) % 7 + 7 * (week - 1)
    fields = fields_from_local_ms((fixed - EPOCH_FIXED) * MS_PER_DAY)
    if fields[WEEK_YEAR] != week_year or fields[WEEK_OF_YEAR] != week or fields[DAY_OF_WEEK] != dow:
        raise CalendarError(f"week {week} of week year {week_year} has no day {dow}")
    return fields[YEAR] if fields[ERA] == 1 else 1 - fields[YEAR], fields[MONTH], fields[DAY_OF_MONTH]


def local_ms_from_fields(stamp: list[int], value: list[int]) -> int:
    """Wall-clock milliseconds from parsed fields, rejecting anything strict Java rejects.

    ``stamp[f]`` is 0 when field ``f`` was not parsed, else its parse order (1, 2, ...);
    index 17 is the week year (``Y``). Zone fields are ignored here.
    """
    stamp = list(stamp)
    value = list(value)
    if stamp[WEEK_YEAR] and stamp[WEEK_YEAR] > stamp[YEAR]:
        week = value[WEEK_OF_YEAR] if stamp[WEEK_OF_YEAR] else 1
        dow = value[DAY_OF_WEEK] if stamp[DAY_OF_WEEK] else FIRST_DAY_OF_WEEK
        era = value[ERA] if stamp[ERA] else 1
        year, month, day = _week_date(value[WEEK_YEAR], week, dow, era)
        top = max(stamp) + 1
        for offset, (field, v) in enumerate(
            ((ERA, 1 if year > 0 else 0), (YEAR, year if year > 0 else 1 - year), (MONTH, month), (DAY_OF_MONTH, day))
        ):
            stamp[field], value[field] = top + offset, v
    _check_ranges(stamp, value)
    mask = _select_fields(stamp)
    year = value[YEAR] if stamp[YEAR] else 1970
    era = value[ERA] if stamp[ERA] else 1
    if era == 0:
        year = 1 - year
    elif era != 1:
        raise CalendarError("invalid era")
    if HOUR_OF_DAY in mask:
        tod = value[HOUR_OF_DAY]
    else:
        tod = value[HOUR] + (12 * value[AM_PM] if AM_PM in mask else 0)
    tod = ((tod * 60 + value[MINUTE]) * 60 + value[SECOND]) * 1000 + value[MILLISECOND]
    day_shift, tod = divmod(tod, MS_PER_DAY)
    if year > CUTOVER_YEAR:
        fixed = day_shift + _fixed_from_fields(False, year, mask, value, stamp)
    elif year < CUTOVER_YEAR:
        fixed = day_shift + _fixed_from_fields(True, year, mask, value, stamp)
    else:
        jfd = day_shift + _fixed_from_fields(True, year, mask, value, stamp)
        gfd = day_shift + _fixed_from_fields(False, year, mask, value, stamp)
        if DAY_OF_YEAR in mask or WEEK_OF_YEAR in mask:
            fixed = jfd
        elif gfd >= CUTOVER_FIXED:
            fixed = gfd
        elif jfd < CUTOVER_FIXED:
            fixed = jfd
        else:
            raise CalendarError("the date does not exist (Julian-Gregorian cutover)")
    local_ms = (fixed - EPOCH_FIXED) * MS_PER_DAY + tod
    check_fields(stamp, value, local_ms)
    return local_ms


def check_fields(stamp: list[int], value: list[int], local_ms: int) -> None:
    """Strict mode's last word: every parsed field must read the same from the final wall time."""
    computed = fields_from_local_ms(local_ms)
    for field in range(ZONE_OFFSET):
        if stamp[field] and computed[field] != value[field]:
            raise CalendarError(f"{FIELD_NAMES[field]} {value[field]} does not match the date")


def _check_ranges(stamp: list[int], value: list[int]) -> None:
    for field in range(FIELD_COUNT):
        if stamp[field] and not _MIN[field] <= value[field] <= _MAX[field]:
            raise CalendarError(f"{FIELD_NAMES[field]} {value[field]} is out of range")
