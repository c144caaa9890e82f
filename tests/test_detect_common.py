"""detect_page's path for the common page shape decides exactly as its general loop.

``detect_page`` judges a list whose records all have the common shape (top-level non-blank
string ids, unique on the page; top-level string stamps the format's fast reader settles) with
a leaner loop, and anything else with the general one. Passing an iterator instead of a list
forces the general loop, so each test compares the two on the same page.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poller import javadate, jsonpath
from poller.poll.detect import DateField, DetectSpec, PageResult, detect_page
from poller.poll.detect_common import detect_common_page

ISO_MS = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
SLASHES = "dd/MM/yyyy HH:mm:ss"  # no fast reader: always the general loop
SINCE = 1_709_287_200_000  # 2024-03-01T10:00:00Z
NOW = SINCE + 15 * 60_000
OFFSETS = [timezone(timedelta(minutes=m)) for m in (0, 330, -240, 120)]


def iso(ms: int, zone: timezone = timezone.utc) -> str:
    text = datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def make_spec(fmt: str = ISO_MS, *, created: str | None = "created", updated: str | None = "updated",
              **kw: Any) -> DetectSpec:
    compiled = javadate.compile(fmt, "UTC")
    return DetectSpec(
        instance_id="i1", resource="contacts", id_field="id", id_path=jsonpath.parse("id"),
        updated=DateField(updated, jsonpath.parse(updated), compiled) if updated else None,
        created=DateField(created, jsonpath.parse(created), compiled) if created else None,
        **kw,
    )


def both(records: list[Any], seen: dict[str, dict[str, int]], spec: DetectSpec, *,
         baseline: bool = False) -> tuple[PageResult, PageResult]:
    common = detect_page(records, seen, spec, since_ms=SINCE, now_ms=NOW, baseline=baseline)
    general = detect_page(iter(records), seen, spec, since_ms=SINCE, now_ms=NOW, baseline=baseline)
    return common, general


def clean_page(n: int = 40) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Every kind of decision the common path makes: CREATED, UPDATED, seen, before since."""
    records, seen = [], {}
    for i in range(n):
        stamp = SINCE + (i * 7919 % 900) * 1000 + i
        zone = OFFSETS[i % len(OFFSETS)]
        created = stamp if i % 3 == 0 else stamp - 86_400_000
        if i % 5 == 4:
            stamp = SINCE - 1  # before since
        records.append({"id": f"r{i}", "updated": iso(stamp, zone), "created": iso(created, zone), "n": i})
        if i % 4 == 1:
            seen[f"r{i}"] = {f"d:{stamp}": stamp}  # this very version: skipped
        elif i % 4 == 2:
            seen[f"r{i}"] = {f"d:{stamp - 5000}": stamp - 5000}  # an older one: UPDATED
    return records, seen


def test_the_common_path_takes_a_clean_page_and_agrees() -> None:
    records, seen = clean_page()
    spec = make_spec()
    assert detect_common_page(records, seen, spec, since_ms=SINCE, now_ms=NOW, baseline=False) is not None
    common, general = both(records, seen, spec)
    assert common == general
    kinds = {e.event_type for e in common.events}
    assert kinds == {"CREATED", "UPDATED"}
    assert common.skips.seen and common.skips.before_since and common.new_versions


def test_a_baseline_page_agrees() -> None:
    """A baseline announces only new versions of ids it already knows (after one stopped part-way)."""
    records, seen = clean_page()
    common, general = both(records, seen, make_spec(), baseline=True)
    assert common == general and common.new_versions
    assert common.events and {(e.object_id, e.event_type) for e in common.events} == {
        (e.object_id, e.event_type) for e in both(records, seen, make_spec())[0].events if e.object_id in seen}
    assert {e.event_type for e in common.events} == {"UPDATED"}
    assert both(records, {}, make_spec(), baseline=True)[0].events == []  # a first baseline: nothing


def test_equal_stamps_go_out_in_object_id_order() -> None:
    """Events go out by (stamp, object id): with every stamp equal, the ids decide (the common
    path sorts by stamp alone only when no two stamps of the page are equal)."""
    stamp = SINCE + 60_000
    records = [{"id": f"r{i}", "updated": iso(stamp), "created": iso(stamp)} for i in (3, 1, 2)]
    records.append({"id": "r0", "updated": iso(stamp + 1), "created": iso(stamp + 1)})
    spec = make_spec()
    assert detect_common_page(records, {}, spec, since_ms=SINCE, now_ms=NOW, baseline=False) is not None
    common, general = both(records, {}, spec)
    assert common == general
    assert [e.object_id for e in common.events] == ["r1", "r2", "r3", "r0"]


def bad(records: list[dict[str, Any]], i: int, **change: Any) -> list[dict[str, Any]]:
    out = [dict(r) for r in records]
    for k, v in change.items():
        if v is ...:
            out[i].pop(k)
        else:
            out[i][k] = v
    return out


@pytest.mark.parametrize("name, change", [
    ("an integer id", {"id": 17}),
    ("a blank id", {"id": "  "}),
    ("no id", {"id": ...}),
    ("an id that is an object", {"id": {"a": 1}}),
    ("an id twice on the page", {"id": "r0"}),
    ("a date the fast reader refuses", {"updated": "2024-03-01 10:05:00"}),
    ("a date that is a number", {"updated": 1_709_287_300_000}),
    ("no date", {"updated": ...}),
    ("a record that is not an object", None),
])
def test_any_other_record_sends_the_whole_page_to_the_general_loop(name: str, change: dict[str, Any] | None) -> None:
    records, seen = clean_page()
    page: list[Any] = bad(records, 7, **change) if change is not None else [*records[:7], ["x"], *records[8:]]
    spec = make_spec()
    assert detect_common_page(page, seen, spec, since_ms=SINCE, now_ms=NOW, baseline=False) is None, name
    common, general = both(page, seen, spec)
    assert common == general


def test_future_stamps_with_filter_by_current_date_go_to_the_general_loop() -> None:
    records, seen = clean_page()
    page = bad(records, 3, updated=iso(NOW + 60_000))
    spec = make_spec(filter_by_current_date=True)
    assert detect_common_page(page, seen, spec, since_ms=SINCE, now_ms=NOW, baseline=False) is None
    common, general = both(page, seen, spec)
    assert common == general and common.skips.in_future == 1


# -- the property: any page, any state, any spec ---------------------------------------------------

ID_POOL = ["a", "b", "c", "d", "e", "f", "g", "h", " ", "", "é", 'q"uote']


@st.composite
def record(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 40)) == 0:
        return draw(st.sampled_from([["x"], "text", 5, None]))
    out: dict[str, Any] = {}
    id_kind = draw(st.integers(0, 20))
    if id_kind == 0:
        pass  # no id
    elif id_kind == 1:
        out["id"] = draw(st.sampled_from([7, 7.0, 7.5, True, None, {"k": 1}, [1]]))
    else:
        out["id"] = draw(st.sampled_from(ID_POOL[:8]) if id_kind > 3 else st.sampled_from(ID_POOL))
    stamp = SINCE + draw(st.integers(-120_000, 20 * 60_000))
    zone = draw(st.sampled_from(OFFSETS))
    date_kind = draw(st.integers(0, 25))
    if date_kind == 0:
        pass  # no updated date
    elif date_kind == 1:
        out["updated"] = draw(st.sampled_from(["yesterday", "2024-03-01T10:05:00", "2024-03-01T10:05:00.5Z",
                                               stamp, None, "01/03/2024 10:05:00"]))
    else:
        out["updated"] = iso(stamp, zone)
    created_kind = draw(st.integers(0, 5))
    if created_kind == 1:
        out["created"] = out.get("updated")
    elif created_kind == 2:
        out["created"] = iso(stamp - draw(st.integers(0, 20_000)), zone)
    elif created_kind == 3:
        out["created"] = iso(stamp - 86_400_000)
    elif created_kind == 4:
        out["created"] = "garbage"
    return out


@st.composite
def state_for(draw: st.DrawFn, records: list[Any]) -> dict[str, dict[str, int]]:
    seen: dict[str, dict[str, int]] = {}
    for r in records:
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or draw(st.booleans()):
            continue
        versions = seen.setdefault(r["id"], {})
        choice = draw(st.integers(0, 3))
        text = r.get("updated")
        if choice == 0 and isinstance(text, str):
            try:
                stamp = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                continue
            versions[f"d:{stamp}"] = stamp  # possibly this very version
        elif choice == 1:
            versions[f"d:{SINCE - 5}"] = SINCE - 5
        # choice 2 and 3: an id known with no versions (an empty mapping), or more to come
    return seen


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_common_and_general_paths_agree_on_any_page(data: st.DataObject) -> None:
    records = data.draw(st.lists(record(), max_size=25))
    seen = data.draw(state_for(records))
    spec = make_spec(
        data.draw(st.sampled_from([ISO_MS, ISO_MS, SLASHES])),
        created=data.draw(st.sampled_from(["created", "created", None, "updated"])),
        filter_by_current_date=data.draw(st.booleans()),
        filter_by_updated=data.draw(st.booleans()),
        created_tolerance_ms=data.draw(st.sampled_from([0, 10_000])),
    )
    common, general = both(records, seen, spec, baseline=data.draw(st.booleans()))
    assert common == general
