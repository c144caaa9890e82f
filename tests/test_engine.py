"""engine: what a poll does beyond detection (library level, real loopback provider, real SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from poller.config import Config, load_config_text
from poller.poll.runner import poll_all
from state import Store, open_store
from tests.fakeprovider import FakeProvider
from tests.test_once_e2e import record

UTC = timezone.utc


def _config(provider: FakeProvider, url: str, **engine: object) -> str:
    return json.dumps({"engine": {"lookbackSeconds": 60, **engine}, "instances": [{
        "id": "crm", "element": {"key": "crm"}, "api": {"baseUrl": provider.base_url},
        "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/h",
            "event.poller.configuration": {"contacts": {
                "url": url, "idField": "id",
                "datesConfiguration": {"updatedDateField": "updated",
                                       "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"}}},
        }}]})


def test_secrets_from_the_environment_in_urls_never_reach_output_logs_or_state(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], caplog) -> None:  # noqa: ANN001
    provider = make_fake_provider()
    provider.fail(500, times=None)
    env = {"ACCT": "acct-SECRET-991", "CODE": "code-SECRET-42"}
    config = load_config_text(_config(provider, "/a/${env:ACCT}/c?code=${env:CODE}"), "c.json", env).config
    with open_store(tmp_path / "p.db") as store:
        [outcome] = asyncio.run(poll_all(config, store, datetime.now(UTC)))
        last_error = store.resource_state("crm/contacts").last_error
    assert not outcome.ok
    for text in (outcome.error or "", last_error or "", caplog.text):
        assert "SECRET" not in text, text
    assert "***" in (outcome.error or "")


def test_baseline_cursor_is_where_its_window_ends_even_with_a_provider_behind(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    """A provider 30 s behind: a record changed 45 s before its clock existed before the baseline,
    so it must never be announced (the next window starts where the baseline's began)."""
    provider = make_fake_provider(clock_offset_s=-30)
    provider.records.append(record(1, provider.now() - timedelta(seconds=45)))
    config = load_config_text(_config(provider, "/c?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}"),
                              "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        now = datetime.now(UTC)
        [baseline] = asyncio.run(poll_all(config, store, now))
        assert baseline.ok and baseline.baseline
        cursor = store.resource_state("crm/contacts").cursor_ms
        assert cursor is not None  # the provider's Date: its clock, 30 s behind ours
        assert -32_000 <= cursor - int(now.timestamp() * 1000) <= -29_000
        [second] = asyncio.run(poll_all(config, store, now + timedelta(seconds=5)))
        assert second.ok and second.events == 0


def test_a_baseline_that_fails_still_fixes_when_watching_began(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    """The baseline fails on page 2; a record changed before the retry is announced by it."""
    provider = make_fake_provider(style="page", page_size=1)
    now = datetime.now(UTC)
    provider.records.extend([record(1, now - timedelta(seconds=5)), record(2, now - timedelta(seconds=4))])
    provider.fail(500, page=2, times=None)
    text = json.loads(_config(provider, "/c?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}"))
    res = text["instances"][0]["configuration"]["event.poller.configuration"]["contacts"]
    res.update({"pageSize": 1, "pagination": {"type": "page"}})
    config = load_config_text(json.dumps(text), "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        [first] = asyncio.run(poll_all(config, store, now))
        assert not first.ok and first.baseline
        provider.faults.clear()
        later = now + timedelta(minutes=10)
        provider.records.append(record(3, later - timedelta(seconds=1)))
        [second] = asyncio.run(poll_all(config, store, later))
        assert second.ok and not second.baseline
        ids = [e["objectId"] for n in store.notifications() for e in json.loads(n.notification.body)["message"]["events"]]
    assert "3" in ids and "1" not in ids


def stop_during_page_2(provider: FakeProvider, config: Config, store: Store, now: datetime) -> None:
    """Poll, and stop the poll (as SIGTERM does; kill -9 leaves the same state) once it asks for page 2."""
    async def stopped() -> None:
        task = asyncio.ensure_future(poll_all(config, store, now))
        while not any(r.page == 2 for r in provider.requests):
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(stopped())


def test_a_baseline_stopped_part_way_is_not_redone_from_scratch(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    """A stop (or kill -9: the state is the same, page 1 committed) during page 2 of a baseline.
    The next run must announce what changed since the baseline began (a new baseline swallowed it)."""
    provider = make_fake_provider(style="page", page_size=1)
    now = datetime.now(UTC)
    provider.records.extend([record(1, now - timedelta(seconds=5)), record(2, now - timedelta(seconds=4))])
    provider.fail(None, page=2, delay_s=30)  # page 2 hangs: the poll is stopped meanwhile
    text = json.loads(_config(provider, "/c?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}"))
    res = text["instances"][0]["configuration"]["event.poller.configuration"]["contacts"]
    res.update({"pageSize": 1, "pagination": {"type": "page"}})
    config = load_config_text(json.dumps(text), "c.json", {}).config

    with open_store(tmp_path / "p.db") as store:
        stop_during_page_2(provider, config, store, now)
        assert store.seen_count("crm/contacts") == 1  # page 1's version: committed before the stop
    provider.faults.clear()
    later = now + timedelta(minutes=10)
    provider.records[0] = record(1, later - timedelta(seconds=2))  # changed on page 1, after the stop
    provider.records.append(record(3, later - timedelta(seconds=1)))  # created after the stop
    with open_store(tmp_path / "p.db") as store:
        [second] = asyncio.run(poll_all(config, store, later))
        assert second.ok and not second.baseline, second
        ids = [e["objectId"] for n in store.notifications() for e in json.loads(n.notification.body)["message"]["events"]]
    # 1 changed and 3 is new; 2 is announced too: on a page the baseline never reached, as after a failure
    assert sorted(ids) == ["1", "2", "3"], ids


@pytest.mark.parametrize("how", ["stopped", "failed"])
def test_a_baseline_without_dates_stopped_or_failed_part_way_is_done_again_and_says_only_changes(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], how: str) -> None:
    """A resource without dates has no window to bound what a next poll would announce: it is a
    baseline again, which announces the new versions of the records it had seen (here 1, changed
    after the stop) and remembers the others silently. (With the cursor of a stopped baseline,
    every record of the pages never reached was announced, 900 of 1,000 unchanged.)"""
    provider = make_fake_provider(style="page", page_size=1, since_param=None)
    provider.records.extend([{"id": str(i), "status": "open"} for i in range(1, 4)])
    text = json.loads(_config(provider, "/c"))
    res = text["instances"][0]["configuration"]["event.poller.configuration"]["contacts"]
    del res["datesConfiguration"]
    res.update({"pageSize": 1, "pagination": {"type": "page"}})
    config = load_config_text(json.dumps(text), "c.json", {}).config
    now = datetime.now(UTC)

    with open_store(tmp_path / "p.db") as store:
        if how == "stopped":
            provider.fail(None, page=2, delay_s=30)
            stop_during_page_2(provider, config, store, now)
        else:
            provider.fail(500, page=2, times=None)
            [first] = asyncio.run(poll_all(config, store, now))
            assert not first.ok and first.baseline
        assert store.seen_count("crm/contacts") == 1 and store.resource_state("crm/contacts").cursor_ms is None
    provider.faults.clear()
    provider.records[0] = {"id": "1", "status": "closed"}  # changed on page 1, after the first try
    with open_store(tmp_path / "p.db") as store:
        [second] = asyncio.run(poll_all(config, store, now + timedelta(minutes=10)))
        assert second.ok and second.baseline, second
        announced = [(e["objectId"], e["eventType"]) for n in store.notifications()
                     for e in json.loads(n.notification.body)["message"]["events"]]
        assert announced == [("1", "UPDATED")], announced
        [third] = asyncio.run(poll_all(config, store, now + timedelta(minutes=20)))
        assert third.ok and not third.baseline and third.events == 0, third


def test_lone_surrogates_from_json_escapes_neither_crash_nor_lose_the_page(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"): no valid text holds it, and neither
    SQLite nor UTF-8 takes it. A record with one in a field is announced (its body escapes it
    back, so the receiver reads what the provider sent); one with it in its id is skipped and
    reported as such; the rest of the page is not held up by either."""
    provider = make_fake_provider()
    now = datetime.now(UTC)
    config = load_config_text(_config(provider, "/c?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}"),
                              "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        [baseline] = asyncio.run(poll_all(config, store, now))
        assert baseline.ok and baseline.baseline
        later = now + timedelta(minutes=1)
        provider.records.extend([
            record(1, later - timedelta(seconds=3), name="bad \udc00 text"),
            record("x\ud800", later - timedelta(seconds=2)),
            record(3, later - timedelta(seconds=1)),
        ])
        [poll] = asyncio.run(poll_all(config, store, later))
        bodies = [json.loads(n.notification.body) for n in store.notifications()]
    assert poll.ok, poll.error
    assert poll.events == 2 and poll.skips.no_id == 1
    assert "id is not valid Unicode (a lone surrogate)" in poll.skips.examples["no_id"]
    raw = [r for b in bodies for r in b["message"]["raw"]["contacts"]]
    assert [r["id"] for r in raw] == [1, 3] and raw[0]["name"] == "bad \udc00 text"


def test_a_clock_a_day_ahead_does_not_announce_every_dateless_record_again(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    """Content-hash versions older than 24 h were pruned: after a forward jump of more than a
    day, every one looked old, went, and every record of a resource without dates came back as a
    change. A version the previous poll saw is kept, whatever the clock says."""
    provider = make_fake_provider()
    provider.records.extend({"id": str(i), "name": f"n{i}"} for i in range(5))
    body = json.loads(_config(provider, "/c"))
    body["instances"][0]["configuration"]["event.poller.configuration"]["contacts"].pop("datesConfiguration")
    config = load_config_text(json.dumps(body), "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        t0 = datetime.now(UTC)
        [first] = asyncio.run(poll_all(config, store, t0))
        assert first.ok and first.baseline
        for days in (2, 2.01, 5):  # the clock jumps two days ahead, polls go on, then three more days
            [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(days=days)))
            assert outcome.ok and outcome.events == 0, outcome.summary()
        provider.records[0]["name"] = "changed"
        [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(days=5, minutes=1)))
        assert outcome.events == 1


class Ticker:
    """A task that counts its turns on the event loop: what ran between two parts of a poll."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.ticks += 1


def poll_beside_a_ticker(config: object, store: object, now: datetime, ticker: Ticker) -> list:
    async def main() -> list:
        task = asyncio.create_task(ticker.run())
        await asyncio.sleep(0)
        try:
            return await poll_all(config, store, now)  # type: ignore[arg-type]
        finally:
            task.cancel()

    return asyncio.run(main())


def test_a_poll_that_wrote_many_seen_versions_prunes_them_in_parts_after_the_cursor_moved(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], monkeypatch) -> None:  # noqa: ANN001
    from poller.poll import engine

    monkeypatch.setattr(engine, "PRUNE_PART_ROWS", 4)
    provider = make_fake_provider()
    now = datetime.now(UTC)
    provider.records.extend(record(i, now - timedelta(hours=2)) for i in range(10))  # older than the window
    provider.records.extend(record(i, now - timedelta(seconds=30)) for i in range(10, 12))
    text = json.loads(_config(provider, "/c"))
    text["instances"][0]["configuration"]["event.poller.configuration"]["contacts"]["initialCursor"] = \
        "2020-01-01T00:00:00Z"
    config = load_config_text(json.dumps(text), "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        parts: list[tuple[int, int | None]] = []  # (the ticker's count, the cursor) at each part
        original = store.prune_seen_part

        ticker = Ticker()

        def counting(key: str, **kwargs: object) -> object:
            parts.append((ticker.ticks, store.resource_state(key).cursor_ms))
            return original(key, **kwargs)  # type: ignore[arg-type]

        store.prune_seen_part = counting  # type: ignore[method-assign]
        [outcome] = poll_beside_a_ticker(config, store, now, ticker)
        assert outcome.ok and outcome.events == 12
        assert store.seen_count(outcome.key) == 2  # the two inside the window stay
        # 4 + 4 + 4 rows, and a last part that finds no more; all after the cursor moved
        assert len(parts) == 4 and all(cursor is not None for _, cursor in parts)
        assert parts[0][0] < parts[1][0] < parts[2][0] < parts[3][0]  # the loop ran between the parts


def test_a_large_page_is_written_in_parts_with_the_event_loop_free_between_them(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], monkeypatch) -> None:  # noqa: ANN001
    from poller.poll import engine

    monkeypatch.setattr(engine, "CHUNK_RECORDS", 5)
    provider = make_fake_provider()
    now = datetime.now(UTC)
    provider.records.extend(record(i, now - timedelta(seconds=30)) for i in range(12))
    text = json.loads(_config(provider, "/c"))
    text["instances"][0]["configuration"]["event.poller.configuration"]["contacts"]["initialCursor"] = \
        "2020-01-01T00:00:00Z"  # a backfill: every record is announced
    config = load_config_text(json.dumps(text), "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        at_ticks: list[int] = []  # the ticker's count at each transaction
        original = store.record_page

        ticker = Ticker()

        def counting(*args: object, **kwargs: object) -> None:
            at_ticks.append(ticker.ticks)
            original(*args, **kwargs)  # type: ignore[arg-type]

        store.record_page = counting  # type: ignore[method-assign]
        [outcome] = poll_beside_a_ticker(config, store, now, ticker)
        assert outcome.ok and outcome.pages == 1 and outcome.records == 12 and outcome.events == 12
        assert len(at_ticks) == 3  # 5 + 5 + 2 records, a transaction each
        assert at_ticks[0] < at_ticks[1] < at_ticks[2]  # the loop ran other tasks between the parts
        announced = sorted(o for e in store.notifications() for o in json.loads(e.notification.body)["message"]["events"]
                           for o in [o["objectId"]])
        assert announced == sorted(str(i) for i in range(12))


def _one_recent_record(make_fake_provider: Callable[..., FakeProvider]) -> tuple[FakeProvider, datetime, object]:
    """A provider with one record updated 30 s ago, a whole second (t0), and the configuration."""
    provider = make_fake_provider()
    t0 = datetime.now(UTC).replace(microsecond=0)
    provider.records.append(record(1, t0 - timedelta(seconds=30)))
    return provider, t0, load_config_text(_config(provider, "/c"), "c.json", {}).config


def _traced(store: object) -> list[str]:
    """The SQL the store runs from now on, statement by statement."""
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    return statements


def test_a_poll_that_leaves_the_cursor_where_it_was_deletes_nothing_and_one_that_moves_it_prunes(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider, t0, config = _one_recent_record(make_fake_provider)
    with open_store(tmp_path / "p.db") as store:
        statements = _traced(store)
        [baseline] = asyncio.run(poll_all(config, store, t0))
        key = baseline.key
        assert baseline.ok and baseline.baseline and store.seen_count(key) == 1
        statements.clear()
        for seconds in (10, 20):  # the same record, inside the window: nothing new
            [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(seconds=seconds)))
            assert outcome.ok and outcome.events == 0
        assert not [s for s in statements if s.lstrip().upper().startswith("DELETE")], statements
        # a change two minutes on moves the cursor: the first version is now out of the window and goes
        provider.records[0] = record(1, t0 + timedelta(minutes=2))
        provider.clock_offset_s = 125  # (its Date header: two minutes on, as our poll's clock)
        statements.clear()
        [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(minutes=2, seconds=5)))
        assert outcome.events == 1
        assert [s for s in statements if s.lstrip().upper().startswith("DELETE FROM SEEN")], statements
        assert store.seen_count(key) == 1  # the new version only


def test_in_the_daemon_a_poll_that_changed_nothing_writes_nothing_until_the_flush(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider, t0, config = _one_recent_record(make_fake_provider)
    writes = ("BEGIN", "INSERT", "UPDATE", "DELETE")
    with open_store(tmp_path / "p.db") as store:
        store.defer_quiet_polls = True  # as the daemon does
        statements = _traced(store)
        [baseline] = asyncio.run(poll_all(config, store, t0))
        key = baseline.key
        assert baseline.baseline and any(s.startswith("BEGIN") for s in statements)  # a baseline: at once
        statements.clear()
        for seconds in (10, 20):
            [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(seconds=seconds)))
            assert outcome.ok and outcome.events == 0
        assert not [s for s in statements if s.lstrip().startswith(writes)], statements
        assert store.resource_state(key).polls == 3 and store.flush_quiet_polls() == 1
        # a failure, then a poll that changed nothing but must clear it: written at once
        provider.fail(400)  # (refused: no retry)
        [failed] = asyncio.run(poll_all(config, store, t0 + timedelta(seconds=30)))
        assert not failed.ok and store.resource_state(key).consecutive_failures == 1
        statements.clear()
        [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(seconds=40)))
        assert outcome.ok and outcome.events == 0
        assert any(s.lstrip().startswith("UPDATE resources") for s in statements), statements
        assert store.resource_state(key).consecutive_failures == 0
        # a change: its notification and the cursor at once, as ever
        provider.records.append(record(2, t0 + timedelta(seconds=45)))
        provider.clock_offset_s = 50
        statements.clear()
        [outcome] = asyncio.run(poll_all(config, store, t0 + timedelta(seconds=50)))
        assert outcome.events == 1 and store.flush_quiet_polls() == 0
        assert any(s.lstrip().startswith("INSERT OR IGNORE INTO outbox") for s in statements)


@pytest.mark.parametrize(("updated", "warned"), [(1_717_400_000, True), (1_717_400_000_000, False)])
def test_epoch_seconds_under_the_milliseconds_format_are_said(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], caplog: pytest.LogCaptureFixture,
        updated: int, warned: bool) -> None:
    """A provider sending epoch seconds where the configuration says milliseconds: every record
    reads as January 1970, before every window, and nothing is ever announced. The poll says so
    (once per poll); milliseconds that are milliseconds say nothing."""
    provider = make_fake_provider()
    provider.records.extend({"id": str(i), "updated": updated + i} for i in range(3))
    text = json.loads(_config(provider, "/c"))
    res = text["instances"][0]["configuration"]["event.poller.configuration"]["contacts"]
    res["datesConfiguration"]["updatedDateFormat"] = "milliseconds"
    config = load_config_text(json.dumps(text), "c.json", {}).config
    with open_store(tmp_path / "p.db") as store:
        [outcome] = asyncio.run(poll_all(config, store, datetime(2024, 6, 3, 12, tzinfo=UTC)))
    assert outcome.ok and outcome.events == 0
    lines = [r for r in caplog.records if r.getMessage() == "poll.dates_look_like_seconds"]
    assert len(lines) == (1 if warned else 0)
    if warned:
        assert lines[0].example == "record 0: updated = 1717400000" and lines[0].field == "updated"
