"""`poller once` end to end: a real provider on 127.0.0.1, a real SQLite file, the CLI as a subprocess.

Time is real here (a subprocess cannot be frozen), so records are stamped relative to the
provider's clock and no test sleeps: each test mutates the provider between two runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from state import open_store
from tests.configs import local_config
from tests.conftest import ROOT
from tests.fakeprovider import FakeProvider

DEFAULT_CALLBACK = "http://127.0.0.1:9/hook"  # replaced by conftest with a receiver that accepts everything


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(rid: object, updated: datetime, created: datetime | None = None, **extra: Any) -> dict:
    return {"id": rid, "updated": iso(updated), "created": iso(created or updated), **extra}


def write_config(tmp_path: Path, provider: FakeProvider, *, resource: dict | None = None, engine: dict | None = None,
                 name: str = "contacts") -> Path:
    config = local_config(provider.base_url, callback=DEFAULT_CALLBACK, resource=resource, engine=engine, name=name)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_poller(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poller", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def once(tmp_path: Path, config: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    proc = run_poller(tmp_path, "once", "-c", str(config), "--state", str(tmp_path / "poller.db"))
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


def announced(tmp_path: Path) -> list[tuple[str, str]]:
    """(objectId, eventType) of every event in the outbox, in order."""
    with open_store(tmp_path / "poller.db", writer=False) as store:
        out = []
        for entry in store.notifications():
            body = json.loads(entry.notification.body)
            out += [(e["objectId"], e["eventType"]) for e in body["message"]["events"]]
        return out


def event_ids(tmp_path: Path) -> list[str]:
    with open_store(tmp_path / "poller.db", writer=False) as store:
        return [i for entry in store.notifications() for i in entry.notification.event_ids]


@pytest.fixture
def provider(make_fake_provider: Callable[..., FakeProvider]) -> FakeProvider:
    return make_fake_provider(style="page", page_size=100)


def test_baseline_then_create_and_update(tmp_path: Path, provider: FakeProvider) -> None:
    now = provider.now()
    provider.records.extend([record(1, now - timedelta(seconds=20)), record(2, now - timedelta(days=3))])
    config = write_config(tmp_path, provider)
    first = once(tmp_path, config)
    assert "crm/contacts: ok baseline" in first.stdout
    assert announced(tmp_path) == []  # the baseline remembers, it does not announce

    now = provider.now()
    provider.records.append(record(3, now))
    provider.records[1] = record(2, now, created=now - timedelta(days=3))
    once(tmp_path, config)
    assert sorted(announced(tmp_path)) == [("2", "UPDATED"), ("3", "CREATED")]

    once(tmp_path, config)  # nothing changed: nothing new
    assert len(announced(tmp_path)) == 2


def test_fifty_records_sharing_one_stamp_arrive_in_two_halves(tmp_path: Path, provider: FakeProvider) -> None:
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    stamp = provider.now().replace(microsecond=0)
    provider.records.extend(record(i, stamp) for i in range(25))
    once(tmp_path, config)
    provider.records.extend(record(i, stamp) for i in range(25, 50))
    once(tmp_path, config)
    once(tmp_path, config)
    got = announced(tmp_path)
    assert sorted(int(i) for i, _ in got) == list(range(50))
    assert len(got) == len(set(got))


def test_a_late_commit_thirty_seconds_behind_is_announced(tmp_path: Path, provider: FakeProvider) -> None:
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    now = provider.now()
    provider.records.append(record("new", now))
    once(tmp_path, config)
    provider.records.append(record("late", now - timedelta(seconds=30)))  # committed after the poll
    once(tmp_path, config)
    assert sorted(announced(tmp_path)) == [("late", "CREATED"), ("new", "CREATED")]


@pytest.mark.parametrize("offset_s", [-300, 300], ids=["provider-5-min-behind", "provider-5-min-ahead"])
def test_provider_clock_skew(tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], offset_s: int) -> None:
    provider = make_fake_provider(style="page", page_size=100, clock_offset_s=offset_s)
    existing = [record(i, provider.now() - timedelta(seconds=s)) for i, s in ((1, 10), (2, 50), (3, 200))]
    provider.records.extend(existing)
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    assert announced(tmp_path) == []
    provider.records.append(record(4, provider.now()))
    once(tmp_path, config)
    once(tmp_path, config)
    assert announced(tmp_path) == [("4", "CREATED")]  # existing records never show up as changes


def test_local_time_stamps_across_a_dst_change(tmp_path: Path, provider: FakeProvider) -> None:
    """Stamps written as New York wall-clock times, around the fall-back hour of 2024-11-03."""
    ny = "yyyy-MM-dd HH:mm:ss"
    config = write_config(tmp_path, provider, resource={
        "url": "/contacts",  # no server-side filter: the engine filters by date itself
        "initialCursor": "2024-11-03T05:00:00Z",  # backfill from 01:00 EDT
        "datesConfiguration": {
            "updatedDateField": "updated", "updatedDateFormat": ny, "updatedDateTimezone": "America/New_York",
            "createdDateField": "created", "createdDateFormat": ny, "createdDateTimezone": "America/New_York",
        },
    })
    provider.default.since_param = None
    provider.records.extend([
        {"id": "edt", "updated": "2024-11-03 00:59:00", "created": "2024-11-03 00:59:00"},  # 04:59Z, before
        {"id": "ambiguous", "updated": "2024-11-03 01:30:00", "created": "2024-11-03 01:30:00"},  # 06:30Z (EST)
        {"id": "est", "updated": "2024-11-03 02:15:00", "created": "2024-11-03 02:15:00"},  # 07:15Z
    ])
    once(tmp_path, config)
    with open_store(tmp_path / "poller.db", writer=False) as store:
        events = [e for n in store.notifications() for e in json.loads(n.notification.body)["message"]["events"]]
    assert [(e["objectId"], e["date"]) for e in events] == [
        ("ambiguous", "2024-11-03T06:30:00Z"), ("est", "2024-11-03T07:15:00Z")]


@pytest.mark.parametrize("style", ["none", "link", "nextPageToken", "page", "offset", "cursor"])
def test_every_pagination_kind_with_2500_records(tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
                                                 style: str) -> None:
    provider = make_fake_provider(style=style, page_size=100)
    pagination = {"type": style}
    resource: dict[str, Any] = {"pagination": pagination, "pageSize": 100}
    if style == "cursor":
        pagination.update({"path": "meta.next_cursor", "param": "cursor"})
        resource["recordsPath"] = "data"
    config = write_config(tmp_path, provider, resource=resource)
    once(tmp_path, config)
    now = provider.now()
    provider.records.extend(record(i, now - timedelta(milliseconds=i)) for i in range(2500))
    out = once(tmp_path, config)
    assert "records=2500 events=2500" in out.stdout, out.stdout
    assert sorted(int(i) for i, _ in announced(tmp_path)) == list(range(2500))


def test_429_with_retry_after_fails_the_poll_and_says_when(tmp_path: Path, provider: FakeProvider) -> None:
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    provider.fail(429, retry_after=120, times=None)
    out = once(tmp_path, config, expect=1)
    assert "429" in out.stdout and "FAILED" in out.stdout
    with open_store(tmp_path / "poller.db", writer=False) as store:
        state = store.resource_state("crm/contacts")
    assert state.consecutive_failures == 1 and state.next_due_ms is not None


def test_500_on_page_3_loses_nothing_and_repeats_nothing(tmp_path: Path, provider: FakeProvider) -> None:
    config = write_config(tmp_path, provider, resource={"pageSize": 100, "pagination": {"type": "page"}})
    once(tmp_path, config)
    now = provider.now()
    provider.records.extend(record(i, now - timedelta(milliseconds=i)) for i in range(450))
    provider.fail(500, page=3, times=3)  # every attempt at page 3 fails
    out = once(tmp_path, config, expect=1)
    assert "FAILED" in out.stdout
    first = event_ids(tmp_path)
    assert len(first) == 200  # pages 1 and 2 were committed
    once(tmp_path, config)
    ids = event_ids(tmp_path)
    assert ids[:200] == first
    assert len(ids) == len(set(ids)) == 450
    assert sorted(int(i) for i, _ in announced(tmp_path)) == list(range(450))


def test_a_garbage_body_fails_the_poll_with_a_clear_error(tmp_path: Path, provider: FakeProvider) -> None:
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    provider.fail(200, body=b"<html>maintenance</html>", times=None)
    out = once(tmp_path, config, expect=1)
    assert "not valid JSON" in out.stdout or "JSON" in out.stdout, out.stdout
    with open_store(tmp_path / "poller.db", writer=False) as store:
        assert store.resource_state("crm/contacts").last_error
