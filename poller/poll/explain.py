"""``poller explain``: what one poll of one resource would do, record by record. Writes nothing."""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime
from typing import TextIO

import httpx

from poller.config import EngineConfig, InstanceConfig, ResourceConfig
from poller.errors import FetchError
from poller.events.notify import iso_z
from poller.javadate.zone import to_ms
from poller.poll.detect import PageResult, detect_page
from poller.poll.engine import (PollOutcome, detect_spec, envelope, known_seen_from, lookup_ids, notifications_of,
                                plan_poll, poll_pages, resource_key)
from poller.redact import mask_url
from state import ResourceState, Store

__all__ = ["explain"]

_REASONS = {
    "no_id": "no id",
    "bad_date": "unreadable date",
    "before_since": "older than since",
    "in_future": "after the poll's start (filterByCurrentDate)",
    "too_deep": "nested too deeply to be sent",
    "seen": "this version was already announced",
}


async def explain(client: httpx.AsyncClient, store: Store | None, engine: EngineConfig, instance: InstanceConfig,
                  resource: ResourceConfig, now: datetime, out: TextIO) -> bool:
    """Print the plan, every page and every record's decision. Returns False when the fetch failed."""
    key = resource_key(instance, resource)
    state = store.resource_state(key) if store is not None else ResourceState(key)
    since_ms, now_ms = 0, to_ms(now)
    cursor_ms = state.cursor_ms
    print(f"{key}", file=out)
    if cursor_ms is not None and cursor_ms > now_ms + int(engine.max_clock_skew_seconds * 1000):
        print(f"  cursor: {iso_z(cursor_ms)} is beyond our clock plus engine.maxClockSkewSeconds: a poll sets it "
              f"back to now", file=out)
        cursor_ms = now_ms
    plan = plan_poll(cursor_ms, resource, engine, now, known_seen_from(state, cursor_ms))
    spec = detect_spec(instance, resource)
    env = envelope(instance, resource, engine)
    since_ms = to_ms(plan.since)
    if cursor_ms is None:
        kind = "backfill from initialCursor" if not plan.baseline else \
            "baseline: versions are remembered, nothing is announced"
        print(f"  cursor: none yet ({kind})", file=out)
    else:
        print(f"  cursor: {iso_z(cursor_ms)} (lookback {plan.lookback_ms / 1000:g} s)", file=out)
    print(f"  since:  {iso_z(since_ms)}", file=out)
    if cursor_ms is not None and since_ms > cursor_ms - plan.lookback_ms:
        print(f"  (not {plan.lookback_ms / 1000:g} s before the cursor: the versions remembered begin at "
              f"{iso_z(since_ms)}, since the lookback was shorter; it reaches its length as the cursor moves on)",
              file=out)
    print(f"  url:    {mask_url(resource.url.render(plan.since, now, resource.page_size, masked=True))}", file=out)
    totals = {"records": 0, "events": 0, "seen": 0, "skipped": 0}
    outcome = PollOutcome(key)
    try:
        # the very pages a poll fetches (poller once and the daemon read them through poll_pages too)
        async with aclosing(poll_pages(client, instance, resource, engine, plan, now, outcome)) as pages:
            async for page, page_plan, _ in pages:
                if page_plan.since != plan.since:
                    plan, since_ms = page_plan, to_ms(page_plan.since)
                    print(f"  the provider's clock is behind ours by {-(outcome.clock_skew_ms or 0) / 1000:g} s: "
                          f"the baseline starts again from since {iso_z(since_ms)}", file=out)
                if page.number == 1 and outcome.clock_skew_ignored_ms is not None:
                    print(f"  the provider's Date is {outcome.clock_skew_ignored_ms / 1000:g} s from our clock, more "
                          f"than engine.maxClockSkewSeconds: ignored (the cursor follows our clock)", file=out)
                print(f"page {page.number}: GET {page.url} -> {page.status}, {len(page.records)} records", file=out)
                seen = {k: dict(v) for k, v in (store.seen_versions(key, lookup_ids(page.records, spec))
                                                  if store is not None else {}).items()}
                for record in page.records:
                    result = detect_page([record], seen, spec, since_ms=since_ms, now_ms=now_ms, baseline=plan.baseline)
                    if result.events:
                        notifications_of(result, env, now_ms)  # a record too deep to be sent is skipped, as a poll does
                    for oid, version, stamp in result.new_versions:
                        seen.setdefault(oid, {})[version] = stamp
                    totals["records"] += 1
                    print("  " + _decision(result, plan.baseline), file=out)
                    totals["events"] += len(result.events)
                    totals["seen"] += result.skips.seen
                    totals["skipped"] += result.skips.total - result.skips.seen
                if page.incomplete:
                    print(f"  pagination incomplete: page {page.number} is full and nothing in the response says "
                          f"where the next page is (pagination type {resource.pagination.type}); check the "
                          f"pagination settings", file=out)
    except FetchError as exc:
        print(f"fetch failed: {exc}", file=out)
        return False
    would = "would be remembered (baseline)" if plan.baseline else "would be announced"
    print(f"summary: {totals['records']} records, {totals['events']} events {would}, {totals['seen']} seen "
          f"before, {totals['skipped']} skipped. Nothing was written.", file=out)
    return True


def _decision(result: PageResult, baseline: bool) -> str:
    if result.events:
        e = result.events[0]
        return f"record {e.object_id}: {e.event_type} (date {iso_z(e.stamp_ms)}, version {e.version})"
    if result.new_versions:
        oid, version, _ = result.new_versions[0]
        return f"record {oid}: remembered, not announced (baseline; version {version})" if baseline else \
            f"record {oid}: remembered ({version})"
    for reason, label in _REASONS.items():
        if getattr(result.skips, reason):
            return f"skipped: {label}: {result.skips.examples.get(reason, '')}"
    return "skipped"
