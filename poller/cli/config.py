"""``poller check`` and ``poller schema``: the configuration file, validated or described."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone

from poller.cli.common import EXIT_OK, EXIT_USAGE
from poller.config import Config, ConfigLoadError, load_config
from poller.redact import mask_url

__all__ = ["check", "check_rows", "format_table", "schema"]


def schema() -> int:
    from poller.config.schema import SCHEMA

    try:
        print(json.dumps(SCHEMA, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:  # `poller schema | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


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
    values: dict[tuple[int, int | None], str] = {}  # (the same placeholders, rendered once)
    for instance in config.instances:
        if instance.polled:
            interval = f"{instance.refresh_interval_minutes:g} min"
        else:
            interval = "off (webhook)" if instance.enabled else "off (disabled)"
        if not instance.resources:
            rows.append((instance.id, "-", interval, "-"))
        for resource in instance.resources:
            url = mask_url(resource.url.render(since, now, resource.page_size, masked=True, values=values))
            rows.append((instance.id, resource.name, interval, url))
    return rows


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("INSTANCE", "RESOURCE", "INTERVAL", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return "\n".join(lines)
