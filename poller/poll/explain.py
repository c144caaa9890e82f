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
from poller.poll.engine import detect_spec, fetch_spec, lookup_ids, plan_poll, resource_key
from poller.poll.fetch import fetch_pages
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
    plan = plan_poll(state.cursor_ms, resource, engine, now)
    spec = detect_spec(instance, resource)
    since_ms, now_ms = to_ms(plan.since), to_ms(now)
    print(f"{key}", file=out)
    if state.cursor_ms is None:
        kind = "backfill from initialCursor" if not plan.baseline else \
            "baseline: versions are remembered, nothing is announced"
        print(f"  cursor: none yet ({kind})", file=out)
    else:
        print(f"  cursor: {iso_z(state.cursor_ms)} (lookback {plan.lookback_ms / 1000:g} s)", file=out)
    print(f"  since:  {iso_z(since_ms)}", file=out)
    print(f"  url:    {mask_url(resource.url.render(plan.since, now, resource.page_size, masked=True))}", file=out)
    url = resource.url.render(plan.since, now, resource.page_size)
    totals = {"records": 0, "events": 0, "skipped": 0}
    try:
        async with aclosing(fetch_pages(client, fetch_spec(instance, resource, url, engine))) as pages:
            async for page in pages:
                print(f"page {page.number}: GET {page.url} -> {page.status}, {len(page.records)} records", file=out)
                seen = {k: dict(v) for k, v in (store.seen_versions(key, lookup_ids(page.records, spec))
                                                  if store is not None else {}).items()}
                for record in page.records:
                    result = detect_page([record], seen, spec, since_ms=since_ms, now_ms=now_ms, baseline=plan.baseline)
                    for oid, version, stamp in result.new_versions:
                        seen.setdefault(oid, {})[version] = stamp
                    totals["records"] += 1
                    print("  " + _decision(result, plan.baseline), file=out)
                    totals["events"] += len(result.events)
                    totals["skipped"] += result.skips.total
    except FetchError as exc:
        print(f"fetch failed: {exc}", file=out)
        return False
    would = "would be remembered (baseline)" if plan.baseline else "would be announced"
    print(f"summary: {totals['records']} records, {totals['events']} events {would}, "
          f"{totals['skipped']} skipped. Nothing was written.", file=out)
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
