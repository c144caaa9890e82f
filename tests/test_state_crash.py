"""Crash safety: SIGKILL a writer at many moments; what it committed is whole, and nothing else.

A child process writes a poll of PAGES pages through ``Store.record_page`` (each page: 10
notifications and 100 seen versions, the page number in every id), then ``finish_poll``.
The test kills it once the file holds at least some number of pages (read through a
reader), plus a small random wait, then checks the file and lets a new child re-run the
same poll to the end, as the daemon would after a restart.
"""

from __future__ import annotations

import os
import sqlite3
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from state import StateError, Store, open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
PAGES = 100
NOTES, SEEN = 10, 100
KILLS = 20
CURSOR_MS = 1_700_000_000_000
TIMEOUT_S = 20.0

WRITE_A_POLL = f"""
import sys
from state import Notification, SeenVersion, open_store

path, run = sys.argv[1], int(sys.argv[2])
key, resource = f"inst/r{{run:02d}}", f"r{{run:02d}}"
with open_store(path) as store:
    for page in range({PAGES}):
        notes = [Notification(f"n{{run:02d}}-{{page:04d}}-{{k}}", key, "inst", resource, "https://hooks.example/in",
                              {CURSOR_MS}, b'{{"page": %d, "padding": "%s"}}' % (page, b"x" * 300),
                              (f"e{{run:02d}}-{{page:04d}}-{{k}}",), page * {NOTES} + k) for k in range({NOTES})]
        seen = [SeenVersion(f"o-{{page:04d}}-{{j:03d}}", f"d:{{page * 1000 + j}}", page * 1000 + j)
                for j in range({SEEN})]
        store.record_page(key, "inst", resource, notes, seen)
    store.finish_poll(key, "inst", resource, cursor_ms={CURSOR_MS} + run, now_ms={CURSOR_MS},
                      prune_before_ms=None, prune_hash_before_ms=None, events={PAGES * NOTES})
    print("finished", flush=True)
"""


def start_poll(path: Path, run: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITE_A_POLL, str(path), str(run)], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def open_reader(path: Path, deadline: float) -> Store | None:
    """A reader once the writer has created and set up the file; None if it never does in time."""
    while time.monotonic() < deadline:
        try:
            return open_store(path, writer=False)
        except StateError:
            time.sleep(0.001)
    return None


def wait_for_pages(path: Path, key: str, pages: int, child: subprocess.Popen[str]) -> None:
    """Return once the file holds at least ``pages`` committed pages of ``key`` (or the child ended)."""
    deadline = time.monotonic() + TIMEOUT_S
    if pages == 0:
        return
    reader = open_reader(path, deadline)
    if reader is None:
        pytest.fail(f"{path} was never set up")
    with reader:
        while reader.seen_count(key) < pages * SEEN:
            if child.poll() is not None:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{key}: fewer than {pages} pages after {TIMEOUT_S} s")
            time.sleep(0.0005)


def committed_pages(store: Store, key: str) -> tuple[Counter[int], Counter[int]]:
    notes = Counter(int(i.split("-")[1]) for (i,) in store.db.execute(
        "SELECT id FROM outbox WHERE resource_key = ?", [key]))
    seen = Counter(int(i.split("-")[1]) for (i,) in store.db.execute(
        "SELECT object_id FROM seen WHERE resource_key = ?", [key]))
    return notes, seen


def check(path: Path, key: str, *, finished: bool, context: str) -> tuple[int, bool]:
    """Check the file after a kill; returns how many pages of ``key`` were committed, and
    whether finish_poll was (it may have been without the child living to say so)."""
    if not path.exists():  # killed before it created the file
        assert not finished, context
        return 0, False
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], context
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    try:
        store = open_store(path, writer=False)
    except StateError as exc:
        # killed while setting up the file: a migration step is all or nothing
        assert "not an initialised poller state file" in str(exc) and not finished, context
        assert tables <= {"_sqlite_migrations"}, context
        return 0, False
    with store:
        notes, seen = committed_pages(store, key)
        state = store.resource_state(key)
    pages = sorted(set(notes) | set(seen))
    for page in pages:
        assert (notes[page], seen[page]) == (NOTES, SEEN), f"{context}: page {page} is partial"
    # pages commit one after the other: what survives is a prefix of the poll
    assert pages == list(range(len(pages))), f"{context}: pages {pages}"
    if state.cursor_ms is not None:
        assert len(pages) == PAGES and state.polls == 1, f"{context}: cursor set before every page was in"
    if finished:
        assert state.cursor_ms is not None, f"{context}: finish_poll returned but its commit was lost"
    return len(pages), state.cursor_ms is not None


def test_sigkill_at_any_moment_leaves_whole_pages(tmp_path: Path) -> None:
    seed = int(os.environ.get("STATE_CRASH_SEED", random.randrange(1 << 32)))
    rng = random.Random(seed)
    path = tmp_path / "poller.db"
    # from "before the file exists" (run 0 may die inside the migrations) to "after the last page"
    targets = [round(i * PAGES / (KILLS - 1)) for i in range(KILLS)]
    outcomes = []
    for run, target in enumerate(targets):
        key = f"inst/r{run:02d}"
        context = f"seed {seed}, run {run}, killed after >= {target} pages"
        with start_poll(path, run) as child:
            try:
                wait_for_pages(path, key, target, child)
                # target 0: anywhere in start-up, opening and migrating; else within a few pages
                time.sleep(rng.uniform(0, 0.2) if target == 0 else rng.uniform(0, 0.004))
                child.send_signal(signal.SIGKILL)
                out, err = child.communicate(timeout=TIMEOUT_S)
            finally:
                if child.poll() is None:
                    child.kill()
        assert child.returncode in (0, -signal.SIGKILL), f"{context}: {err}"
        finished = "finished" in out
        pages, finish_committed = check(path, key, finished=finished, context=context)
        outcomes.append((target, pages, finished))

        # a restart re-runs the whole poll over what the killed writer left: no failure, no duplicate
        with start_poll(path, run) as again:
            out, err = again.communicate(timeout=TIMEOUT_S)
        assert again.returncode == 0, f"{context}, re-run: {err}"
        with open_store(path, writer=False) as store:
            notes, seen = committed_pages(store, key)
            state = store.resource_state(key)
        assert sorted(notes.items()) == [(p, NOTES) for p in range(PAGES)], context
        assert sorted(seen.items()) == [(p, SEEN) for p in range(PAGES)], context
        assert state.cursor_ms == CURSOR_MS + run and state.polls == 1 + finish_committed, context

    with open_store(path, writer=False) as store:
        assert store.integrity_check() == "ok"
        assert len(store.notifications()) == KILLS * PAGES * NOTES
    # the kills landed at different moments, not all before or all after the work
    assert len({pages for _, pages, _ in outcomes}) >= KILLS // 2, outcomes
    assert any(0 < pages < PAGES for _, pages, _ in outcomes), outcomes
