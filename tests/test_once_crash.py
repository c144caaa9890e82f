"""Crash safety: `poller once` SIGKILLed at 20+ points of large polls loses nothing and repeats nothing.

Each round adds fresh changes at the provider, starts `poller once`, and kills it after a
random number of committed pages (0 included: during start-up or the first fetch) plus a random
few milliseconds, so kills land before, inside and after page transactions and during
finish_poll. After every kill the database passes `PRAGMA integrity_check`; at the end one
uninterrupted run finishes the job, and every change has been announced exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from state import open_store
from tests.conftest import ROOT
from tests.fakeprovider import FakeProvider
from tests.test_once_e2e import once, record, write_config

ROUNDS = 22
RECORDS_PER_ROUND = 300  # 3 pages of 100


def _outbox_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with open_store(db, writer=False) as store:
            return len(store.notifications())
    except Exception:  # not created or migrated yet
        return 0


def kill_poller(cwd: Path, args: list[str], rng: random.Random, *, ready: Callable[[], bool],
                poll_s: float) -> bool:
    """Run ``poller ARGS``; once ``ready()`` (or it has exited, or 30 s), wait 0-30 ms at random
    and SIGKILL it if it still runs. Returns whether the kill landed."""
    proc = subprocess.Popen([sys.executable, "-m", "poller", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    killed = False
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(poll_s)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed = True
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    return killed


def test_sigkill_at_many_points_loses_and_repeats_nothing(tmp_path: Path,
                                                         make_fake_provider: Callable[..., FakeProvider]) -> None:
    seed = int(os.environ.get("ONCE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    provider = make_fake_provider(style="page", page_size=100)
    provider.fail(None, delay_s=0.03, times=None)  # slow pages, so that kills land mid-poll
    config = write_config(tmp_path, provider, resource={"pageSize": 100, "pagination": {"type": "page"}})
    db = tmp_path / "poller.db"
    once(tmp_path, config)  # the baseline
    expected: set[str] = set()
    kills = 0
    for round_no in range(ROUNDS):
        now = provider.now()
        new = [record(f"r{round_no}-{i}", now - timedelta(milliseconds=i)) for i in range(RECORDS_PER_ROUND)]
        with provider.lock:
            provider.records.extend(new)
        expected.update(r["id"] for r in new)
        before = _outbox_count(db)
        wait_pages = rng.randrange(0, 4)
        kills += kill_poller(tmp_path, ["once", "-c", str(config), "--state", str(db)], rng,
                             ready=lambda: _outbox_count(db) >= before + wait_pages * 10, poll_s=0.005)
        with open_store(db, writer=False) as store:
            assert store.integrity_check() == "ok", f"seed {seed}, round {round_no}"
    assert kills >= 20, f"only {kills} kills landed (seed {seed})"

    once(tmp_path, config)  # one run to the end
    once(tmp_path, config)  # and nothing more after it
    with open_store(db, writer=False) as store:
        counts = Counter(e["objectId"] for entry in store.notifications()
                         for e in json.loads(entry.notification.body)["message"]["events"])
    assert set(counts) == expected, f"seed {seed}: missing {sorted(expected - set(counts))[:5]}"
    repeated = {k: v for k, v in counts.items() if v != 1}
    assert not repeated, f"seed {seed}: announced more than once: {list(repeated.items())[:5]}"
