"""Benchmark: `poller deliver --all` against a bare httpx POST loop sending the same bodies.

    .venv/bin/python bench/deliver.py              # 1, 100 and 1,000 pending resources + a slow endpoint
    .venv/bin/python bench/deliver.py --quick      # fewer notifications
    .venv/bin/python bench/deliver.py --resources 100 --notifications 20000

Not a test: it asserts nothing about time and exits 0 whatever the numbers (1 only when the
benchmark itself could not run: a notification not delivered, a process failing).

Set-up
------
* A receiver in ANOTHER process (this file with ``--serve``): a minimal asyncio HTTP/1.1 server
  on 127.0.0.1 with keep-alive, reading each POST's body (``Content-Length``) and answering 204;
  paths starting with ``/slow`` answer after ``--slow-seconds`` (3). It counts requests per path
  and logs the arrival time of each.
* A state file with N pending notifications spread round-robin over K resources of one
  instance (order within a resource is the notification's ``seq``), each a real notification
  body made by ``poller.events.notify.build_notifications`` from 10 events of ~300-byte records
  (the default ``batchSize``), about 4 KB. They are written with plain SQL into a file created
  and migrated by ``state.open_store``.
* ``poller deliver --all -c CONFIG --state DB`` as a subprocess (wall time and CPU from
  ``os.wait4``), then the bare loop as a subprocess too (this file with ``--bare``): it reads the
  same bodies from the same file with sqlite3, and POSTs each with one ``httpx.AsyncClient``
  (``Content-Type: application/json``, the same connection limits) behind a semaphore of the
  concurrency poller may use: ``concurrencyPerEndpoint`` (4), but never more than K, since a
  resource's notifications go one after another in order (poller's guarantee; the bare loop
  honours it by giving each resource one worker). Both include the interpreter's start and
  their imports; the bare loop signs nothing and records nothing, which is why it is the floor.
* poller delivers with aiohttp's client (poller/deliver/client.py), about a fifth of httpx's CPU
  per POST: the same bare loop with an ``aiohttp.ClientSession`` (``--client aiohttp``) is run
  and printed too, for information. The target stays the issue's, against the httpx loop.
* slow endpoint: two instances of 100 resources each, one's callback answering after 3 s, the
  other's at once; ``poller run`` (the daemon: deliveries start as soon as it does) is timed
  until the fast endpoint has all its notifications. A slow endpoint must never delay another:
  the fast one's rate is compared with the same notifications delivered without the slow one.

Targets (issue 12): poller / bare >= 0.8 (wall time ratio) at 1, 100 and 1,000 pending
resources; the fast endpoint beside a slow one at >= 0.8 of its rate alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loopserve import ServerProcess, serve_forever  # noqa: E402

INSTANCE = "bench"
TARGET_RATIO = 0.8


# -- the receiver (a separate process) -----------------------------------------------------------

def serve(slow_s: float) -> None:
    counts: dict[str, int] = {}
    arrivals: list[tuple[float, str]] = []

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""
            self.need: int | None = None
            self.path = ""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                if self.need is None:
                    end = self.buffer.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
                    lines = head.split(b"\r\n")
                    self.path = lines[0].split(b" ")[1].decode()
                    self.need = 0
                    for line in lines[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            self.need = int(value)
                if len(self.buffer) < self.need:
                    return
                self.buffer = self.buffer[self.need:]
                self.need = None
                self.answer(self.path)

        def answer(self, path: str) -> None:
            if path.startswith("/__"):
                body = json.dumps({"counts": counts, "arrivals": arrivals}).encode() if path == "/__log" else b"ok"
                if path == "/__reset":
                    counts.clear()
                    arrivals.clear()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "  # type: ignore[attr-defined]
                                     + str(len(body)).encode() + b"\r\n\r\n" + body)
                return
            counts[path] = counts.get(path, 0) + 1
            arrivals.append((time.time(), path))
            reply = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
            if path.startswith("/slow"):
                asyncio.get_running_loop().call_later(slow_s, self.transport.write, reply)  # type: ignore[attr-defined]
            else:
                self.transport.write(reply)  # type: ignore[attr-defined]

    serve_forever(Receiver)


class ReceiverProcess(ServerProcess):
    def __init__(self, slow_s: float) -> None:
        super().__init__([__file__, "--serve", "--slow-seconds", str(slow_s)])

    def reset(self) -> None:
        self.get("/__reset")

    def log(self) -> dict:
        return json.loads(self.get("/__log"))


# -- the bare loop (a separate process) ------------------------------------------------------------

def bare(db: str, concurrency: int, client: str = "httpx") -> None:
    """POST every pending body of the state file ``db`` to its callback URL, a resource per worker,
    with httpx (the issue's floor) or aiohttp (the client poller delivers with)."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT resource_key, callback_url, body FROM outbox WHERE status = 'pending' "
                        "ORDER BY resource_key, seq").fetchall()
    conn.close()
    by_resource: dict[str, list[tuple[str, bytes]]] = {}
    for key, url, body in rows:
        by_resource.setdefault(key, []).append((url, body))

    queue: asyncio.Queue[list[tuple[str, bytes]]] = asyncio.Queue()
    for items in by_resource.values():
        queue.put_nowait(items)
    headers = {"Content-Type": "application/json"}

    async def with_httpx() -> None:
        import httpx

        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def worker() -> None:  # one resource at a time, its notifications in order
                while not queue.empty():
                    for url, body in queue.get_nowait():
                        r = await client.post(url, content=body, headers=headers)
                        r.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def with_aiohttp() -> None:
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            async def worker() -> None:
                while not queue.empty():
                    for url, body in queue.get_nowait():
                        async with session.post(url, data=body, headers=headers, allow_redirects=False) as r:
                            await r.read()
                            r.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(with_httpx() if client == "httpx" else with_aiohttp())


# -- the state ------------------------------------------------------------------------------------

def make_bodies(n: int) -> list[tuple[str, bytes, str]]:
    """``n`` real notification bodies of 10 events each: (id, body, event ids as JSON)."""
    from poller.events.event import Event, EventIds
    from poller.events.notify import Envelope, build_notifications

    envelope = Envelope(INSTANCE, INSTANCE, "benchcrm", (), "contacts", "crm")
    ids = EventIds(INSTANCE, "contacts")
    now_ms = int(time.time() * 1000)
    events = []
    for i in range(n * envelope.batch_size):
        record = {"id": str(i), "name": f"Contact {i}", "email": f"contact{i}@example.com",
                  "updated": "2026-12-01T10:00:00.000Z", "created": "2026-11-01T10:00:00.000Z",
                  "address": {"street": f"{i} Main Street", "city": "Springfield", "zip": "12345"},
                  "tags": ["customer", "newsletter"], "notes": "x" * 60}
        events.append(Event(ids(str(i), "d:1"), str(i), "UPDATED", "d:1", now_ms, record))
    return [(b.id, b.body, json.dumps(list(b.event_ids))) for b in
            build_notifications(events, envelope, poll_ms=now_ms, created_ms=now_ms)]


def seed(db: Path, bodies: list[tuple[str, bytes, str]], resources: int, callback: str,
         instance: str = INSTANCE, prefix: str = "r") -> None:
    from state import open_store

    with open_store(db):
        pass
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO outbox (id, resource_key, instance_id, resource, callback_url, seq, created_ms, body,"
            " event_ids, status, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0)",
            ((f"{instance}-{nid}", f"{instance}/{prefix}{i % resources:05d}", instance, f"{prefix}{i % resources:05d}",
              callback, i, now_ms, body, event_ids) for i, (nid, body, event_ids) in enumerate(bodies)))
    conn.close()


def write_config(path: Path, instances: dict[str, str], resources: int) -> Path:
    """One instance per (id -> callback URL), each with ``resources`` resources (never polled: their
    provider is a closed port and the refresh interval a day)."""
    config = {
        "engine": {"logLevel": "WARNING"},
        "instances": [{
            "id": iid, "element": {"key": "benchcrm"}, "api": {"baseUrl": "http://127.0.0.1:9"},
            "configuration": {
                "event.notification.enabled": True, "event.notification.callback.url": url,
                "event.notification.signature.key": "bench-secret",
                "event.poller.refresh_interval": 1440,
                "event.poller.configuration": {f"r{i:05d}": {"url": f"/r{i}", "idField": "id"}
                                               for i in range(resources)},
            },
        } for iid, url in instances.items()],
    }
    path.write_text(json.dumps(config))
    return path


# -- runs -----------------------------------------------------------------------------------------

@dataclass
class Run:
    wall_s: float
    cpu_s: float
    code: int


def timed(cmd: list[str], cwd: Path) -> Run:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and proc.stderr is not None:
        print(proc.stderr.read().decode(errors="replace")[-2000:])
    return Run(wall, usage.ru_utime + usage.ru_stime, code)


def pending_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    finally:
        conn.close()


def compare(receiver: ReceiverProcess, work: Path, bodies: list[tuple[str, bytes, str]], resources: int,
            repeats: int) -> tuple[float, str, bool]:
    """poller deliver --all vs the bare loop on the same state; the best of ``repeats`` each."""
    from poller.config.types import EngineConfig

    per_endpoint = EngineConfig().delivery.concurrency_per_endpoint
    concurrency = min(per_endpoint, resources)
    callback = receiver.base + "/hook"
    polls, bares, aios, ok = [], [], [], True
    for k in range(repeats):
        run_dir = work / f"deliver-{resources}-{k}"
        run_dir.mkdir()
        db = run_dir / "poller.db"
        seed(db, bodies, resources, callback)
        config = write_config(run_dir / "config.json", {INSTANCE: callback}, resources)
        receiver.reset()
        r = timed([sys.executable, "-m", "poller", "deliver", "--all", "-c", str(config), "--state", str(db)], run_dir)
        left = pending_count(db)
        got = receiver.log()["counts"].get("/hook", 0)
        if r.code != 0 or left or got != len(bodies):
            print(f"    PROBLEM: poller deliver exit {r.code}, {left} left pending, {got} received of {len(bodies)}")
            ok = False
        polls.append(r)
        bare_db = run_dir / "bare.db"  # the same bodies, all pending again
        seed(bare_db, bodies, resources, callback)
        receiver.reset()
        b = timed([sys.executable, __file__, "--bare", str(bare_db), "--concurrency", str(concurrency)], run_dir)
        got = receiver.log()["counts"].get("/hook", 0)
        if b.code != 0 or got != len(bodies):
            print(f"    PROBLEM: bare loop exit {b.code}, {got} received of {len(bodies)}")
            ok = False
        bares.append(b)
        aio_db = run_dir / "bare-aiohttp.db"
        seed(aio_db, bodies, resources, callback)
        receiver.reset()
        a = timed([sys.executable, __file__, "--bare", str(aio_db), "--concurrency", str(concurrency),
                   "--client", "aiohttp"], run_dir)
        got = receiver.log()["counts"].get("/hook", 0)
        if a.code != 0 or got != len(bodies):
            print(f"    PROBLEM: bare aiohttp loop exit {a.code}, {got} received of {len(bodies)}")
            ok = False
        aios.append(a)
    p, b = min(polls, key=lambda r: r.wall_s), min(bares, key=lambda r: r.wall_s)
    a = min(aios, key=lambda r: r.wall_s)
    n = len(bodies)
    ratio = b.wall_s / p.wall_s
    print(f"  {resources:>5,} pending resources, {n:,} notifications, concurrency {concurrency}:")
    print(f"    poller deliver --all: {p.wall_s:6.2f} s wall ({n / p.wall_s:7.0f}/s), CPU {p.cpu_s:6.2f} s "
          f"({p.cpu_s / n * 1000:.2f} ms each)   [runs: {', '.join(f'{r.wall_s:.2f}' for r in polls)}]")
    print(f"    bare httpx POST loop: {b.wall_s:6.2f} s wall ({n / b.wall_s:7.0f}/s), CPU {b.cpu_s:6.2f} s "
          f"({b.cpu_s / n * 1000:.2f} ms each)   [runs: {', '.join(f'{r.wall_s:.2f}' for r in bares)}]")
    print(f"    bare aiohttp loop:    {a.wall_s:6.2f} s wall ({n / a.wall_s:7.0f}/s), CPU {a.cpu_s:6.2f} s "
          f"({a.cpu_s / n * 1000:.2f} ms each)   [runs: {', '.join(f'{r.wall_s:.2f}' for r in aios)}]")
    print(f"    ratio bare / poller: wall {ratio:.2f}, CPU {b.cpu_s / p.cpu_s:.2f}"
          f"   (bare aiohttp / poller, for information: wall {a.wall_s / p.wall_s:.2f}, CPU {a.cpu_s / p.cpu_s:.2f})")
    return ratio, f"{b.wall_s:.2f} s / {p.wall_s:.2f} s = {ratio:.2f} (CPU {b.cpu_s / p.cpu_s:.2f})", ok


def slow_endpoint(receiver: ReceiverProcess, work: Path, bodies: list[tuple[str, bytes, str]],
                  slow_s: float) -> tuple[float, str, bool]:
    """The daemon delivering to a fast and a slow endpoint at once, vs the fast one alone."""
    fast_url, slow_url = receiver.base + "/hook", receiver.base + "/slow"
    half = len(bodies) // 2
    rates = {}
    ok = True
    for label, with_slow in (("alone", False), ("beside a slow one", True)):
        run_dir = work / f"slow-{with_slow}"
        run_dir.mkdir()
        db = run_dir / "poller.db"
        instances = {"fast": fast_url, **({"slow": slow_url} if with_slow else {})}
        seed(db, bodies[:half], 100, fast_url, instance="fast")
        if with_slow:
            seed(db, bodies[half:], 100, slow_url, instance="slow")
        config = write_config(run_dir / "config.json", instances, 100)
        receiver.reset()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
        proc = subprocess.Popen([sys.executable, "-m", "poller", "run", "-c", str(config), "--state", str(db)],
                                cwd=run_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and receiver.log()["counts"].get("/hook", 0) < half:
            time.sleep(0.2)
        log = receiver.log()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        fast = sorted(t for t, p in log["arrivals"] if p == "/hook")
        slow = [t for t, p in log["arrivals"] if p == "/slow"]
        if len(fast) < half:
            print(f"    PROBLEM: the fast endpoint got {len(fast)} of {half} ({label})")
            ok = False
            rates[label] = 0.0
            continue
        span = fast[-1] - fast[0]
        rates[label] = (len(fast) - 1) / span if span > 0 else float("inf")
        print(f"  fast endpoint {label}: {len(fast):,} notifications in {span:.2f} s ({rates[label]:.0f}/s)"
              + (f"; the slow endpoint ({slow_s:g} s per answer) got {len(slow)} meanwhile" if with_slow else ""))
    ratio = rates["beside a slow one"] / rates["alone"] if rates["alone"] else 0.0
    return ratio, f"{rates['beside a slow one']:.0f}/s vs {rates['alone']:.0f}/s alone = {ratio:.2f}", ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("httpx", "aiohttp"), default="httpx", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1,000 notifications instead of 5,000")
    parser.add_argument("--notifications", type=int, help="notifications per run (default 5,000)")
    parser.add_argument("--resources", type=int, nargs="+", default=[1, 100, 1000],
                        help="pending resources (default: 1 100 1000)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side; the best counts (default 2)")
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-endpoint scenario")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.slow_seconds)
        return 0
    if args.bare:
        bare(args.bare, args.concurrency, args.client)
        return 0

    n = args.notifications or (1000 if args.quick else 5000)
    import platform

    print(f"deliver benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, {n:,} notifications "
          f"of 10 events per run")
    bodies = make_bodies(n)
    print(f"  bodies: {sum(len(b) for _, b, _ in bodies) / len(bodies):.0f} bytes on average")
    receiver = ReceiverProcess(args.slow_seconds)
    work = Path(tempfile.mkdtemp(prefix="poller-deliver-"))
    summary: list[tuple[str, bool, str]] = []
    failed = False
    try:
        for k in args.resources:
            ratio, detail, ok = compare(receiver, work, bodies, k, args.repeats)
            failed |= not ok
            summary.append((f"deliver --all, {k:,} pending resources: >= {TARGET_RATIO} x bare loop",
                            ratio >= TARGET_RATIO, detail))
        if not args.no_slow:
            ratio, detail, ok = slow_endpoint(receiver, work, bodies, args.slow_seconds)
            failed |= not ok
            summary.append((f"a slow endpoint never delays another (>= {TARGET_RATIO} of its rate alone)",
                            ratio >= TARGET_RATIO, detail))
    finally:
        receiver.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print("\nTargets:")
    for label, ok, detail in summary:
        print(f"  {'MET   ' if ok else 'MISSED'} {label:<66} {detail}")
    if failed:
        print("\nThe benchmark itself had problems (see PROBLEM lines): its numbers are not trustworthy.")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
