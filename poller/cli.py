"""Command line: parse arguments, set up logging, map errors to exit codes.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from poller import __version__
from poller.config import Config, ConfigLoadError, load_config

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
CONFIG_HELP = "the configuration file (JSON)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poller", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"poller {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help=CHECK_HELP, description=CHECK_HELP)
    check.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    commands.add_parser("schema", help=SCHEMA_HELP, description=SCHEMA_HELP)
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
    return EXIT_OK  # pragma: no cover - every command returns on its own


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
