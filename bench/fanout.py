"""Benchmark: the real daemon (`poller run`) polling 1,000 and 10,000 resources that are all due.

    .venv/bin/python bench/fanout.py              # 1,000 then 10,000 resources
    .venv/bin/python bench/fanout.py --quick      # 1,000 only
    .venv/bin/python bench/fanout.py --sizes 5000 --scenarios burst
    .venv/bin/python bench/fanout.py --quick --profile   # + one burst run of the daemon under cProfile
    .venv/bin/python bench/fanout.py --sizes 10000 --scenarios burst --py-spy   # + one sampled by py-spy
    .venv/bin/python bench/fanout.py --quick --outbox-rows 200000   # a state file with a history
    .venv/bin/python bench/fanout.py --quick --outbox-rows 10000 --outbox-status pending   # receiver outage

Not a test: it asserts nothing about time and exits 0 whatever the numbers (1 only when the
benchmark itself could not run: a poll failed, a resource was never polled, the daemon died).

Set-up
------
* A provider in ANOTHER process (this file with ``--serve``): a minimal asyncio HTTP/1.1 server
  with keep-alive on 127.0.0.1, answering every ``GET /r<i>?...`` with the same one-record JSON
  array and a ``Date`` header. It logs the wall-clock arrival time (``time.time()``) and path of
  every request; the benchmark fetches that log through ``/__log`` after each run.
* One instance with N resources ``bench/r00000 ...``, URL
  ``/r<i>?updatedSince=${gmtDate:...}``, dates configured, refresh interval 10 minutes (so each
  resource is polled exactly once in a run, and the start jitter window is min(10 min, 30 s) =
  30 s), ``engine.maxConcurrentPolls`` left at its default (16) unless ``--concurrency``.
* The daemon is ``python -m poller run -c CONFIG --state DB`` as a subprocess, log level INFO
  (its default) into a file; it is stopped with SIGTERM once every resource's poll has finished
  (the state file shows it), and reaped with ``os.wait4`` for its rusage. As under systemd
  (deploy/poller.service is Type=notify with WatchdogSec=30s) it gets ``NOTIFY_SOCKET`` (a datagram
  socket drained by a thread of this process) and ``WATCHDOG_USEC``; ``--no-systemd`` leaves
  them out (the daemon does less per poll without them).

Scenarios (each with a fresh state file)
----------------------------------------
burst   every resource due at the SAME instant T0. The state file is seeded before the start
        with ``last_poll_ms = T0 - interval`` (and a cursor) for every resource; the daemon's
        restart rule (``schedule.first_run``: next run = last poll + interval when that is still
        ahead) then schedules each one at exactly T0, no jitter. T0 is chosen after the
        daemon's start-up (measured in the cold run), so the start-up is not in the numbers;
        the report says if the daemon's ``daemon.started`` came after T0. This is the capacity
        measurement: polls/s is compared with the bare loop.
spread  the same, but the seeded schedule is T0 + U(0, 30 s) per resource (seeded PRNG): the
        very distribution of the start jitter, made observable. This is the daemon's own arrival
        pattern for "every resource due" after a start; the p99 lateness target is judged here.
cold    an empty state file: the real first start, where each resource runs at
        ``now + random() * 30 s`` with a jitter that is not observable from outside: a bound
        and an estimate are reported (see below). These polls are baselines (each writes one
        seen version); burst and spread polls have a cursor and find nothing new (the record is
        older than the window), so no poll produces an event and nothing is delivered.

The seeding writes the ``resources`` rows (and ``--outbox-rows``) with plain SQL into a file
created and migrated by ``state.open_store``, then reads one back through ``Store``.

What is measured
----------------
* polls/s: over the provider's request log, (N - 1) / (last request - first request) of the
  run; the same measure for the bare loop. The targets compare the burst scenario with the
  bare loop (the best of its runs: ``--bare-repeats`` before the daemon runs and one after them,
  the stricter reference). The machine may be shared, so the CPU seconds per poll of both are
  compared too: that ratio does not move with other load.
* bare loop: one ``httpx.AsyncClient`` (same headers, same ``Limits(max_connections=100)`` as
  poller.httpclient.HttpClients), N tasks gathered at once behind an ``asyncio.Semaphore`` of the
  same concurrency, each doing GET + ``raise_for_status`` + ``.json()`` on the same URLs; run in
  this process while the daemon is not running.
* lateness = request arrival at the provider - scheduled time, per resource (its first
  request). Scheduled times are exact in burst and spread (they come from the seeded state).
  It includes everything between "due" and "the provider sees the GET": the scheduler, the wait
  for one of the ``maxConcurrentPolls`` slots, and the poll's work before the request. Also
  shown: the daemon-side lateness, ``last_poll_ms`` (the clock read by the daemon after it got
  a slot) - scheduled time. In the cold scenario the scheduled time is unknown; it lies in
  [daemon start, start + W], W being the start window (``cold_window_s``: the daemon spreads the
  first polls of new resources at the steady rate, so W is the whole interval once N is large;
  30 s for a few resources), with start <= the ``daemon.started`` log line. The report gives
  the round's first/last request relative to that line and a lower bound on the largest
  lateness: last request - (daemon.started + W); and an ESTIMATE of the distribution: polls
  start in the order they are due (the dispatcher's heap, a FIFO queue), so the k-th request is
  matched with the k-th of N uniform jitters, ~ start + W x k / N (its error is about
  W x 0.5 / sqrt(N); taking daemon.started as the start leans low). Partial rounds
  (``--round-seconds``) match the requests they saw against the first of those N.
* the 100,000-resource figures (issue 12), from partial rounds: start to first poll (spawn to
  the provider's first request), SIGTERM to exit, and the event loop's lag: the daemon runs
  under bench/lagged_daemon.py, which adds a 10 ms ticker and reports how late it woke (max,
  p99, ticks over 100 ms). Log bytes per poll: the daemon's stderr at INFO over its polls.
* peak RSS: ``VmHWM`` of /proc/PID/status just before SIGTERM, and ``ru_maxrss`` from
  ``os.wait4`` (the whole life, shutdown included); the larger one is reported. CPU seconds of
  the daemon during the round (/proc/PID/stat) and per poll are shown too: a daemon at ~100 %
  of one core during the round is CPU-bound.

Targets: daemon polls/s >= 0.8 x the bare loop's (issue 12 raised issue 6's 0.6); p99 lateness
< 5 s; peak RSS < 200 MB at 10,000 resources. The lateness target is printed for spread (the arrival pattern the
daemon creates itself), cold (estimate) and burst; in a burst of N the p99 cannot be below
~0.99 N / capacity, which is why the bare loop's own burst lateness is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loopserve import ServerProcess, serve_forever  # noqa: E402
from stats import pct  # noqa: E402

INTERVAL_MIN = 10.0  # minutes: each resource polled once per run; start jitter window min(600 s, 30 s)
try:
    from poller.daemon.schedule import MAX_START_JITTER_S as JITTER_S  # the start jitter's upper bound
except ImportError:  # pragma: no cover
    JITTER_S = 30.0
INSTANCE = "bench"
ISO_MS = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
RECORD = {"id": "1", "updated": "2020-01-01T00:00:00.000Z", "created": "2020-01-01T00:00:00.000Z"}
BODY = json.dumps([RECORD]).encode()

EXTRA_PATH: list[str] = []  # --pythonpath: for experiments (both the daemon and the bare loop see it)
TARGET_RATIO = 0.8  # issue 12 (issue 6 asked 0.6)
TARGET_P99_S = 5.0
TARGET_RSS_MB = 200.0
TARGET_RSS_AT = 10_000
# issue 12: 100,000 resources on 2 cores
TARGET_BIG_AT = 100_000
TARGET_FIRST_POLL_S = 10.0
TARGET_BIG_RSS_MB = 400.0
TARGET_STOP_S = 10.0
TARGET_LAG_S = 0.100
TARGET_LOG_BYTES = 40


# -- the provider (a separate process) -----------------------------------------------------------

def serve() -> None:
    """Run the provider: print the port, serve until SIGTERM."""
    log: list[tuple[float, bytes]] = []
    date = [0, b""]

    def date_header() -> bytes:
        now = int(time.time())
        if now != date[0]:
            date[0], date[1] = now, formatdate(now, usegmt=True).encode()
        return date[1]

    def response(body: bytes, content_type: bytes = b"application/json") -> bytes:
        return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nDate: " + date_header() + b"\r\n\r\n" + body)

    def control(path: bytes) -> bytes:
        if path == b"/__reset":
            log.clear()
            return response(b"ok", b"text/plain")
        if path == b"/__count":
            return response(str(len(log)).encode(), b"text/plain")
        if path == b"/__log":
            return response("\n".join(f"{t:.6f} {p.decode()}" for t, p in log).encode(), b"text/plain")
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    class Provider(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:  # GETs only: a request ends at the blank line
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
                line = head.split(b"\r\n", 1)[0]
                parts = line.split(b" ")
                target = parts[1] if len(parts) > 1 else b"/"
                path = target.split(b"?", 1)[0]
                if path.startswith(b"/__"):
                    self.transport.write(control(path))  # type: ignore[attr-defined]
                else:
                    log.append((time.time(), path))
                    self.transport.write(response(BODY))  # type: ignore[attr-defined]

    serve_forever(Provider)


class ProviderProcess(ServerProcess):
    def __init__(self) -> None:
        super().__init__([__file__, "--serve"])

    def reset(self) -> None:
        self.get("/__reset")

    def count(self) -> int:
        return int(self.get("/__count"))

    def requests(self) -> list[tuple[float, str]]:
        out = []
        for line in self.get("/__log").splitlines():
            t, p = line.split(" ", 1)
            out.append((float(t), p))
        return out


# -- configuration and state --------------------------------------------------------------------

def names(n: int) -> list[str]:
    return [f"r{i:05d}" for i in range(n)]


def write_config(directory: Path, base: str, n: int, concurrency: int | None) -> Path:
    resources = {name: {
        "url": f"/{name}?updatedSince=${{gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}}",
        "idField": "id",
        "datesConfiguration": {"updatedDateField": "updated", "updatedDateFormat": ISO_MS,
                               "createdDateField": "created", "createdDateFormat": ISO_MS},
    } for name in names(n)}
    engine: dict = {"lookbackSeconds": 60}
    if concurrency is not None:
        engine["maxConcurrentPolls"] = concurrency
    config = {"engine": engine, "instances": [{
        "id": INSTANCE, "name": "Bench", "element": {"key": "bench"}, "api": {"baseUrl": base},
        "configuration": {
            "event.notification.enabled": True,
            "event.notification.callback.url": "http://127.0.0.1:9/hook",  # never called: no events
            "event.poller.refresh_interval": INTERVAL_MIN,
            "event.poller.configuration": resources,
        },
    }]}
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def seed_state(db: Path, due_ms: dict[str, int], outbox_rows: int = 0, outbox_status: str = "delivered") -> None:
    """A state file where resource ``key`` was last polled one interval before ``due_ms[key]``,
    so that the daemon's restart rule schedules its next poll at exactly ``due_ms[key]``; and
    ``outbox_rows`` old notifications: ``delivered`` (the outbox's history, which is never pruned)
    or ``pending`` (a receiver outage; their next attempt is an hour away, so that no delivery
    runs during the benchmark)."""
    from state import open_store

    with open_store(db):  # create and migrate through the real code
        pass
    interval_ms = int(INTERVAL_MIN * 60_000)
    rows = [(key, INSTANCE, key.split("/", 1)[1], due - interval_ms, due - interval_ms, due - interval_ms)
            for key, due in due_ms.items()]
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO resources (key, instance_id, resource, cursor_ms, last_poll_ms, last_success_ms,"
            " consecutive_failures, polls, events) VALUES (?, ?, ?, ?, ?, ?, 0, 1, 0)", rows)
        old_ms = int(time.time() * 1000) - 86_400_000
        delivered = outbox_status == "delivered"
        retry_ms = int(time.time() * 1000) + 3_600_000
        conn.executemany(
            "INSERT INTO outbox (id, resource_key, instance_id, resource, callback_url, seq, created_ms, body,"
            " event_ids, status, attempts, next_attempt_ms, delivered_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((f"old-{i}", f"{INSTANCE}/r{i % 1000:05d}", INSTANCE, f"r{i % 1000:05d}", "http://127.0.0.1:9/hook",
              i, old_ms, b'{"message": {"events": []}}', "[]", outbox_status, 1,
              None if delivered else retry_ms, old_ms if delivered else None) for i in range(outbox_rows)))
    conn.close()
    with open_store(db, writer=False) as store:  # what the daemon will read
        if due_ms:
            key, due = next(iter(due_ms.items()))
            state = store.resource_state(key)
            assert state.last_poll_ms == due - interval_ms and state.next_due_ms is None, state
        assert store.outbox_counts().get(outbox_status, 0) == outbox_rows


def state_rows(db: Path) -> dict[str, tuple[int | None, int, int]]:
    """key -> (last_poll_ms, polls, consecutive_failures), read-only beside the running daemon."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return {k: (lp, p, f) for k, lp, p, f in
                conn.execute("SELECT key, last_poll_ms, polls, consecutive_failures FROM resources")}
    finally:
        conn.close()


# -- measurements -------------------------------------------------------------------------------

def cold_window_s(n: int, concurrency: int) -> float:
    """Over how long the daemon spreads the first polls of ``n`` new resources: as
    poller.daemon.daemon._first_runs computes it (at the steady rate, or a poll a second per slot
    when faster; at least 30 s, at most the interval)."""
    interval_s = INTERVAL_MIN * 60
    try:
        from poller.daemon.schedule import start_window_s
    except ImportError:  # pragma: no cover (an older tree under --pythonpath)
        return JITTER_S
    return min(interval_s, start_window_s(n, max(n / interval_s, float(concurrency))))


def span_rate(times: list[float]) -> tuple[float, float]:
    """(span seconds, polls/s) between the first and the last request."""
    if len(times) < 2:
        return 0.0, float("nan")
    span = max(times) - min(times)
    return span, (len(times) - 1) / span if span > 0 else float("inf")


def proc_status(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])  # kB
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class BareResult:
    wall_s: float
    span_s: float
    rate: float
    p50_s: float
    p99_s: float
    cpu_s: float


async def _bare(base: str, paths: list[str], concurrency: int) -> float:
    import httpx

    from poller import USER_AGENT

    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=100)) as client:
        async def one(path: str) -> None:
            async with limit:
                r = await client.get(base + path)
                r.raise_for_status()
                r.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in paths))
        return time.perf_counter() - started


def bare_loop(provider: ProviderProcess, n: int, concurrency: int) -> BareResult:
    since = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 60))
    paths = [f"/{name}?updatedSince={since}" for name in names(n)]
    provider.reset()
    cpu0 = time.process_time()
    t0 = time.time()
    wall = asyncio.run(_bare(provider.base, paths, concurrency))
    cpu = time.process_time() - cpu0
    reqs = provider.requests()
    assert len(reqs) == n, f"bare loop: {len(reqs)} requests for {n} resources"
    times = [t for t, _ in reqs]
    span, rate = span_rate(times)
    late = [t - t0 for t in times]  # all "due" when the loop starts: a burst, like the burst scenario
    return BareResult(wall, span, rate, pct(late, 0.5), pct(late, 0.99), cpu)


@dataclass
class DaemonResult:
    scenario: str
    n: int
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    startup_s: float = float("nan")        # spawn -> daemon.started log line
    started_vs_t0_s: float | None = None   # daemon.started - T0 (negative: scheduling was done in time)
    span_s: float = float("nan")
    rate: float = float("nan")
    late: list[float] = field(default_factory=list)        # provider side
    late_state: list[float] = field(default_factory=list)  # daemon side (last_poll_ms)
    late_estimate: list[float] = field(default_factory=list)  # cold: an estimate, see run_daemon
    cold_first_s: float = float("nan")
    cold_last_s: float = float("nan")
    cold_window_s: float = JITTER_S  # over how long the daemon spreads the first polls
    rss_mb: float = float("nan")
    hwm_mb: float = float("nan")
    maxrss_mb: float = float("nan")
    cpu_round_s: float = float("nan")
    cpu_total_s: float = float("nan")
    exit_code: int | None = None
    warnings: int = 0
    notify_counts: dict[str, int] | None = None
    first_poll_s: float = float("nan")     # spawn -> the provider's first request
    stop_s: float = float("nan")           # SIGTERM -> the process reaped
    lag: dict[str, float] | None = None    # the 10 ms ticker's report (bench/lagged_daemon.py)
    partial: bool = False                  # --round-seconds: stopped before every resource was polled
    requested: int = 0                     # resources the provider saw a request for
    log_bytes: int = 0                     # the daemon's log (stderr, INFO), whole life


class NotifySocket:
    """What systemd gives a Type=notify service: a datagram socket in ``NOTIFY_SOCKET``; a thread
    here receives and counts the messages (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1)."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading
        from collections import Counter

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.counts: Counter[str] = Counter()
        self.closed = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode(errors="replace").splitlines():
                self.counts[line.split("=", 1)[0]] += 1

    def close(self) -> None:
        self.closed = True
        self.thread.join(2)
        self.sock.close()


def log_time(line: str) -> float:
    from datetime import datetime

    stamp = line.split(" ", 1)[0]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_daemon(provider: ProviderProcess, workdir: Path, n: int, scenario: str, *, concurrency: int | None,
               startup_hint_s: float, timeout_s: float, profile: Path | None = None,
               spy: Path | None = None, outbox_rows: int = 0, outbox_status: str = "delivered",
               systemd: bool = True, round_s: float | None = None) -> DaemonResult:
    """One run of the daemon; ``round_s``: stop it that long after the spawn whatever has been
    polled (a partial round: start-up, memory, lag and the stop are what it measures)."""
    result = DaemonResult(scenario, n)
    result.partial = round_s is not None
    run_dir = workdir / f"{scenario}-{n}"
    run_dir.mkdir()
    config = write_config(run_dir, provider.base, n, concurrency)
    db = run_dir / "poller.db"
    keys = [f"{INSTANCE}/{name}" for name in names(n)]
    due_ms: dict[str, int] = {}
    t0 = None
    if scenario in ("burst", "spread"):
        # far enough ahead that the daemon has scheduled everything before T0
        t0 = time.time() + 1.5 * startup_hint_s + 2.0
        t0_ms = int(t0 * 1000)
        rng = random.Random(6)
        due_ms = {k: t0_ms if scenario == "burst" else t0_ms + int(rng.random() * JITTER_S * 1000) for k in keys}
        seed_state(db, due_ms, outbox_rows, outbox_status)
    elif outbox_rows:
        seed_state(db, {}, outbox_rows, outbox_status)
    provider.reset()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join([*EXTRA_PATH, str(ROOT)]),
           "LANG": "C.UTF-8"}
    for name in ("BENCH_SLOW_CALLBACK", "BENCH_STALL_FILE", "BENCH_STALL_FRAMES"):  # bench/lagged_daemon.py:
        if os.environ.get(name):  # name what blocks the loop
            env[name] = os.environ[name]
    notify = None
    if systemd:  # as deploy/poller.service runs it: Type=notify, WatchdogSec=30s
        notify = NotifySocket(run_dir / "notify.sock")
        env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="30000000")
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
        cmd += ["-m", "poller", "run", "-c", str(config), "--state", str(db)]
    else:  # the event loop's lag, sampled every 10 ms (the wrapper adds the ticker and nothing else)
        cmd += [str(ROOT / "bench" / "lagged_daemon.py"), "run", "-c", str(config), "--state", str(db)]
        env["BENCH_LAG_FILE"] = str(run_dir / "lag.json")
    log_path = run_dir / "daemon.log"
    with open(log_path, "w") as log_file:
        spawn = time.time()
        proc = subprocess.Popen(cmd, cwd=run_dir, stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    spy_proc = None
    cpu_at_t0 = None
    deadline = time.time() + timeout_s
    polled_needed = 2 if due_ms else 1
    hwm = 0
    try:
        # wait for every resource's request, then for every poll to be finished in the state file
        while True:
            if proc.poll() is not None:
                result.problems.append(f"the daemon exited early with {proc.returncode}")
                break
            if cpu_at_t0 is None and t0 is not None and time.time() >= t0:
                cpu_at_t0 = proc_cpu_s(proc.pid)
                if spy is not None:  # the round only; --idle: time blocked (fsync, epoll) is counted too
                    spy_proc = subprocess.Popen(
                        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid), "--format",
                         "raw", "--output", str(spy), "--rate", "200", "--idle"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if cpu_at_t0 is None and t0 is None and provider.count() > 0:
                cpu_at_t0 = proc_cpu_s(proc.pid)
            hwm = max(hwm, proc_status(proc.pid, "VmHWM") or 0)
            if round_s is not None:
                if time.time() - spawn >= round_s:
                    break
            elif provider.count() >= n and db.exists():
                rows = state_rows(db)
                if sum(1 for k in keys if rows.get(k, (None, 0, 0))[1] >= polled_needed) == n:
                    break
            if time.time() > deadline:
                result.problems.append(f"timeout after {timeout_s:.0f} s")
                break
            time.sleep(0.1)
        cpu_end = proc_cpu_s(proc.pid)
        hwm = max(hwm, proc_status(proc.pid, "VmHWM") or 0)
    finally:
        if spy_proc is not None:
            spy_proc.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            try:
                spy_proc.wait(60)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_proc.wait()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        term_at = time.monotonic()
        reaped = None
        stop_deadline = time.time() + 60
        while reaped is None:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (status, usage)
                result.stop_s = time.monotonic() - term_at
                break
            if time.time() > stop_deadline:
                proc.kill()  # our own child, by its pid
                stop_deadline = time.time() + 60
            time.sleep(0.05)
        status, usage = reaped
        proc.returncode = os.waitstatus_to_exitcode(status)
        if notify is not None:
            notify.close()
            result.notify_counts = dict(notify.counts)
    result.exit_code = proc.returncode
    lag_file = run_dir / "lag.json"
    if lag_file.exists():
        result.lag = json.loads(lag_file.read_text())
    if result.exit_code != 0:
        result.problems.append(f"exit code {result.exit_code}")
    result.maxrss_mb = usage.ru_maxrss / 1024
    result.hwm_mb = hwm / 1024
    result.rss_mb = max(result.maxrss_mb, result.hwm_mb)
    result.cpu_total_s = usage.ru_utime + usage.ru_stime
    if cpu_at_t0 is not None and cpu_end is not None:
        result.cpu_round_s = cpu_end - cpu_at_t0

    log_text = log_path.read_text(errors="replace")
    result.log_bytes = len(log_text.encode())
    log_lines = log_text.splitlines()
    started = [log_time(line) for line in log_lines if " daemon.started" in line]
    if started:
        result.startup_s = started[0] - spawn
        if t0 is not None:
            result.started_vs_t0_s = started[0] - t0
    bad = [line for line in log_lines if any(e in line for e in (" poll.failed", " poll.crashed", " ERROR "))]
    result.warnings = sum(1 for line in log_lines if " WARNING " in line)
    if bad:
        result.problems.append(f"{len(bad)} failed polls or errors in the log, e.g. {bad[0][:300]}")

    reqs = provider.requests()
    first: dict[str, float] = {}
    for t, path in reqs:
        first.setdefault(f"{INSTANCE}{path}", t)
    if len(first) != n and not result.partial:
        result.problems.append(f"{len(first)} of {n} resources requested")
    result.requested = len(first)
    if len(reqs) != len(first):
        result.problems.append(f"{len(reqs) - len(first)} repeated requests")
    times = list(first.values())
    result.span_s, result.rate = span_rate(times)
    if times:
        result.first_poll_s = min(times) - spawn
    rows = state_rows(db) if db.exists() else {}
    failed = sum(1 for v in rows.values() if v[2]) if not result.partial else 0
    if failed:
        result.problems.append(f"{failed} resources with consecutive_failures > 0")
    if due_ms:
        result.late = [first[k] - due_ms[k] / 1000 for k in first if k in due_ms]
        result.late_state = [(rows[k][0] - due_ms[k]) / 1000 for k in keys if k in rows and rows[k][0] is not None
                             and rows[k][1] >= 2]
        if result.late and min(result.late) < -0.05:
            result.problems.append(f"a poll came {-min(result.late):.3f} s BEFORE its scheduled time: the "
                                   "seeded schedule was not the one used")
    elif started and times:
        result.cold_first_s = min(times) - started[0]
        result.cold_last_s = max(times) - started[0]
        # estimate: jobs start in schedule order (APScheduler fires in time order, the semaphore is
        # FIFO), so the k-th request belongs to the k-th scheduled time, which for N uniform jitters
        # is about now + 30 s * (k + 1) / (N + 1); now is taken as daemon.started (the real one is
        # a little earlier, which would make the true lateness a little larger)
        ordered = sorted(times)
        window = cold_window_s(n, concurrency or 16)
        result.cold_window_s = window
        result.late_estimate = [t - (started[0] + window * (k + 1) / (n + 1))
                                for k, t in enumerate(ordered)]
    result.ok = not result.problems
    return result


# -- report -------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "MET   " if ok else "MISSED"


def fmt_late(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"p50 {pct(values, 0.5):7.3f} s  p99 {pct(values, 0.99):7.3f} s  max {max(values):7.3f} s  "
            f"min {min(values):6.3f} s")


def print_daemon(r: DaemonResult) -> None:
    print(f"  daemon [{r.scenario}] N={r.n}: exit {r.exit_code}, start-up {r.startup_s:.2f} s (spawn -> daemon.started)"
          + (f", daemon.started {r.started_vs_t0_s:+.2f} s vs T0" if r.started_vs_t0_s is not None else ""))
    print(f"    polls/s (provider log, first..last request): {r.rate:8.1f}   span {r.span_s:.2f} s"
          + (f"   (partial round: {r.requested:,} of {r.n:,} resources polled)" if r.partial else ""))
    if r.scenario != "cold":
        print(f"    lateness, provider side (request arrival - scheduled): {fmt_late(r.late)}")
        print(f"    lateness, daemon side (last_poll_ms - scheduled):      {fmt_late(r.late_state)}")
    else:
        print(f"    first request {r.cold_first_s:+.2f} s, last {r.cold_last_s:+.2f} s after daemon.started "
              f"(start window {r.cold_window_s:.0f} s); largest lateness >= "
              f"{max(0.0, r.cold_last_s - r.cold_window_s):.2f} s")
        print(f"    lateness ESTIMATE (k-th request vs the k-th of N uniform jitters, now = daemon.started): "
              f"{fmt_late(r.late_estimate)}")
    per_poll = r.cpu_round_s / r.n * 1000 if r.n else float("nan")
    busy = r.cpu_round_s / r.span_s if r.span_s and r.span_s == r.span_s and r.span_s > 0 else float("nan")
    print(f"    CPU during the round {r.cpu_round_s:.2f} s ({per_poll:.2f} ms/poll, {busy:.0%} of one core over the span);"
          f" whole life {r.cpu_total_s:.2f} s")
    print(f"    peak RSS {r.rss_mb:.1f} MB (VmHWM before SIGTERM {r.hwm_mb:.1f} MB, ru_maxrss {r.maxrss_mb:.1f} MB);"
          f" {r.warnings} WARNING lines in its log")
    polled = r.requested or r.n
    print(f"    log: {r.log_bytes:,} bytes at INFO, {r.log_bytes / polled:.1f} bytes per poll"
          + (" (baselines: each is logged)" if r.scenario == "cold" else " (no poll changed anything)"))
    print(f"    first poll {r.first_poll_s:.2f} s after the spawn; SIGTERM -> exit {r.stop_s:.2f} s"
          + (f"; event-loop lag (10 ms ticker): max {r.lag['max_s'] * 1000:.0f} ms, p99 {r.lag['p99_s'] * 1000:.1f} ms,"
             f" {r.lag['over_100ms']} of {r.lag['ticks']:,} ticks over 100 ms" if r.lag else ""))
    if r.notify_counts is not None:
        print("    NOTIFY_SOCKET messages: " + (", ".join(f"{k} x{v}" for k, v in sorted(r.notify_counts.items()))
                                               or "none"))
    for p in r.problems:
        print(f"    PROBLEM: {p}")


def print_profile(path: Path, limit: int = 25) -> None:
    import pstats

    print(f"\n  cProfile of the daemon (burst), {path}:")
    stats = pstats.Stats(str(path))
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)


CATEGORIES = (  # first match wins, tested on the file of each frame, innermost frame first
    ("SQLite (state/, sqlite3, sqlite_utils)", ("state/", "sqlite_utils", "sqlite3")),
    ("httpx / httpcore / h11 / anyio (the HTTP client)", ("httpx/", "httpcore/", "h11/", "anyio/", "sniffio")),
    ("APScheduler", ("apscheduler/",)),
    ("logging", ("logging/", "logconfig.py")),
    ("asyncio event loop, selectors, sockets", ("asyncio/", "selectors.py", "socket.py", "ssl.py")),
    ("poller (engine, fetch, detect, templates, dates, daemon, ...)", ("poller/",)),
)


PIPELINE = (  # (label, function-name prefix as py-spy prints it)
    ("the event loop waiting (epoll: nothing to run)", "EpollSelector.select"),
    ("APScheduler: waking up, submitting due jobs", "BaseScheduler._process_jobs"),
    ("Daemon._poll_job (everything a job does)", "Daemon._poll_job"),
    ("  poll_resource", "poll_resource"),
    ("    the HTTP request (fetch._fetch_json)", "_fetch_json"),
    ("    Store.resource_state (read the state row)", "Store.resource_state"),
    ("    _commit_page (seen lookup, detection, Store.record_page)", "_commit_page"),
    ("      Store.record_page", "Store.record_page"),
    ("    Store.finish_poll (UPDATE + COMMIT, fsync with synchronous=FULL)", "Store.finish_poll"),
    ("      Database.atomic (the COMMIT itself)", "Database.atomic"),
    ("    render_url (templates)", "render_url"),
    ("  Daemon.status_line (after every poll, when NOTIFY_SOCKET is set)", "Daemon.status_line ("),
    ("    Store.outbox_counts (a query per poll)", "Store.outbox_counts"),
    ("    Store.open_counts_by_resource (a query per poll)", "Store.open_counts_by_resource"),
    ("    the failed-outcome count over every resource (genexpr)", "Daemon.status_line.<locals>.<genexpr>"),
    ("  Notifier.status", "Notifier.status"),
    ("logging (poll.done lines)", "Logger._log"),
)


def _frame_file(frame: str) -> str:
    # "function (path/file.py:123)"
    return frame[frame.rfind("(") + 1:].rsplit(":", 1)[0] if frame.endswith(")") else frame


def print_spy(path: Path, limit: int = 22) -> None:
    """Aggregate py-spy's collapsed stacks: self and inclusive samples per function, and self
    samples per library."""
    from collections import Counter

    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    total = other_threads = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames or not frames[0].startswith(("_run_module_as_main", "<module>")):  # (-m, or lagged_daemon.py)
            other_threads += n  # worker threads (getaddrinfo), or a truncated stack
            continue
        total += n
        funcs = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") else f for f in frames]  # drop line numbers
        self_c[funcs[-1]] += n
        for f in set(funcs):
            incl[f] += n
        for frame in reversed(frames):
            file = _frame_file(frame)
            cat = next((name for name, keys in CATEGORIES if any(k in file for k in keys)), None)
            if cat is not None:
                cats[cat] += n
                break
        else:
            cats["other"] += n
    if not total:
        print("  (py-spy recorded nothing)")
        return
    print(f"\n  py-spy: {total} samples of the daemon's main thread from T0 to the end of the round, idle "
          f"included ({other_threads} samples of other threads or truncated stacks left out)")
    print("  self time by library (innermost frame that belongs to one):")
    for name, n in cats.most_common():
        print(f"    {n / total:6.1%}  {name}")
    print("  top functions by self time:")
    for name, n in self_c.most_common(limit):
        print(f"    {n / total:6.1%}  {name}")
    print("  top functions by inclusive time (below the event loop):")
    skip = ("<frozen runpy>", "poller/__main__.py", "poller/cli/", "asyncio/runners.py", "asyncio/base_events.py")
    shown = [(name, n) for name, n in incl.most_common() if not any(k in name for k in skip)]
    for name, n in shown[:limit + 10]:
        print(f"    {n / total:6.1%}  {name}")
    print("  where a poll's time goes (inclusive; these overlap where one calls the other):")
    for label, key in PIPELINE:
        n = sum(c for name, c in incl.items() if name.startswith(key))
        print(f"    {n / total:6.1%}  {label}")


def big_targets(n: int, results: dict[str, DaemonResult]) -> list[tuple[str, bool, str]]:
    """Issue 12's rows: log bytes per no-change poll (burst); for 100,000 resources start-up,
    memory, stop and loop lag."""
    rows = []
    if "burst" in results:
        b = results["burst"]
        per_poll = b.log_bytes / max(1, b.requested)
        rows.append((f"N={n:>6,}: log <= {TARGET_LOG_BYTES} bytes per no-change poll (burst, INFO)",
                     per_poll <= TARGET_LOG_BYTES, f"{per_poll:.1f} bytes"))
    if n < TARGET_BIG_AT or not results:
        return rows
    first = results["cold"].first_poll_s if "cold" in results else float("nan")
    stop = max(r.stop_s for r in results.values())
    lag = max((r.lag["max_s"] for r in results.values() if r.lag), default=float("nan"))
    rss = max(r.rss_mb for r in results.values())
    return rows + [
        (f"N={n:>6,}: start to first poll <= {TARGET_FIRST_POLL_S:g} s (cold)", first <= TARGET_FIRST_POLL_S,
         f"{first:.2f} s"),
        (f"N={n:>6,}: peak RSS <= {TARGET_BIG_RSS_MB:g} MB", rss <= TARGET_BIG_RSS_MB, f"{rss:.1f} MB"),
        (f"N={n:>6,}: SIGTERM to exit <= {TARGET_STOP_S:g} s", stop <= TARGET_STOP_S, f"{stop:.2f} s"),
        (f"N={n:>6,}: event loop never blocked > {TARGET_LAG_S * 1000:g} ms", lag <= TARGET_LAG_S,
         f"max lag {lag * 1000:.0f} ms"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1,000 resources only")
    parser.add_argument("--sizes", type=int, nargs="+", help="resource counts (default: 1000 10000)")
    parser.add_argument("--scenarios", nargs="+", choices=("cold", "burst", "spread"),
                        default=["cold", "burst", "spread"])
    parser.add_argument("--concurrency", type=int, help="engine.maxConcurrentPolls (default: the engine's default)")
    parser.add_argument("--bare-repeats", type=int, default=2, metavar="K",
                        help="bare-loop runs before the daemon runs (one more runs after them; the best is the "
                             "reference)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for one daemon run")
    parser.add_argument("--profile", action="store_true", help="one more burst run per size under cProfile")
    parser.add_argument("--py-spy", action="store_true", dest="spy",
                        help="one more burst run per size sampled by py-spy (pip install py-spy into the venv)")
    parser.add_argument("--outbox-rows", type=int, default=0, metavar="K",
                        help="start each daemon with K old notifications in the state file, of --outbox-status "
                             "(the outbox is never pruned; under systemd the daemon counts the pending and dead "
                             "ones after every poll)")
    parser.add_argument("--outbox-status", choices=("delivered", "pending"), default="delivered",
                        help="the status of the --outbox-rows notifications (pending: a receiver outage)")
    parser.add_argument("--no-systemd", action="store_true",
                        help="run the daemon without NOTIFY_SOCKET / WATCHDOG_USEC (by default the benchmark "
                             "gives it both, as systemd does for deploy/poller.service)")
    parser.add_argument("--pythonpath", action="append", default=[], metavar="DIR",
                        help="put DIR first on the path of the daemon and of the bare loop (to try a package, "
                             "e.g. one installed with pip install --target DIR)")
    parser.add_argument("--round-seconds", type=float, metavar="S",
                        help="stop each daemon run S seconds after its spawn, polled or not (a partial round: "
                             "start-up, first poll, memory, lag, SIGTERM; the 100,000-resource targets)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs, states)")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    EXTRA_PATH[:] = [str(Path(d).resolve()) for d in args.pythonpath]
    sys.path[:0] = EXTRA_PATH
    from poller.config.types import EngineConfig

    concurrency = args.concurrency or EngineConfig().max_concurrent_polls
    sizes = args.sizes or ([1000] if args.quick else [1000, 10000])
    import platform

    print(f"fanout benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, sizes {sizes}, "
          f"concurrency {concurrency}, refresh interval {INTERVAL_MIN:g} min, scenarios {' '.join(args.scenarios)}"
          + (f", {args.outbox_rows:,} old {args.outbox_status} outbox rows" if args.outbox_rows else "")
          + (", no NOTIFY_SOCKET" if args.no_systemd else ", NOTIFY_SOCKET + WATCHDOG_USEC=30 s as under systemd")
          + (f", extra path {EXTRA_PATH}" if EXTRA_PATH else ""))
    workdir = Path(tempfile.mkdtemp(prefix="poller-fanout-"))
    provider = ProviderProcess()
    failed = False
    summary: list[tuple[str, bool, str]] = []
    try:
        for n in sizes:
            print(f"\n== N = {n:,} resources ==")
            bares = [bare_loop(provider, n, concurrency)
                     for _ in range(0 if args.round_seconds is not None else args.bare_repeats)]
            results: dict[str, DaemonResult] = {}
            startup_hint = 1.0 + n * 0.00005  # (raised to the measured start-up of each run)
            for scenario in args.scenarios:
                r = run_daemon(provider, workdir, n, scenario, concurrency=args.concurrency,
                               startup_hint_s=startup_hint, timeout_s=args.timeout,
                               outbox_rows=args.outbox_rows,
                               outbox_status=args.outbox_status, systemd=not args.no_systemd,
                               round_s=args.round_seconds)
                if r.startup_s == r.startup_s:
                    startup_hint = max(startup_hint, r.startup_s)
                results[scenario] = r
                failed |= not r.ok
            if args.round_seconds is not None:  # partial rounds: no capacity or lateness comparison
                for r in results.values():
                    print_daemon(r)
                summary += big_targets(n, results)
                continue
            bares.append(bare_loop(provider, n, concurrency))  # after the daemon runs too
            for i, b in enumerate(bares, 1):
                print(f"  bare httpx loop #{i}{' (after)' if i == len(bares) else ''}: {b.rate:8.1f} polls/s "
                      f"(provider log span {b.span_s:.2f} s, wall {b.wall_s:.2f} s, CPU {b.cpu_s:.2f} s = "
                      f"{b.cpu_s / n * 1000:.2f} ms/GET); as a burst: lateness p50 {b.p50_s:.3f} s p99 {b.p99_s:.3f} s")
            best = max(bares, key=lambda b: b.rate)
            bare = best.rate
            bare_cpu_ms = min(b.cpu_s for b in bares) / n * 1000
            print(f"  bare loop reference: best {bare:.1f} polls/s, median {statistics.median(b.rate for b in bares):.1f};"
                  f" least CPU {bare_cpu_ms:.2f} ms/GET")
            for r in results.values():
                print_daemon(r)
            summary += big_targets(n, results)
            if "burst" in results:
                burst = results["burst"]
                arrival = n / JITTER_S
                print(f"  capacity vs the start-jitter arrival rate: the burst ran at {burst.rate:.1f} polls/s; "
                      f"N / {JITTER_S:.0f} s = {arrival:.1f} polls/s arrive after a start (utilisation "
                      f"{arrival / burst.rate:.0%}: lateness grows without bound past 100 %)")
                ratio = burst.rate / bare
                cpu_ratio = bare_cpu_ms / (burst.cpu_round_s / n * 1000)
                print(f"  burst vs bare: wall-clock ratio {ratio:.2f}; CPU-per-poll ratio {cpu_ratio:.2f} "
                      "(bare ms/GET / daemon ms/poll: insensitive to other load on the machine)")
                summary.append((f"N={n:>6,}: daemon polls/s >= {TARGET_RATIO} x bare loop",
                                ratio >= TARGET_RATIO,
                                f"{burst.rate:.1f} / {bare:.1f} = {ratio:.2f} (CPU ratio {cpu_ratio:.2f})"))
            if "spread" in results:
                p99 = pct(results["spread"].late, 0.99)
                summary.append((f"N={n:>6,}: p99 lateness < {TARGET_P99_S:g} s (spread: the start-jitter pattern)",
                                p99 < TARGET_P99_S, f"p99 {p99:.3f} s"))
            if "cold" in results and results["cold"].late_estimate:
                p99 = pct(results["cold"].late_estimate, 0.99)
                summary.append((f"N={n:>6,}: p99 lateness < {TARGET_P99_S:g} s (cold start, ESTIMATE)",
                                p99 < TARGET_P99_S, f"p99 ~{p99:.3f} s; max >= "
                                f"{max(0.0, results['cold'].cold_last_s - results['cold'].cold_window_s):.3f} s "
                                "for certain"))
            if "burst" in results:
                p99 = pct(results["burst"].late, 0.99)
                summary.append((f"N={n:>6,}: p99 lateness < {TARGET_P99_S:g} s (burst: all due at one instant)",
                                p99 < TARGET_P99_S,
                                f"p99 {p99:.3f} s (bare loop as a burst: p99 {best.p99_s:.3f} s)"))
            if n >= TARGET_RSS_AT or n == max(sizes):
                rss = max(r.rss_mb for r in results.values()) if results else float("nan")
                label = f"N={n:>6,}: peak RSS < {TARGET_RSS_MB:g} MB" + ("" if n >= TARGET_RSS_AT else
                                                                          " (target is for 10,000)")
                summary.append((label, rss < TARGET_RSS_MB, f"{rss:.1f} MB"))
            for wanted, kind, output, show in ((args.profile, "profile", f"daemon-{n}.prof", print_profile),
                                               (args.spy, "spy", f"daemon-{n}.spy.txt", print_spy)):
                if wanted:  # one more burst run, under cProfile or py-spy
                    r = run_daemon(provider, _fresh(workdir, f"{kind}-{n}"), n, "burst", concurrency=args.concurrency,
                                   startup_hint_s=startup_hint * 2, timeout_s=args.timeout,
                                   outbox_rows=args.outbox_rows, outbox_status=args.outbox_status,
                                   systemd=not args.no_systemd, **{kind: workdir / output})
                    print_daemon(r)
                    show(workdir / output)
    finally:
        provider.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"\nkept {workdir}")
    print("\nTargets:")
    for label, ok, detail in summary:
        print(f"  {verdict(ok)} {label:<62} {detail}")
    if failed:
        print("\nThe benchmark itself had problems (see PROBLEM lines): its numbers are not trustworthy.")
    return 1 if failed else 0


def _fresh(workdir: Path, name: str) -> Path:
    path = workdir / name
    path.mkdir()
    return path


if __name__ == "__main__":
    raise SystemExit(main())
