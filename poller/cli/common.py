"""What the commands share: exit statuses, loading the configuration file, the state path, the clock."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from poller.config import Config, ConfigLoadError, LoadResult, load_config
from state import Store, default_state_path, open_store

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "load", "now", "open_reader", "state_path"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def load(path: str) -> LoadResult | None:
    """The loaded file, or None after printing every problem on stderr (the caller exits 2)."""
    try:
        return load_config(path, os.environ)
    except ConfigLoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: invalid: {len(exc.problems)} error(s); `poller check -c {path}` explains", file=sys.stderr)
        return None


def state_path(args: argparse.Namespace, config: Config) -> Path:
    """--state, else engine.statePath, else $STATE_DIRECTORY/poller.db, else ./poller.db."""
    if args.state:
        return Path(args.state)
    return default_state_path(os.environ, config.engine.state_path)


def now() -> datetime:
    return datetime.now(timezone.utc)


def open_reader(path: Path) -> Store:
    """The state file, read-only (status, events); says so when its folder is read-only too."""
    store = open_store(path, writer=False)
    if store.immutable:
        print(f"note: {path}: the folder is read-only, so the file is read as it is on disk (what a running "
              "daemon has not checkpointed yet is not shown)", file=sys.stderr)
    return store
