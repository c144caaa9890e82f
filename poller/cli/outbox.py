"""``poller deliver``, ``poller events`` and ``poller replay``: the outbox from the command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from poller.cli.common import EXIT_FAILURE, EXIT_OK, now, open_reader
from poller.config import Config
from poller.javadate.zone import to_ms
from state import open_store

__all__ = ["deliver", "events", "replay"]


def deliver(config: Config, state_path: Path, *, everything: bool) -> int:
    from poller.cli.daemon import with_api_instances
    from poller.deliver.client import delivery_session
    from poller.deliver.engine import deliver_due

    async def run() -> object:
        async with delivery_session() as client:
            return await deliver_due(client, store, config, now, everything=everything)

    if not state_path.exists():
        # nothing is pending (DESIGN §9: exit 0), but a mistyped --state must not leave an empty
        # state file behind, nor pass unnoticed
        print(f"no state file at {state_path}: nothing to deliver (poller once and poller run make it)",
              file=sys.stderr)
        return EXIT_OK
    with open_store(state_path) as store:
        config = with_api_instances(store, config)  # their notifications are delivered here too
        report = asyncio.run(run())
    for result in report.results:  # type: ignore[attr-defined]
        print(result.summary())
    counts = report.counts()  # type: ignore[attr-defined]
    print(f"{counts['attempted']} attempted, {counts['delivered']} delivered, {counts['failed']} failed "
          f"({counts['dead']} dead letter{'s' if counts['dead'] != 1 else ''})")
    for instance_id, n in sorted(report.unsendable.items()):  # type: ignore[attr-defined]
        print(f"{n} pending notification{'s' if n != 1 else ''} of instance {instance_id!r} not attempted: it is not "
              f"in {config.source or 'the configuration'} nor made through the API, so its signature key and "
              f"callback are not known here",
              file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILURE  # type: ignore[attr-defined]


def events(path: Path, *, status: str | None, as_json: bool, limit: int | None) -> int:
    from poller.events.notify import iso_z

    def when(ms: int | None) -> str | None:
        return iso_z(ms) if ms is not None else None

    with open_reader(path) as store:
        entries = store.notifications(status, limit, newest_first=True)
    rows = [{
        "id": e.notification.id, "instance": e.notification.instance_id, "resource": e.notification.resource,
        "status": e.status, "attempts": e.attempts,
        "nextAttemptAt": when(e.next_attempt_ms) if e.status == "pending" else None,
        "lastError": e.last_error, "createdAt": when(e.notification.created_ms), "deliveredAt": when(e.delivered_ms),
        "eventIds": list(e.notification.event_ids),
    } for e in entries]
    if as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        extra = f" next {r['nextAttemptAt']}" if r["nextAttemptAt"] else ""
        extra += f" last error: {r['lastError']}" if r["lastError"] else ""
        print(f"{r['id']}  {r['status']:<9} {r['instance']}/{r['resource']}  {len(r['eventIds'])} events  "
              f"created {r['createdAt']}  attempts {r['attempts']}{extra}")
    if not rows:
        print("no notifications" + (f" with status {status}" if status else ""), file=sys.stderr)
    return EXIT_OK


def replay(path: Path, ids: list[str], *, dead: bool) -> int:
    # beside a running daemon too: a small write, serialised by SQLite (the daemon picks it up)
    with open_store(path, exclusive=False) as store:
        changed = store.replay(ids, dead=dead, now_ms=to_ms(now()))
    print(f"{len(changed)} notification{'s' if len(changed) != 1 else ''} back to pending")
    return EXIT_OK
