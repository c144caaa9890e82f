"""``poller run``, ``poller status`` and ``poller demo``: the daemon and what it has done."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from poller.cli.common import EXIT_FAILURE, EXIT_OK, open_reader
from poller.config import Config
from state import StateError, Store, open_store

__all__ = ["demo", "run", "status"]


def demo(seconds: float | None) -> int:
    import signal
    import subprocess
    import threading

    from poller.demo import run_demo

    def engine(config_path: Path, state_path: Path, stop: threading.Event) -> int:
        """The real daemon, `poller run`, as a child process; stopped with SIGTERM like systemd does.
        A SIGTERM to the demo (`timeout`, `kill`, a CI job's end) stops it as Ctrl-C does: killed
        at once, it left its daemon polling a provider that was gone, and its directory behind."""
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        child = subprocess.Popen([sys.executable, "-m", "poller", "run", "-c", str(config_path),
                                  "--state", str(state_path)])
        try:
            while not stop.wait(0.2):
                if child.poll() is not None:
                    return child.returncode or EXIT_FAILURE  # it stopped on its own: something is wrong
            child.send_signal(signal.SIGTERM)
            return child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    return run_demo(seconds, sys.stdout, engine)


def run(config_path: str, config: Config, state_path: Path) -> int:
    from poller.cli import startsignals
    from poller.daemon.daemon import Daemon

    early = startsignals.install()  # already done at import when the command line says run
    if early.stop:
        return EXIT_OK  # asked to stop before anything started
    with open_store(state_path) as store:
        return asyncio.run(Daemon(config_path, config, store, early=early).run())


def with_api_instances(store: Store, config: Config | None, *, deleted: bool = True) -> Config:
    """The file's instances (when -c was given) and those created through the management API
    (``deleted``: those deleted too, disabled, as the daemon keeps them to deliver what they left)."""
    from poller.config import EngineConfig
    from poller.config.apibody import ApiBody, merge

    base = config if config is not None else Config("", EngineConfig(), ())
    try:
        rows = store.api_instances()
    except StateError:
        return base  # an older state file, read-only: it has none
    bodies = [ApiBody(r.number, r.body, r.token, r.enabled, r.deleted_ms is not None) for r in rows
              if deleted or r.deleted_ms is None]
    return merge(base, bodies)[0] if bodies else base


def status(path: Path, config: Config | None, *, as_json: bool) -> int:
    from poller.daemon.schedule import longest_wait_s
    from poller.events.notify import iso_z

    def when(ms: int | None) -> str | None:
        return iso_z(ms) if ms is not None else None

    with open_reader(path) as store:
        states = store.resource_states()
        open_counts = store.open_counts_by_resource()
        config = with_api_instances(store, config)
    # a disabled instance's resources are not due at all
    intervals = {f"{i.id}/{r.name}": i.refresh_interval_seconds for i, r in config.resources() if i.enabled}
    known = {st.key for st in states}
    rows = []
    for key in sorted(k for k in intervals if k not in known):  # configured, never polled: due at the start
        instance, _, resource = key.partition("/")
        counts = open_counts.get(key, {"pending": 0, "dead": 0})
        rows.append({"instance": instance, "resource": resource, "cursor": None, "lastPoll": None,
                     "lastSuccess": None, "consecutiveFailures": 0, "lastError": None, "nextDue": None,
                     "pending": counts["pending"], "dead": counts["dead"]})
    for st in sorted(states, key=lambda s: s.key):
        interval = intervals.get(st.key)
        due = None
        if interval is not None and st.last_poll_ms is not None:
            due = max(st.last_poll_ms + int(interval * 1000), st.next_due_ms or 0)
            # what the daemon does with a next due time beyond any wait it allows (an older version's)
            due = min(due, st.last_poll_ms + int(longest_wait_s(interval) * 1000))
        elif st.next_due_ms is not None:
            due = st.next_due_ms
        counts = open_counts.get(st.key, {"pending": 0, "dead": 0})
        instance, _, resource = st.key.partition("/")
        rows.append({"instance": instance, "resource": resource, "cursor": when(st.cursor_ms),
                     "lastPoll": when(st.last_poll_ms), "lastSuccess": when(st.last_success_ms),
                     "consecutiveFailures": st.consecutive_failures, "lastError": st.last_error,
                     "nextDue": when(due), "pending": counts["pending"], "dead": counts["dead"]})
    rows.sort(key=lambda r: (r["instance"], r["resource"]))
    if as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"{path}: no resource has been polled yet", file=sys.stderr)
        return EXIT_OK
    header = ("RESOURCE", "CURSOR", "LAST POLL", "LAST SUCCESS", "FAILURES", "NEXT DUE", "PENDING", "DEAD")
    table = [header] + [(f"{r['instance']}/{r['resource']}", r["cursor"] or "-", r["lastPoll"] or "-",
                         r["lastSuccess"] or "-", str(r["consecutiveFailures"]), r["nextDue"] or "-",
                         str(r["pending"]), str(r["dead"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for r in rows:
        if r["lastError"]:
            print(f"{r['instance']}/{r['resource']}: last error: {r['lastError']}")
    return EXIT_OK
