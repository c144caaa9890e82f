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

from poller import __version__, logconfig
from poller.config import Config, ConfigLoadError, LoadResult, load_config
from poller.errors import PollerError
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
    "Poll every enabled resource once (concurrently, up to engine.maxConcurrentPolls), print one "
    "summary line per resource, and exit: 0 when every poll succeeded, 1 otherwise. Ignores backoff."
)
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
    logging_options.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: engine.log.level)")
    once = commands.add_parser("once", help=ONCE_HELP, description=ONCE_HELP, parents=[logging_options])
    once.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    once.add_argument("--state", metavar="PATH", help=STATE_HELP)
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
        from poller.schema import SCHEMA

        try:
            print(json.dumps(SCHEMA, indent=2))
            sys.stdout.flush()
        except BrokenPipeError:  # `poller schema | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_USAGE
    log = loaded.config.engine.log
    logconfig.setup(args.log_format or log.format, args.log_level or ("WARNING" if args.command != "run" else log.level))
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        if args.command == "once":
            return once(loaded.config, _state_path(args, loaded.config))
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
    from poller.runner import poll_all

    with open_store(state_path) as store:
        outcomes = asyncio.run(poll_all(config, store, _now()))
    for outcome in outcomes:
        print(outcome.summary())
    if not outcomes:
        print("no enabled polling resource in the configuration", file=sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILURE


def explain(config: Config, state_path: Path, instance_id: str, resource_name: str) -> int:
    from poller.explain import explain as explain_poll
    from poller.runner import HttpClients

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
            url = resource.url.render(since, now, resource.page_size, masked=True)
            rows.append((instance.id, resource.name, interval, url))
    return rows


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("INSTANCE", "RESOURCE", "INTERVAL", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return "\n".join(lines)
