"""Benchmark: the inbound webhook route (persist, then answer) against a bare aiohttp handler.

    .venv/bin/python bench/inbound.py              # about 1-1.5 minutes
    .venv/bin/python bench/inbound.py --quick      # a ~15-20 s smoke run
    .venv/bin/python bench/inbound.py --seconds 20 # longer measurements
    .venv/bin/python bench/inbound.py --profile    # + the poller server under cProfile (single events, batches)

Not a test: it asserts nothing about time and exits 0 whatever the numbers (1 only when the
benchmark itself could not run: an answer that is not 200 "accepted", a server that died, a state
file that does not hold what was acknowledged).

Set-up
------
* Each server runs in a process of its own (this file with ``--serve poller|bare``; it prints its
  port, bound at 0 on 127.0.0.1, and serves until SIGTERM), a fresh one for every measurement, so
  the client's CPU is not the server's and no measurement inherits another's state file.
* poller: what the daemon builds (poller.daemon.daemon): ``HttpServer(routes=InboundRoutes.add,
  name="webhooks")`` + ``InboundRoutes`` + ``Receiver`` + a real SQLite state file made by
  ``state.open_store`` in a temporary directory, the daemon's WAL checkpoints in a worker thread
  every second, ``Metrics.observe_inbound``, and logging at INFO (the daemon's default, one
  ``inbound.accepted`` line per request) into a file. Two instances: ``mc`` (Mailchimp) and ``cm``
  (Campaign Monitor, ``events.list.ids`` L1), with a fixed ``event.webhook.token``.
* bare: the same listener (``HttpServer``: aiohttp's AppRunner with the daemon's settings, its
  connection guard and middleware) on the same path, with a handler that reads the body and
  answers 200 "accepted" without touching a store. The difference is the inbound code itself.
* The load generator is this process: one ``aiohttp.ClientSession`` with keep-alive.
  Throughput: ``--concurrency`` (16) workers, each posting its next body as soon as the previous
  answer is in (closed loop), after a warm-up that is not counted. Latency: an open-loop sender
  starting a request every 1/``--rate`` s (200 /s) whatever the answers do; a request's latency
  is measured from the instant it was due, so a stalled server cannot hide its stall.
* Bodies: every one distinct, so nothing is a duplicate. Single events: tests/data/webhooks/
  mc_subscribe.form with its ``data[id]`` and ``data[email]`` made unique per request. Batches:
  Campaign Monitor JSON, ``{"ListID": "L1", "Events": [...]}`` of 1,000 Subscribe events, each
  with an address of its own. Dates (``fired_at``, ``Date``) are the time the body is made, as a
  provider's events are dated moments before it sends them.
* Checked: every answer is 200 with the body "accepted" (anything else is counted and the
  benchmark fails); after the poller server has stopped, its state file holds as many accepted
  requests and events as were acknowledged.

Targets (from the inbound webhook issue): single-event requests/s >= 0.25 x the bare handler's;
1,000-event batches >= 20 x the single-event rate in events/s; p99 acknowledgement latency at
200 requests/s <= 5 x the bare handler's p99. The machine may be shared: the two sides of each
ratio run one after the other in the same run, and each server's CPU use (share of one core
during the measurement) is printed beside its rate: a server below ~90 % was not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loopserve import ServerProcess  # noqa: E402
from stats import pct  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
MC_PATH = f"/webhooks/mc/{TOKEN}"
CM_PATH = f"/webhooks/cm/{TOKEN}"
FORM = "application/x-www-form-urlencoded"
MC_FORM = (ROOT / "tests" / "data" / "webhooks" / "mc_subscribe.form").read_text().strip()
BATCH_EVENTS = 1000
CONFIG = """{"instances": [
  {"id": "mc", "name": "Bench Mailchimp", "element": {"key": "mailchimp"}, "configuration": {
    "event.notification.enabled": true, "event.notification.callback.url": "http://127.0.0.1:9/cb",
    "event.webhook.token": "%(token)s"}},
  {"id": "cm", "name": "Bench Campaign Monitor", "element": {"key": "campaignmonitor"}, "configuration": {
    "event.notification.enabled": true, "event.notification.callback.url": "http://127.0.0.1:9/cb",
    "event.webhook.token": "%(token)s", "events.list.ids": "L1"}}
]}""" % {"token": TOKEN}

TARGET_SINGLE_RATIO = 0.25
TARGET_BATCH_FACTOR = 20.0
TARGET_P99_FACTOR = 5.0


# -- the servers (each in a process of its own) --------------------------------------------------

def serve(kind: str, state: Path | None, log_path: Path | None, profile_out: Path | None) -> None:
    """Print the port, serve until SIGTERM (or until the benchmark's process is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us with SIGTERM
    parent = os.getppid()
    profiler = None
    if profile_out is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    async def main() -> None:
        from contextlib import AsyncExitStack

        from poller.daemon.httpserver import HttpServer

        async with AsyncExitStack() as stack:
            if kind == "poller":
                server = await _poller_server(stack, state, log_path)  # type: ignore[arg-type]
            else:
                server = HttpServer(routes=_bare_routes, name="webhooks")
            await server.start("127.0.0.1", 0)
            stack.push_async_callback(server.close)
            print(server.port, flush=True)
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            while not stop.is_set() and os.getppid() == parent:  # orphaned (parent killed): stop too
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

    asyncio.run(main())
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile_out))


async def _poller_server(stack, state: Path, log_path: Path):  # -> HttpServer
    import logging
    import time as _time

    from poller.cli import logconfig
    from poller.config import load_config_text
    from poller.daemon.daemon import CHECKPOINT_EVERY_S
    from poller.daemon.httpserver import HttpServer
    from poller.daemon.metrics import Metrics
    from poller.inbound.receive import Receiver
    from poller.inbound.routes import InboundRoutes
    from poller.inbound.tokens import resolve_tokens
    from state import open_store

    logconfig.setup("text", "INFO")  # as `poller run` does by default; into a file, not our stderr
    log_file = stack.enter_context(open(log_path, "a", encoding="utf-8"))
    logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]

    config = load_config_text(CONFIG, "config.json", {}).config
    store = stack.enter_context(open_store(state))
    clock_ms = lambda: int(_time.time() * 1000)  # noqa: E731
    receiver = Receiver(store, config)
    tokens = resolve_tokens(store, config, clock_ms())
    metrics = Metrics()
    routes = InboundRoutes(lambda: receiver, lambda: tokens, lambda: config.engine.webhooks.max_body_bytes,
                           clock_ms, observe=metrics.observe_inbound)

    # the daemon's checkpoints (Daemon._checkpoint_loop): without them the writer's automatic
    # checkpoint would run inside a request's commit, which the daemon never does
    checkpointer = store.take_over_checkpoints()
    stop = asyncio.Event()

    async def checkpoints() -> None:
        while not stop.is_set():
            await asyncio.to_thread(checkpointer.run)
            try:
                await asyncio.wait_for(stop.wait(), CHECKPOINT_EVERY_S)
            except asyncio.TimeoutError:
                pass

    task = asyncio.create_task(checkpoints())

    async def stop_checkpoints() -> None:
        stop.set()
        await task
        checkpointer.close()

    stack.push_async_callback(stop_checkpoints)  # (runs after the server's close, before the store's)
    return HttpServer(routes=routes.add, name="webhooks")


def _bare_routes(app) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="accepted\n", content_type="text/plain", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    app.router.add_post("/webhooks/{instance}/{token}", handle)


class Server(ServerProcess):
    """``--serve KIND`` in a subprocess; ``cpu_s()`` reads its CPU time from /proc."""

    def __init__(self, kind: str, workdir: Path, name: str, profile: Path | None = None) -> None:
        self.kind = kind
        self.state = workdir / f"{name}.db" if kind == "poller" else None
        self.log = workdir / f"{name}.log" if kind == "poller" else None
        args = [__file__, "--serve", kind]
        if self.state is not None:
            args += ["--state", str(self.state), "--log", str(self.log)]
        if profile is not None:
            args += ["--profile-out", str(profile)]
        try:
            super().__init__(args)
        except ValueError:  # no port line: it died starting (its traceback is on our stderr)
            self.proc.kill()
            self.proc.wait()
            raise BenchError(f"the {kind} server did not start (exit {self.proc.returncode})") from None

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            super().stop()

    def log_bytes(self) -> int:
        return self.log.stat().st_size if self.log is not None and self.log.exists() else 0


class BenchError(Exception):
    pass


# -- bodies ---------------------------------------------------------------------------------------

class Bodies:
    """Distinct bodies: request ``n`` of this generator never repeats an id, an address or an event.
    Dates are the clock's (to the second) when the body is made, as a provider's are: the events
    a provider sends happened moments before, so later requests carry later dates."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.n = 0
        # the reference body with its id, address and date as holes (the id appears once, the
        # address twice, the date once)
        assert MC_FORM.count("8a25ff1d98") == 1 and MC_FORM.count("api%40mailchimp.com") == 2
        assert MC_FORM.count("2009-03-26+21%3A35%3A57") == 1
        self.form = MC_FORM.replace("{", "{{").replace("}", "}}").replace("8a25ff1d98", "{id}") \
                           .replace("api%40mailchimp.com", "{email}").replace("2009-03-26+21%3A35%3A57", "{date}")

    def single(self) -> bytes:
        self.n += 1
        uid = f"{self.tag}{self.n:09d}"
        date = time.strftime("%Y-%m-%d+%H%%3A%M%%3A%S", time.gmtime())
        return self.form.format(id=uid, email=f"{uid}%40example.com", date=date).encode()

    def batch(self) -> bytes:
        self.n += 1
        prefix = f"{self.tag}{self.n:07d}-"
        date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        events = ",".join(f'{{"Type":"Subscribe","EmailAddress":"{prefix}{k:04d}@example.com",'
                          f'"Date":"{date}"}}' for k in range(BATCH_EVENTS))
        return f'{{"ListID":"L1","Events":[{events}]}}'.encode()


@dataclass
class Scenario:
    name: str
    path: str
    content_type: str
    events_per_request: int
    make: str  # the Bodies method


SINGLE = Scenario("single", MC_PATH, FORM, 1, "single")
BATCH = Scenario("batch", CM_PATH, "application/json", BATCH_EVENTS, "batch")


# -- the load generator ---------------------------------------------------------------------------

@dataclass
class Run:
    server: str
    scenario: str
    requests: int = 0  # answered "accepted" inside the measured window
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds (latency runs)
    sent: int = 0  # every request, warm-up included
    accepted: int = 0  # every "accepted" answer, warm-up included
    bad: dict[str, int] = field(default_factory=dict)  # "status body" -> count
    events_per_request: int = 1

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    @property
    def events_rate(self) -> float:
        return self.rate * self.events_per_request

    @property
    def busy(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else float("nan")


async def _post(session, base: str, scenario: Scenario, body: bytes, run: Run) -> bool:
    import aiohttp

    run.sent += 1
    try:
        async with session.post(base + scenario.path, data=body,
                                headers={"Content-Type": scenario.content_type}) as response:
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        key = f"{type(exc).__name__}: {exc}"[:120]
        run.bad[key] = run.bad.get(key, 0) + 1
        return False
    if status == 200 and text == "accepted\n":
        run.accepted += 1
        return True
    key = f"{status} {text.strip()[:100]}"
    run.bad[key] = run.bad.get(key, 0) + 1
    return False


def _session(limit: int):
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def throughput(server: Server, scenario: Scenario, *, seconds: float, warmup_s: float,
                     concurrency: int) -> Run:
    """Closed loop: ``concurrency`` workers, each posting as soon as its previous answer is in."""
    run = Run(server.kind, scenario.name, events_per_request=scenario.events_per_request)
    bodies = Bodies(f"{scenario.name[0]}{server.kind[0]}")
    make = getattr(bodies, scenario.make)
    loop = asyncio.get_running_loop()
    measuring = False
    async with _session(concurrency) as session:
        async def worker(until: float) -> None:
            while loop.time() < until:
                ok = await _post(session, server.base, scenario, make(), run)
                if ok and measuring and loop.time() <= until:
                    run.requests += 1

        t = loop.time()
        await asyncio.gather(*(worker(t + warmup_s) for _ in range(concurrency)))
        measuring = True
        cpu0, client0, t0 = server.cpu_s(), time.process_time(), loop.time()
        await asyncio.gather(*(worker(t0 + seconds) for _ in range(concurrency)))
        # (the window ends at t0 + seconds: answers that came later are not counted)
        run.seconds = seconds
        run.server_cpu_s = server.cpu_s() - cpu0
        run.client_cpu_s = time.process_time() - client0
    return run


async def latency(server: Server, *, rate: float, seconds: float, warmup_s: float) -> Run:
    """Open loop: request k is due at t0 + k / rate and sent then, whatever the answers do;
    its latency runs from that instant to the end of its answer."""
    scenario = SINGLE
    run = Run(server.kind, "latency")
    bodies = Bodies(f"l{server.kind[0]}")
    loop = asyncio.get_running_loop()
    async with _session(256) as session:
        async def one(due: float, measured: bool) -> None:
            ok = await _post(session, server.base, scenario, bodies.single(), run)
            if ok and measured:
                run.requests += 1
                run.latencies.append(loop.time() - due)

        async def paced(duration: float, measured: bool) -> None:
            tasks = []
            t0 = loop.time()
            for k in range(int(duration * rate)):
                due = t0 + k / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(due, measured)))
            await asyncio.gather(*tasks)

        await paced(warmup_s, False)  # (opens the connections the steady rate needs)
        cpu0, client0, t0 = server.cpu_s(), time.process_time(), loop.time()
        await paced(seconds, True)
        run.seconds = loop.time() - t0
        run.server_cpu_s = server.cpu_s() - cpu0
        run.client_cpu_s = time.process_time() - client0
    return run


# -- checks ---------------------------------------------------------------------------------------

def check_state(server: Server, run: Run) -> list[str]:
    """After the poller server has stopped: its state file holds what it acknowledged."""
    assert server.state is not None
    conn = sqlite3.connect(f"{server.state.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = {outcome: (n, events) for outcome, n, events in
                conn.execute("SELECT outcome, count(*), sum(events) FROM inbound_requests GROUP BY outcome")}
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()
    accepted, events = rows.pop("accepted", (0, 0))
    problems = []
    if accepted != run.accepted or events != run.accepted * run.events_per_request:
        problems.append(f"{run.scenario}: {run.accepted:,} requests acknowledged with "
                        f"{run.accepted * run.events_per_request:,} events, the state file holds "
                        f"{accepted:,} accepted requests with {events or 0:,} events")
    if rows:
        problems.append(f"{run.scenario}: the state file holds other outcomes: {rows}")
    if accepted and not outbox:
        problems.append(f"{run.scenario}: no notification in the outbox")
    return problems


# -- report ---------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_profile(path: Path, title: str, limit: int = 22) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    total = sum(tt for _, _, tt, _, _ in stats.stats.values())  # type: ignore[attr-defined]
    areas: dict[str, float] = {}
    for (filename, _, func), (_, _, tt, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename} {func}"
        area = next((name for name, needles in AREAS if any(n in where for n in needles)), "other")
        areas[area] = areas.get(area, 0.0) + tt
    print(f"\n  cProfile of the poller server, {title} ({path.name}): {total:.2f} s of self time")
    print("  self time by area (file of the function; built-ins by their name):")
    for name, tt in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"    {tt / total:6.1%}  {name}")
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit + 8)


AREAS = (  # first match wins
    ("the event loop waiting (epoll)", ("method 'poll' of 'select.epoll'",)),
    ("SQLite (state/, sqlite3, sqlite_utils)", ("/state/", "sqlite_utils", "sqlite3")),
    ("logging", ("/logging/", "logconfig.py")),
    ("poller.inbound (routes, receive, normalise, pushed)", ("poller/inbound/",)),
    ("poller.events (notification bodies, ids)", ("poller/events/",)),
    ("poller, other", ("poller/",)),
    ("JSON (json, orjson)", ("json", "orjson")),
    ("hashing", ("hashlib", "_hashlib", "sha1", "sha256", "uuid")),
    ("aiohttp, multidict, yarl", ("aiohttp/", "multidict", "yarl", "propcache")),
    ("asyncio, sockets", ("asyncio/", "selectors.py", "socket", "method 'send'", "method 'recv'")),
)


def ratio_line(label: str, bare: float, poller: float, fmt: str = "{:10.1f}") -> str:
    return f"  {label:<42}{fmt.format(bare):>12}{fmt.format(poller):>12}{poller / bare:>10.2f}"


def report(runs: dict[tuple[str, str], Run], rate: float) -> list[tuple[str, bool, str]]:
    def r(server: str, scenario: str) -> Run:
        return runs[(server, scenario)]

    print(f"\n  {'':<42}{'bare':>12}{'poller':>12}{'poller/bare':>10}")
    sb, sp = r("bare", "single"), r("poller", "single")
    bb, bp = r("bare", "batch"), r("poller", "batch")
    lb, lp = r("bare", "latency"), r("poller", "latency")
    print(ratio_line("single event: requests/s", sb.rate, sp.rate))
    print(ratio_line("  server CPU (share of one core)", sb.busy * 100, sp.busy * 100, "{:9.0f} %"))
    print(ratio_line("  server CPU per request (ms)", sb.server_cpu_s / sb.requests * 1000,
                     sp.server_cpu_s / sp.requests * 1000, "{:10.3f}"))
    print(ratio_line("  client CPU (share of one core)", sb.client_cpu_s / sb.seconds * 100,
                     sp.client_cpu_s / sp.seconds * 100, "{:9.0f} %"))
    print(ratio_line(f"{BATCH_EVENTS:,}-event batch: requests/s", bb.rate, bp.rate, "{:10.2f}"))
    print(ratio_line("  events/s", bb.events_rate, bp.events_rate, "{:10.0f}"))
    print(ratio_line("  server CPU (share of one core)", bb.busy * 100, bp.busy * 100, "{:9.0f} %"))
    print(ratio_line("  server CPU per event (ms)", bb.server_cpu_s / max(1, bb.requests * BATCH_EVENTS) * 1000,
                     bp.server_cpu_s / max(1, bp.requests * BATCH_EVENTS) * 1000, "{:10.4f}"))
    print(ratio_line(f"ack latency at {rate:g} req/s: p50 (ms)", pct(lb.latencies, 0.5) * 1000,
                     pct(lp.latencies, 0.5) * 1000, "{:10.2f}"))
    print(ratio_line("  p99 (ms)", pct(lb.latencies, 0.99) * 1000, pct(lp.latencies, 0.99) * 1000, "{:10.2f}"))
    print(ratio_line("  max (ms)", max(lb.latencies, default=float("nan")) * 1000,
                     max(lp.latencies, default=float("nan")) * 1000, "{:10.2f}"))
    print(ratio_line("  achieved rate (req/s)", lb.requests / lb.seconds, lp.requests / lp.seconds))
    print(ratio_line("  server CPU (share of one core)", lb.busy * 100, lp.busy * 100, "{:9.0f} %"))
    print(f"\n  batch events/s / single-event events/s (poller): {bp.events_rate:.0f} / {sp.events_rate:.1f}"
          f" = {bp.events_rate / sp.events_rate:.1f}x (bare: {bb.events_rate / sb.events_rate:.1f}x)")

    single = sp.rate / sb.rate
    factor = bp.events_rate / sp.events_rate
    p99_b, p99_p = pct(lb.latencies, 0.99), pct(lp.latencies, 0.99)
    return [
        (f"single-event requests/s >= {TARGET_SINGLE_RATIO} x bare handler", single >= TARGET_SINGLE_RATIO,
         f"{sp.rate:.1f} / {sb.rate:.1f} = {single:.2f}"),
        (f"{BATCH_EVENTS:,}-event batches >= {TARGET_BATCH_FACTOR:g} x single-event events/s",
         factor >= TARGET_BATCH_FACTOR, f"{bp.events_rate:.0f} / {sp.events_rate:.1f} = {factor:.1f}x"),
        (f"p99 ack latency at {rate:g} req/s <= {TARGET_P99_FACTOR:g} x bare p99",
         p99_p <= TARGET_P99_FACTOR * p99_b,
         f"{p99_p * 1000:.2f} ms / {p99_b * 1000:.2f} ms = {p99_p / p99_b:.2f}x"),
    ]


# -- main -----------------------------------------------------------------------------------------

async def measure(kind: str, what: str, workdir: Path, args: argparse.Namespace,
                  profile: Path | None = None) -> tuple[Run, list[str]]:
    """One fresh server of ``kind``, one measurement, then the server stopped (and its state checked)."""
    name = f"{kind}-{what}" + ("-profile" if profile is not None else "")
    server = Server(kind, workdir, name, profile)
    SERVERS.append(server)
    try:
        if what == "latency":
            run = await latency(server, rate=args.rate, seconds=args.seconds, warmup_s=args.warmup)
        else:
            run = await throughput(server, SINGLE if what == "single" else BATCH, seconds=args.seconds,
                                   warmup_s=args.warmup, concurrency=args.concurrency)
        died = not server.alive()
    finally:
        server.stop()
    problems = []
    if died or server.proc.returncode != 0:
        problems.append(f"{name}: the server {'died' if died else 'exited with ' + str(server.proc.returncode)}")
    if run.bad:
        problems.append(f"{name}: {sum(run.bad.values()):,} of {run.sent:,} answers not 200 \"accepted\": "
                        + "; ".join(f"{k!r} x{v}" for k, v in sorted(run.bad.items(), key=lambda kv: -kv[1])[:5]))
    if not run.requests:
        problems.append(f"{name}: no request answered in the measured window")
    if kind == "poller" and not problems:
        problems += check_state(server, run)
    extra = ""
    if kind == "poller":
        extra = f", log {server.log_bytes() / max(1, run.sent):.0f} bytes/request"
    lat = (f", p50 {pct(run.latencies, 0.5) * 1000:.2f} ms p99 {pct(run.latencies, 0.99) * 1000:.2f} ms"
           if run.latencies else "")
    print(f"  {name:<22} {run.rate:9.1f} req/s ({run.requests:,} in {run.seconds:.1f} s), server CPU "
          f"{run.busy:4.0%}{lat}{extra}" + ("" if not problems else "  PROBLEM"), flush=True)
    for p in problems:
        print(f"    PROBLEM: {p}")
    return run, problems


SERVERS: list[Server] = []


async def bench(args: argparse.Namespace, workdir: Path) -> int:
    runs: dict[tuple[str, str], Run] = {}
    problems: list[str] = []
    for what in ("single", "batch", "latency"):  # the two sides of each ratio one after the other
        for kind in ("bare", "poller"):
            run, found = await measure(kind, what, workdir, args)
            runs[(kind, what)] = run
            problems += found
    summary = report(runs, args.rate)
    if args.profile:
        for what in ("single", "batch"):
            path = workdir / f"poller-{what}.prof"
            _, found = await measure("poller", what, workdir, args, profile=path)
            problems += found
            if path.exists():
                print_profile(path, f"{what} throughput at concurrency {args.concurrency}")
    print("\nTargets:")
    for label, ok, detail in summary:
        print(f"  {verdict(ok)}  {label:<58} {detail}")
    if problems:
        print("\nThe benchmark itself had problems (see PROBLEM lines): its numbers are not trustworthy.")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=("poller", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1.5 s per measurement")
    parser.add_argument("--seconds", type=float, help="seconds per measurement (default 8; --quick 1.5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each, not counted "
                                                     "(default 1; --quick 0.4)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight in the throughput runs")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the latency run")
    parser.add_argument("--profile", action="store_true",
                        help="then one more poller run of single events and of batches under cProfile")
    parser.add_argument("--dir", type=Path, help="where the state files go (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (states, logs, profiles)")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.state, args.log, args.profile_out)
        return 0
    args.seconds = args.seconds or (1.5 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.4 if args.quick else 1.0)
    import platform

    import aiohttp

    workdir = Path(tempfile.mkdtemp(prefix="poller-inbound-", dir=args.dir))
    print(f"inbound benchmark: Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
          f"{os.cpu_count()} CPUs, {args.seconds:g} s per measurement (+{args.warmup:g} s warm-up), "
          f"concurrency {args.concurrency}, latency at {args.rate:g} req/s, state files in {workdir}")
    code = 1
    try:
        code = asyncio.run(bench(args, workdir))
    except BenchError as exc:
        print(f"\nPROBLEM: {exc}")
    except KeyboardInterrupt:
        print("\ninterrupted")
        code = 130
    finally:
        for server in SERVERS:
            server.stop()
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
