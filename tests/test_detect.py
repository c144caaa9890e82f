"""detect: one row per rule of DESIGN.md §4, in the style of arq's next_cron table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from freezegun import freeze_time

from poller import javadate, jsonpath
from poller.poll.detect import CREATED, UPDATED, DateField, DetectSpec, detect, detect_page, event_id, next_cursor

ISO = "yyyy-MM-dd'T'HH:mm:ssXXX"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)  # aware: zone-independent


def spec(**kw: object) -> DetectSpec:
    zone = kw.pop("zone", "UTC")
    fmt = javadate.compile(str(kw.pop("fmt", ISO)), str(zone))
    updated = kw.pop("updated", "updated")
    created = kw.pop("created", "created")
    base = dict(
        instance_id="i1", resource="contacts", id_field="id", id_path=jsonpath.parse("id"),
        updated=DateField(str(updated), jsonpath.parse(str(updated)), fmt) if updated else None,
        created=DateField(str(created), jsonpath.parse(str(created)), fmt) if created else None,
    )
    base.update(kw)
    return DetectSpec(**base)  # type: ignore[arg-type]


SINCE = ms("2024-03-01T10:00:00Z")
NOW = ms("2024-03-01T10:15:00Z")

# (name, records, seen, spec kwargs, expected [(object id, event type)], expected skip counts)
CASES = [
    ("new record: created == updated -> CREATED",
     [{"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}], {}, {},
     [("1", CREATED)], {}),
    ("created within tolerance of updated -> CREATED",
     [{"id": 1, "created": "2024-03-01T09:59:55Z", "updated": "2024-03-01T10:00:04Z"}], {}, {},
     [("1", CREATED)], {}),
    ("created long before, updated now -> UPDATED",
     [{"id": 1, "created": "2023-01-01T00:00:00Z", "updated": "2024-03-01T10:05:00Z"}], {}, {},
     [("1", UPDATED)], {}),
    ("created after since but updated later than tolerance -> CREATED (created >= since)",
     [{"id": 1, "created": "2024-03-01T10:01:00Z", "updated": "2024-03-01T10:09:00Z"}], {}, {},
     [("1", CREATED)], {}),
    ("a version of the id already seen -> UPDATED even if created ~ updated",
     [{"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:08Z"}],
     {"1": {f"d:{ms('2024-03-01T10:05:00Z')}": ms("2024-03-01T10:05:00Z")}}, {},
     [("1", UPDATED)], {}),
    ("the same version already seen -> skipped, never announced twice",
     [{"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}],
     {"1": {f"d:{ms('2024-03-01T10:05:00Z')}": ms("2024-03-01T10:05:00Z")}}, {},
     [], {"seen": 1}),
    ("stamp before since -> skipped",
     [{"id": 1, "created": "2024-03-01T09:00:00Z", "updated": "2024-03-01T09:59:59Z"}], {}, {},
     [], {"before_since": 1}),
    ("stamp exactly at since -> announced (since is inclusive)",
     [{"id": 1, "created": "2024-03-01T10:00:00Z", "updated": "2024-03-01T10:00:00Z"}], {}, {},
     [("1", CREATED)], {}),
    ("no id -> skipped and counted",
     [{"name": "x", "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}], {}, {},
     [], {"no_id": 1}),
    ("an id twice on the page, its later version first: CREATED goes to the earlier version",
     [{"id": "two", "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:01Z"},
      {"id": "two", "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}], {}, {},
     [("two", CREATED), ("two", UPDATED)], {}),
    ("an id twice on the page, already known: both UPDATED",
     [{"id": "two", "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:01Z"},
      {"id": "two", "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}],
     {"two": {"d:1": 1}}, {}, [("two", UPDATED), ("two", UPDATED)], {}),
    ("ids beyond a double's range (1e400, 2e400: both inf) -> skipped, not merged into one record",
     [{"id": float("inf"), "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"},
      {"id": float("inf"), "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"},
      {"id": 2, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}], {}, {},
     [("2", CREATED)], {"no_id": 2}),
    ("unparseable date -> skipped and counted",
     [{"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "yesterday"}], {}, {},
     [], {"bad_date": 1}),
    ("missing updated date -> skipped and counted",
     [{"id": 1, "created": "2024-03-01T10:05:00Z"}], {}, {},
     [], {"bad_date": 1}),
    ("filterByCurrentDate drops records stamped after the poll started",
     [{"id": 1, "created": "2024-03-01T10:20:00Z", "updated": "2024-03-01T10:20:00Z"}], {},
     {"filter_by_current_date": True}, [], {"in_future": 1}),
    ("without filterByCurrentDate a future stamp is announced",
     [{"id": 1, "created": "2024-03-01T10:20:00Z", "updated": "2024-03-01T10:20:00Z"}], {}, {},
     [("1", CREATED)], {}),
    ("filterByUpdatedDate false: the created date is the stamp; an update is not a new version",
     [{"id": 1, "created": "2024-03-01T09:00:00Z", "updated": "2024-03-01T10:05:00Z"}], {},
     {"filter_by_updated": False}, [], {"before_since": 1}),
    ("filterByUpdatedDate false: a new record is CREATED",
     [{"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:07:00Z"}], {},
     {"filter_by_updated": False}, [("1", CREATED)], {}),
    ("no created field configured -> UPDATED",
     [{"id": 1, "updated": "2024-03-01T10:05:00Z"}], {}, {"created": None}, [("1", UPDATED)], {}),
    ("only a created field -> it is the stamp",
     [{"id": 1, "created": "2024-03-01T10:05:00Z"}], {}, {"updated": None}, [("1", CREATED)], {}),
    ("numeric ids become strings; nested id paths work",
     [{"id": 7.0, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"}], {}, {},
     [("7", CREATED)], {}),
    ("events ordered by stamp, then id",
     [{"id": "b", "created": "2024-03-01T10:06:00Z", "updated": "2024-03-01T10:06:00Z"},
      {"id": "c", "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"},
      {"id": "a", "created": "2024-03-01T10:06:00Z", "updated": "2024-03-01T10:06:00Z"}], {}, {},
     [("c", CREATED), ("a", CREATED), ("b", CREATED)], {}),
    ("two versions of one id on one page: both announced, the second UPDATED",
     [{"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"},
      {"id": 1, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:09:00Z"}], {}, {},
     [("1", CREATED), ("1", UPDATED)], {}),
    ("lenient fallback: epoch ms in a field declared with a pattern",
     [{"id": 1, "created": 1709287500000, "updated": 1709287500000}], {}, {},
     [("1", CREATED)], {}),
    ("local-time stamps in the configured zone",
     [{"id": 1, "created": "2024-03-01 05:05:00", "updated": "2024-03-01 05:05:00"}], {},
     {"fmt": "yyyy-MM-dd HH:mm:ss", "zone": "America/New_York"}, [("1", CREATED)], {}),
]


@pytest.fixture(params=["UTC", "Europe/Berlin", "Pacific/Chatham"])
def local_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run under several process time zones: detection must not depend on the machine's zone."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("records", "seen", "kwargs", "expected", "skips"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_detection_rules(records: list, seen: dict, kwargs: dict, expected: list, skips: dict, local_zone: str) -> None:
    result = detect_page(records, seen, spec(**kwargs), since_ms=SINCE, now_ms=NOW)
    assert [(e.object_id, e.event_type) for e in result.events] == expected
    for reason in ("no_id", "bad_date", "before_since", "in_future", "seen"):
        assert getattr(result.skips, reason) == skips.get(reason, 0), reason


def test_skips_keep_one_example_per_reason() -> None:
    records = [{"id": i, "created": "x", "updated": "bad"} for i in range(3)]
    result = detect_page(records, {}, spec(), since_ms=SINCE, now_ms=NOW)
    assert result.skips.bad_date == 3
    assert result.skips.examples == {"bad_date": "record 0: updated = 'bad'"}


def test_lenient_fallbacks_are_counted() -> None:
    records = [{"id": 1, "created": "2024-03-01T10:05:00.5Z", "updated": "2024-03-01T10:05:00.5Z"}]
    result = detect_page(records, {}, spec(), since_ms=SINCE, now_ms=NOW)
    assert [e.event_type for e in result.events] == [CREATED]
    assert result.fallbacks == 2  # the updated and the created field both fell back to ISO-8601


def test_baseline_announces_nothing_and_remembers_every_version() -> None:
    records = [{"id": i, "created": "2024-03-01T10:05:00Z", "updated": "2024-03-01T10:05:00Z"} for i in range(3)]
    result = detect_page(records, {}, spec(), since_ms=SINCE, now_ms=NOW, baseline=True)
    assert result.events == []
    assert [v[0] for v in result.new_versions] == ["0", "1", "2"]


def test_event_ids_are_stable_and_distinct_per_version() -> None:
    a = event_id("i1", "contacts", "1", "d:1000")
    assert a == event_id("i1", "contacts", "1", "d:1000")
    assert len({a, event_id("i1", "contacts", "1", "d:2000"), event_id("i2", "contacts", "1", "d:1000"),
                event_id("i1", "leads", "1", "d:1000")}) == 4


def test_event_ids_are_uuid5_and_many_at_once_gives_the_same() -> None:
    from poller.events.event import _EVENT_NAMESPACE, EventIds

    pairs = [("1", "d:1000"), ("é/x", "c:ab"), ("", ""), ("1", "d:1000")]
    one_by_one = [event_id("i1", "contacts", oid, v) for oid, v in pairs]
    assert one_by_one == [str(uuid.uuid5(_EVENT_NAMESPACE, f"i1\x1fcontacts\x1f{oid}\x1f{v}")) for oid, v in pairs]
    assert EventIds("i1", "contacts").many(iter(pairs)) == one_by_one


def test_resources_without_dates_use_content_hashes() -> None:
    s = spec(updated=None, created=None)
    first = detect_page([{"id": 1, "name": "a"}], {}, s, since_ms=SINCE, now_ms=NOW)
    # UPDATED although the id is new: CREATED needs a known created date (DESIGN §4.4)
    assert [(e.object_id, e.event_type) for e in first.events] == [("1", UPDATED)]
    seen = {"1": {v: st for _, v, st in first.new_versions}}
    again = detect_page([{"id": 1, "name": "a"}], seen, s, since_ms=SINCE, now_ms=NOW + 60_000)
    assert again.events == [] and again.skips.seen == 1
    assert again.touched == []  # refreshed at most hourly: not one write per poll
    later = detect_page([{"id": 1, "name": "a"}], seen, s, since_ms=SINCE, now_ms=NOW + 7_200_000)
    assert later.touched == [("1", first.new_versions[0][1], NOW + 7_200_000)]  # kept from being pruned
    changed = detect_page([{"id": 1, "name": "b"}], seen, s, since_ms=SINCE, now_ms=NOW + 60_000)
    assert [(e.object_id, e.event_type) for e in changed.events] == [("1", UPDATED)]


def test_content_that_changes_back_is_a_change_again() -> None:
    """open -> closed -> open within a day: three announcements, not two."""
    s = spec(updated=None, created=None)
    seen: dict[str, dict[str, int]] = {}
    types = []
    for i, status in enumerate(["open", "closed", "open"]):
        result = detect_page([{"id": 1, "status": status}], seen, s, since_ms=SINCE, now_ms=NOW + i * 60_000)
        for oid, version, stamp in (*result.new_versions, *result.touched):
            seen.setdefault(oid, {})[version] = stamp
        types += [e.event_type for e in result.events]
    assert types == [UPDATED, UPDATED, UPDATED]


def test_baseline_remembers_records_stamped_after_its_start() -> None:
    """filterByCurrentDate must not make a baseline forget records the provider stamped in our future."""
    record = [{"id": 1, "created": "2024-03-01T10:15:05Z", "updated": "2024-03-01T10:15:05Z"}]
    result = detect_page(record, {}, spec(filter_by_current_date=True), since_ms=SINCE, now_ms=NOW, baseline=True)
    assert [v[0] for v in result.new_versions] == ["1"] and result.skips.in_future == 0


# (name, old cursor, max stamp, server now, baseline, has dates, expected)
CURSOR_CASES = [
    ("moves to the newest stamp", 100, 500, 1000, False, True, 500),
    ("never past the server's clock", 100, 5000, 1000, False, True, 1000),
    ("never backwards", 900, 500, 1000, False, True, 900),
    ("no record: stays", 100, None, 1000, False, True, 100),
    ("baseline: the server's clock, even with no record", None, None, 1000, True, True, 1000),
    ("no dates: the poll's start", 100, None, 1000, False, False, 777),
]


@pytest.mark.parametrize(("old", "stamp", "server", "baseline", "dates", "expected"),
                         [c[1:] for c in CURSOR_CASES], ids=[c[0] for c in CURSOR_CASES])
def test_next_cursor(old: int | None, stamp: int | None, server: int, baseline: bool, dates: bool,
                     expected: int) -> None:
    assert next_cursor(old, stamp, server, baseline=baseline, has_dates=dates, poll_start_ms=777) == expected


@freeze_time("2024-03-01T10:15:00Z")
def test_detection_never_reads_the_clock() -> None:
    """Frozen time far from `now_ms` changes nothing: `now` is an argument."""
    record = [{"id": 1, "created": "2030-01-01T00:00:00Z", "updated": "2030-01-01T00:00:00Z"}]
    far_now = ms("2030-01-01T00:10:00Z")
    result, cursor = detect(record, {}, spec(filter_by_current_date=True), since_ms=far_now - 3_600_000,
                            now_ms=far_now, server_now_ms=far_now)
    assert [e.event_type for e in result.events] == [CREATED]
    assert cursor == ms("2030-01-01T00:00:00Z")
    assert datetime.now(timezone.utc).year == 2024
