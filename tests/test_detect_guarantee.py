"""The detection guarantee of DESIGN.md §4, checked on generated histories.

A simulated provider holds records whose versions are stamped by the provider's clock (which
runs ahead of or behind ours), often share a stamp to the second with other records, and may
become visible late (a commit up to 30 s after its stamp). Polls happen at random times and
return the matching records in random page sizes and orders. The engine's loop (since =
cursor - lookback, detect page by page, next cursor, pruning) runs against an in-memory store.

Asserted:
* no version is ever announced twice;
* nothing is announced that the API did not show as a change after the baseline;
* every version that the API showed after the baseline (and not at the baseline) is announced.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from poller import javadate, jsonpath
from poller.events.notify import iso_z
from poller.poll.detect import CREATED, DateField, DetectSpec, detect_page, next_cursor

LOOKBACK = 60_000
MAX_LATE = 30_000
FMT = javadate.compile("yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
SPEC = DetectSpec(
    instance_id="i", resource="r", id_field="id", id_path=jsonpath.parse("id"),
    updated=DateField("updated", jsonpath.parse("updated"), FMT),
    created=DateField("created", jsonpath.parse("created"), FMT),
)
T0 = 1_700_000_000_000


@dataclass(frozen=True)
class Version:
    record: int
    stamp: int  # provider clock, ms
    created: int
    commit: int  # our clock: when the API starts returning it


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Version], list[int], int, int]:
    # the provider's clock: often within the lookback of ours (where an early version of the baseline
    # left a gap), sometimes minutes off, with Date headers in whole seconds
    skew = draw(st.one_of(st.integers(-LOOKBACK, LOOKBACK), st.integers(-300_000, 300_000)))
    second_stamps = draw(st.booleans())  # providers that stamp to the second create many ties
    versions: list[Version] = []
    for rid in range(draw(st.integers(1, 12))):
        t = T0 + draw(st.integers(-600_000, 1_200_000))
        created = None
        last_stamp = last_commit = None
        for _ in range(draw(st.integers(1, 4))):
            t += draw(st.integers(1, 300_000))
            stamp = t + skew
            if second_stamps:
                stamp -= stamp % 1000
            if last_stamp is not None and stamp <= last_stamp:
                continue  # one record's versions need distinct stamps to be distinct versions
            created = stamp if created is None else created
            commit = t + draw(st.integers(0, MAX_LATE))
            commit = max(commit, last_commit or commit)  # one record's updates commit in order
            versions.append(Version(rid, stamp, created, commit))
            last_stamp, last_commit = stamp, commit
    polls = sorted(set(draw(st.lists(st.integers(0, 1_800_000), min_size=2, max_size=12))))
    return versions, [T0 + p for p in polls], skew, draw(st.integers(0, 2**32))


def visible(versions: list[Version], now: int) -> dict[int, Version]:
    latest: dict[int, Version] = {}
    for v in versions:
        if v.commit <= now and (v.record not in latest or v.commit >= latest[v.record].commit):
            latest[v.record] = v
    return latest


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_every_change_is_announced_exactly_once(case: tuple[list[Version], list[int], int, int], data: st.DataObject) -> None:
    versions, polls, skew, _ = case
    cursor: int | None = None
    window_end = 0
    seen: dict[str, dict[str, int]] = {}
    announced: list[tuple[str, str]] = []
    shown_after_baseline: set[tuple[str, str]] = set()
    shown_at_baseline: set[tuple[str, str]] = set()
    for k, now in enumerate(polls):
        server_now = now + skew
        server_now -= server_now % 1000  # a Date header has whole seconds
        baseline = cursor is None
        if baseline:  # as the engine: two lookbacks; restart from the provider's clock when it is > 1 behind
            window_end = server_now if now - server_now > LOOKBACK else now
            since = window_end - 2 * LOOKBACK
        else:
            since = cursor - LOOKBACK
        rows = [v for v in visible(versions, now).values() if v.stamp >= since]  # server-side filter
        order = data.draw(st.permutations(rows)) if rows else []
        records = [{"id": str(v.record), "updated": iso_z(v.stamp).replace("Z", "+00:00"),
                    "created": iso_z(v.created)} for v in order]
        for v in visible(versions, now).values():
            key = (str(v.record), f"d:{v.stamp}")
            (shown_at_baseline if baseline else shown_after_baseline).add(key)
        max_stamp = None
        i = 0
        while i < len(records) or i == 0:
            size = data.draw(st.integers(1, 5))
            page = records[i:i + size]
            ids = {r["id"] for r in page}
            result = detect_page(page, {oid: seen.get(oid, {}) for oid in ids}, SPEC,
                                 since_ms=since, now_ms=now, baseline=baseline)
            for oid, version, stamp in result.new_versions:
                seen.setdefault(oid, {})[version] = stamp
            announced += [(e.object_id, e.version) for e in result.events]
            if result.max_stamp_ms is not None:
                max_stamp = result.max_stamp_ms if max_stamp is None else max(max_stamp, result.max_stamp_ms)
            i += size
            if i >= len(records):
                break
        cursor = next_cursor(cursor, max_stamp, min(window_end, server_now) if baseline else server_now,
                             baseline=baseline, has_dates=True, poll_start_ms=now)
        for oid in list(seen):  # pruning, as the store does it
            seen[oid] = {ver: st_ for ver, st_ in seen[oid].items() if st_ >= cursor - LOOKBACK}
            if not seen[oid]:
                del seen[oid]
        assert k == 0 or not baseline

    assert len(announced) == len(set(announced)), "a version was announced twice"
    expected = shown_after_baseline - shown_at_baseline
    assert set(announced) <= expected, "announced something the API never showed as a change"
    assert expected <= set(announced), f"missed {sorted(expected - set(announced))}"


def test_first_version_of_a_new_record_is_created() -> None:
    page = [{"id": "1", "updated": "2024-03-01T10:00:00.000Z", "created": "2024-03-01T10:00:00.000Z"}]
    since = 1709286000000 - LOOKBACK
    result = detect_page(page, {}, SPEC, since_ms=since, now_ms=1709286060000)
    assert [e.event_type for e in result.events] == [CREATED]
