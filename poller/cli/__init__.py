"""Command line: parse arguments, set up logging, map errors to exit codes.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

from poller import __version__
from poller.cli import logconfig
from poller.config import Config, ConfigLoadError, LoadResult, load_config
from poller.errors import PollerError
from poller.javadate.zone import to_ms
from poller.redact import mask_url
from state import StateError, default_state_path, open_store

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DESCRIPTION = (
    "poller: a polling event engine. It polls provider APIs as described by Cloud Elements style "
    "polling configurations and POSTs signed notifications of created and updated records."
)
CHECK_HELP = (
    "Validate a configuration file without running anything. Prints every warning and error "
    "(FILE: JSON.PATH: message) on stderr and, when the file is valid, a table of what would be "
    "polled, with each URL rendered for since = now - 1 h. Exit 0 when valid, 2 when not. "
    "Never creates or touches a state file."
)
SCHEMA_HELP = "Print the JSON Schema (draft 2020-12) of the configuration file."
ONCE_HELP = (
    "Poll every enabled resource once (concurrently, up to engine.maxConcurrentPolls; ignoring "
    "backoff), then attempt every due notification once. Prints a line per resource and per "
    "delivery attempt; exit 0 when every poll and every delivery succeeded, 1 otherwise."
)
DELIVER_HELP = (
    "Attempt the due notifications now, then exit (with --all: every pending one, whatever its retry "
    "time, e.g. after fixing an endpoint). Exit 0 when every attempt got a 2xx (also when none was due)."
)
EVENTS_HELP = (
    "List notifications in the outbox (newest first) with their delivery status; --json prints a "
    "JSON array. Reads the state file only."
)
DEMO_HELP = (
    "Run the real daemon (poller run) between a sample provider and a receiver on 127.0.0.1 (random "
    "free ports): the provider changes records every 2 s, poller polls every 3 s, and each notification that "
    "arrives is printed with its verified signatures. Stops on Ctrl-C or after --seconds; exit 0 "
    "when signed notifications arrived and verified."
)
RUN_HELP = (
    "Run the daemon: poll every enabled resource on its interval and deliver notifications as they "
    "come, until SIGTERM/SIGINT (graceful stop, exit 0). SIGHUP reloads the configuration (an invalid "
    "one is refused and the old one keeps running). Tells systemd READY/STATUS/WATCHDOG/STOPPING when "
    "NOTIFY_SOCKET is set; serves /metrics and /healthz when engine.listen is set."
)
STATUS_HELP = (
    "Show each resource's cursor, last poll, last success, consecutive failures, next due poll, and "
    "its pending and dead notifications (--json for machines). Reads the state file only; works while "
    "the daemon runs."
)
REPLAY_HELP = "Put notifications back to pending with their attempts reset: the given IDs, or every dead letter (--dead)."
EXPLAIN_HELP = (
    "Show what one poll of INSTANCE/RESOURCE would do: the since instant, the rendered URL, each "
    "page fetched and, for every record, the event it would produce or why it is skipped. "
    "Changes nothing (the state file is only read)."
)
CONFIG_HELP = "the configuration file (JSON)"
STATE_HELP = (
    "the state file (SQLite); default: engine.statePath, else $STATE_DIRECTORY/poller.db, else ./poller.db"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poller", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"poller {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help=CHECK_HELP, description=CHECK_HELP)
    check.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    commands.add_parser("schema", help=SCHEMA_HELP, description=SCHEMA_HELP)
    logging_options = argparse.ArgumentParser(add_help=False)
    logging_options.add_argument("--log-format", choices=("text", "json"), help="log line format (default: engine.log.format)")
    logging_options.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                                 help="log level (default: engine.log.level for run, WARNING otherwise)")
    run = commands.add_parser("run", help=RUN_HELP, description=RUN_HELP, parents=[logging_options])
    run.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    run.add_argument("--state", metavar="PATH", help=STATE_HELP)
    status = commands.add_parser("status", help=STATUS_HELP, description=STATUS_HELP, parents=[logging_options])
    status.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP + " (for the state file and the intervals)")
    status.add_argument("--state", metavar="PATH", help=STATE_HELP)
    status.add_argument("--json", action="store_true", help="print JSON")
    once = commands.add_parser("once", help=ONCE_HELP, description=ONCE_HELP, parents=[logging_options])
    once.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    once.add_argument("--state", metavar="PATH", help=STATE_HELP)
    deliver = commands.add_parser("deliver", help=DELIVER_HELP, description=DELIVER_HELP, parents=[logging_options])
    deliver.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    deliver.add_argument("--state", metavar="PATH", help=STATE_HELP)
    deliver.add_argument("--all", action="store_true", help="attempt every pending notification, due or not")
    events = commands.add_parser("events", help=EVENTS_HELP, description=EVENTS_HELP, parents=[logging_options])
    events.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP + " (to find the state file)")
    events.add_argument("--state", metavar="PATH", help=STATE_HELP)
    events.add_argument("--status", choices=("pending", "delivered", "dead"), help="only notifications in this state")
    events.add_argument("--json", action="store_true", help="print a JSON array")
    events.add_argument("--limit", type=_positive_int, metavar="N", help="at most N notifications")
    replay = commands.add_parser("replay", help=REPLAY_HELP, description=REPLAY_HELP, parents=[logging_options])
    replay.add_argument("ids", nargs="*", metavar="ID", help="notification ids (as `poller events` shows them)")
    replay.add_argument("--dead", action="store_true", help="every dead letter")
    replay.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP + " (to find the state file)")
    replay.add_argument("--state", metavar="PATH", help=STATE_HELP)
    demo = commands.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP)
    demo.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (default: run until Ctrl-C)")
    explain = commands.add_parser("explain", help=EXPLAIN_HELP, description=EXPLAIN_HELP, parents=[logging_options])
    explain.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    explain.add_argument("instance", metavar="INSTANCE", help="the instance id")
    explain.add_argument("resource", metavar="RESOURCE", help="the resource name")
    explain.add_argument("--state", metavar="PATH", help=STATE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        return check(args.config)
    if args.command == "schema":
        from poller.config.schema import SCHEMA

        try:
            print(json.dumps(SCHEMA, indent=2))
            sys.stdout.flush()
        except BrokenPipeError:  # `poller schema | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    if args.command in ("events", "replay", "status"):
        return state_command(parser, args)
    if args.command == "demo":
        return demo(args.seconds)
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_USAGE
    log = loaded.config.engine.log
    logconfig.setup(args.log_format or log.format, args.log_level or ("WARNING" if args.command != "run" else log.level))
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        if args.command == "run":
            return run(args.config, loaded.config, _state_path(args, loaded.config))
        if args.command == "once":
            return once(loaded.config, _state_path(args, loaded.config))
        if args.command == "deliver":
            return deliver(loaded.config, _state_path(args, loaded.config), everything=args.all)
        if args.command == "explain":
            return explain(loaded.config, _state_path(args, loaded.config), args.instance, args.resource)
    except (PollerError, StateError) as exc:
        print(f"poller {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK  # pragma: no cover - every command returns on its own


def _load(path: str) -> LoadResult | None:
    try:
        return load_config(path, os.environ)
    except ConfigLoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: invalid: {len(exc.problems)} error(s); `poller check -c {path}` explains", file=sys.stderr)
        return None


def _state_path(args: argparse.Namespace, config: Config) -> Path:
    if args.state:
        return Path(args.state)
    return default_state_path(os.environ, config.engine.state_path)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def once(config: Config, state_path: Path) -> int:
    from poller.deliver.sender import deliver_due
    from poller.httpclient import HttpClients
    from poller.poll.runner import poll_all

    async def run() -> tuple[list, object]:
        async with AsyncExitStack() as stack:
            outcomes = await poll_all(config, store, _now())
            report = await deliver_due(await HttpClients(stack).get(True), store, config, _now)
            return outcomes, report

    with open_store(state_path) as store:
        outcomes, report = asyncio.run(run())
    for outcome in outcomes:
        print(outcome.summary())
    if not outcomes:
        print("no enabled polling resource in the configuration", file=sys.stderr)
    for result in report.results:  # type: ignore[attr-defined]
        print(result.summary())
    ok = all(o.ok for o in outcomes) and report.ok  # type: ignore[attr-defined]
    return EXIT_OK if ok else EXIT_FAILURE


def deliver(config: Config, state_path: Path, *, everything: bool) -> int:
    from poller.deliver.sender import deliver_due
    from poller.httpclient import HttpClients

    async def run() -> object:
        async with AsyncExitStack() as stack:
            return await deliver_due(await HttpClients(stack).get(True), store, config, _now, everything=everything)

    with open_store(state_path) as store:
        report = asyncio.run(run())
    for result in report.results:  # type: ignore[attr-defined]
        print(result.summary())
    counts = report.counts()  # type: ignore[attr-defined]
    print(f"{counts['attempted']} attempted, {counts['delivered']} delivered, {counts['failed']} failed "
          f"({counts['dead']} dead letters)")
    return EXIT_OK if report.ok else EXIT_FAILURE  # type: ignore[attr-defined]


def state_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """events and replay: they need the state file, which -c CONFIG or --state names."""
    config = None
    if args.config:
        loaded = _load(args.config)
        if loaded is None:
            return EXIT_USAGE
        config = loaded.config
    if args.state:
        path = Path(args.state)
    else:
        path = default_state_path(os.environ, config.engine.state_path if config is not None else None)
    logconfig.setup(args.log_format or "text", args.log_level or "WARNING")
    try:
        if args.command == "status":
            return status_command(path, config, as_json=args.json)
        if args.command == "events":
            return events(path, status=args.status, as_json=args.json, limit=args.limit)
        if not args.ids and not args.dead:
            parser.error("replay needs notification ids or --dead")
        return replay(path, args.ids, dead=args.dead)
    except (PollerError, StateError) as exc:
        print(f"poller {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def events(path: Path, *, status: str | None, as_json: bool, limit: int | None) -> int:
    from poller.events.notify import iso_z

    def when(ms: int | None) -> str | None:
        return iso_z(ms) if ms is not None else None

    with open_store(path, writer=False) as store:
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
        changed = store.replay(ids, dead=dead, now_ms=to_ms(_now()))
    print(f"{len(changed)} notification{'s' if len(changed) != 1 else ''} back to pending")
    return EXIT_OK


def demo(seconds: float | None) -> int:
    import signal
    import subprocess
    import threading

    from poller.demo import run_demo

    def engine(config_path: Path, state_path: Path, stop: threading.Event) -> int:
        """The real daemon, `poller run`, as a child process; stopped with SIGTERM like systemd does."""
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
    import signal

    from poller.daemon.daemon import Daemon

    # Until the daemon installs its own handlers: a reload asked for while starting must not kill
    # the process (SIGHUP's default), and a stop is a clean exit 0 (nothing is in flight yet).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def stop_now(signum: int, frame: object) -> None:
        raise SystemExit(EXIT_OK)

    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)
    with open_store(state_path) as store:
        return asyncio.run(Daemon(config_path, config, store).run())


def status_command(path: Path, config: Config | None, *, as_json: bool) -> int:
    from poller.events.notify import iso_z

    def when(ms: int | None) -> str | None:
        return iso_z(ms) if ms is not None else None

    intervals = {f"{i.id}/{r.name}": i.refresh_interval_seconds for i, r in config.resources()} if config else {}
    with open_store(path, writer=False) as store:
        states = store.resource_states()
        open_counts = store.open_counts_by_resource()
    rows = []
    for st in sorted(states, key=lambda s: s.key):
        interval = intervals.get(st.key)
        due = None
        if interval is not None and st.last_poll_ms is not None:
            due = max(st.last_poll_ms + int(interval * 1000), st.next_due_ms or 0)
        elif st.next_due_ms is not None:
            due = st.next_due_ms
        counts = open_counts.get(st.key, {"pending": 0, "dead": 0})
        instance, _, resource = st.key.partition("/")
        rows.append({"instance": instance, "resource": resource, "cursor": when(st.cursor_ms),
                     "lastPoll": when(st.last_poll_ms), "lastSuccess": when(st.last_success_ms),
                     "consecutiveFailures": st.consecutive_failures, "lastError": st.last_error,
                     "nextDue": when(due), "pending": counts["pending"], "dead": counts["dead"]})
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def explain(config: Config, state_path: Path, instance_id: str, resource_name: str) -> int:
    from poller.httpclient import HttpClients
    from poller.poll.explain import explain as explain_poll

    pair = next(((i, r) for i, r in config.resources() if i.id == instance_id and r.name == resource_name), None)
    if pair is None:
        known = ", ".join(f"{i.id} {r.name}" for i, r in config.resources()) or "none"
        print(f"poller explain: no resource {resource_name!r} in instance {instance_id!r} (known: {known})",
              file=sys.stderr)
        return EXIT_USAGE
    instance, resource = pair

    async def run() -> bool:
        async with AsyncExitStack() as stack:
            client = await HttpClients(stack).get(instance.api.verify_tls)
            store = stack.enter_context(open_store(state_path, writer=False)) if state_path.exists() else None
            return await explain_poll(client, store, config.engine, instance, resource, _now(), sys.stdout)

    return EXIT_OK if asyncio.run(run()) else EXIT_FAILURE


def check(path: str) -> int:
    try:
        result = load_config(path, os.environ)
    except ConfigLoadError as exc:
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{path}: invalid: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_USAGE
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    now = datetime.now(timezone.utc)
    print(format_table(check_rows(result.config, now - timedelta(hours=1), now)))
    instances = len(result.config.instances)
    resources = sum(1 for _ in result.config.resources())
    print(f"{path}: OK: {instances} instance{'s' if instances != 1 else ''}, "
          f"{resources} resource{'s' if resources != 1 else ''}")
    return EXIT_OK


def check_rows(config: Config, since: datetime, now: datetime) -> list[tuple[str, str, str, str]]:
    """(instance, resource, interval, rendered URL with secrets masked) for every resource."""
    rows = []
    for instance in config.instances:
        if instance.polled:
            interval = f"{instance.refresh_interval_minutes:g} min"
        else:
            interval = "off (webhook)" if instance.enabled else "off (disabled)"
        if not instance.resources:
            rows.append((instance.id, "-", interval, "-"))
        for resource in instance.resources:
            url = mask_url(resource.url.render(since, now, resource.page_size, masked=True))
            rows.append((instance.id, resource.name, interval, url))
    return rows


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("INSTANCE", "RESOURCE", "INTERVAL", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return "\n".join(lines)
