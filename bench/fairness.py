"""Benchmark: fairness of `poller run` when providers misbehave (the scale issue's two rows).

    .venv/bin/python bench/fairness.py                  # both parts: about 1 + 20 minutes
    .venv/bin/python bench/fairness.py --part holes     # 100 black holes beside 1 healthy resource
    .venv/bin/python bench/fairness.py --part refused --minutes 20

Not a test: it asserts nothing about time and exits 0 whatever the numbers (1 only when the
benchmark itself could not run).

Part "holes": 100 resources whose provider accepts connections and never answers (a socket
that reads and stays silent), and 1 resource of a healthy provider answering ``[]`` at once,
all every 3 s (``refresh_interval`` 0.05), ``maxConcurrentPolls`` 16, ``api.timeoutSeconds``
30: the holes alone could hold every slot. The healthy provider logs each request's arrival;
target: the healthy resource gets >= 90 % of the polls its interval asks for over the run.

Part "refused": 10,000 resources (10 instances) whose port refuses connections, every minute.
Each failed poll backs off (1, 2, 4, then 8 intervals): after about 12 minutes every resource
is polled once per 8 minutes. The daemon's CPU time is read from /proc every minute; over the
last 8 minutes (one whole backoff cycle) it must stay <= 10 % of one core, and the log must
hold at most one WARNING per failed poll (``poll.failed``: one per resource per backoff step).

Both run ``poller run`` as a subprocess (logs at INFO into a file), with fresh state files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from loopserve import ServerProcess, serve_forever  # noqa: E402

HOLES, HOLE_INTERVAL_MIN, HOLES_RUN_S, HOLES_TARGET = 100, 0.05, 60.0, 0.9
REFUSED, REFUSED_INSTANCES, CPU_TARGET = 10_000, 10, 0.10
BACKOFF_CYCLE_MIN = 8  # poller.daemon.schedule.MAX_BACKOFF_INTERVALS at a 1-minute interval


# -- the providers (processes of their own) ---------------------------------------------------------

def serve(kind: str) -> None:
    arrivals: list[float] = []

    class Hole(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # kept open, never answered

        def data_received(self, data: bytes) -> None:
            pass

    class Healthy(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
                target = head.split(b"\r\n", 1)[0].split(b" ")[1]
                if target == b"/__log":
                    body = json.dumps(arrivals).encode()
                else:
                    arrivals.append(time.time())
                    body = b"[]"
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "  # type: ignore[attr-defined]
                                     + str(len(body)).encode() + b"\r\n\r\n" + body)

    serve_forever(Hole if kind == "hole" else Healthy)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # (closed again: connections to it are refused)


def instance(iid: str, base_url: str, resources: int, interval_min: float) -> dict:
    return {"id": iid, "element": {"key": "bench"}, "api": {"baseUrl": base_url},
            "configuration": {"event.notification.enabled": True,
                              "event.notification.callback.url": "http://127.0.0.1:9/hook",
                              "event.poller.refresh_interval": interval_min,
                              "event.poller.configuration": {f"r{i:05d}": {"url": f"/r{i}", "idField": "id"}
                                                             for i in range(resources)}}}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_daemon(work: Path, config: dict) -> tuple[subprocess.Popen, Path]:
    path = work / "config.json"
    path.write_text(json.dumps(config))
    log = work / "daemon.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "poller", "run", "-c", str(path), "--state",
                                 str(work / "poller.db")], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def stop_daemon(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def verdict(ok: bool) -> str:
    return "MET   " if ok else "MISSED"


# -- the parts ----------------------------------------------------------------------------------------

def holes(work: Path, run_s: float, count: int = HOLES) -> tuple[bool, str, bool]:
    hole, healthy = ServerProcess([__file__, "--serve", "hole"]), ServerProcess([__file__, "--serve", "healthy"])
    try:
        config = {"engine": {"maxConcurrentPolls": 16},
                  "instances": [instance("holes", hole.base, count, HOLE_INTERVAL_MIN),
                                instance("healthy", healthy.base, 1, HOLE_INTERVAL_MIN)]}
        config["instances"][0]["api"]["timeoutSeconds"] = 30
        proc, log = start_daemon(work, config)
        started = time.time()
        time.sleep(run_s)
        code = stop_daemon(proc)
        arrivals = [t for t in json.loads(healthy.get("/__log")) if t <= started + run_s]
    finally:
        hole.stop()
        healthy.stop()
    asked = run_s / (HOLE_INTERVAL_MIN * 60)
    share = len(arrivals) / asked
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    summaries = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if "daemon.summary" in line]
    print(f"  {count} black holes + 1 healthy resource, every {HOLE_INTERVAL_MIN * 60:g} s, {run_s:g} s: the healthy "
          f"one polled {len(arrivals)} times of {asked:g} asked ({share:.0%}); first after "
          f"{(arrivals[0] - started) if arrivals else float('nan'):.1f} s, longest gap "
          f"{max(gaps) if gaps else float('nan'):.1f} s; daemon exit {code}")
    for line in summaries:
        print("    " + line)
    ok = share >= HOLES_TARGET
    return ok, f"{len(arrivals)} of {asked:g} polls = {share:.0%}", code == 0


def refused(work: Path, minutes: float) -> tuple[bool, str, bool]:
    port = closed_port()
    per = REFUSED // REFUSED_INSTANCES
    config = {"engine": {},
              "instances": [instance(f"i{k}", f"http://127.0.0.1:{port}", per, 1) for k in range(REFUSED_INSTANCES)]}
    proc, log = start_daemon(work, config)
    samples: list[tuple[float, float]] = []
    t0 = time.time()
    try:
        while time.time() - t0 < minutes * 60 and proc.poll() is None:
            samples.append((time.time() - t0, cpu_s(proc.pid)))
            time.sleep(min(60.0, max(0.0, minutes * 60 - (time.time() - t0))))
        samples.append((time.time() - t0, cpu_s(proc.pid)))
    finally:
        code = stop_daemon(proc)
    print(f"  {REFUSED:,} resources on a refused port, every minute, {minutes:g} minutes: the daemon's CPU by minute "
          "(share of one core):")
    print("    " + " ".join(f"{(c1 - c0) / (t1 - t0_):.0%}" for (t0_, c0), (t1, c1) in zip(samples, samples[1:])))
    window = [s for s in samples if s[0] >= samples[-1][0] - BACKOFF_CYCLE_MIN * 60 - 1]
    share = (window[-1][1] - window[0][1]) / max(1e-9, window[-1][0] - window[0][0])
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    warnings = Counter(line.split()[2] for line in lines if " WARNING " in line and len(line.split()) > 2)
    failed = warnings.get("poll.failed", 0)
    others = sum(v for k, v in warnings.items() if k != "poll.failed")
    print(f"    over the last {(window[-1][0] - window[0][0]) / 60:.1f} minutes: {share:.1%} of one core; "
          f"log: {failed:,} poll.failed, {others:,} other WARNING lines {dict(warnings.most_common(4))}; "
          f"daemon exit {code}")
    ok = share <= CPU_TARGET and others == 0
    return ok, f"{share:.1%} of one core over the last backoff cycle; {others} WARNING lines besides poll.failed", \
        code == 0 and minutes >= 2 * BACKOFF_CYCLE_MIN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=("hole", "healthy"), help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=("holes", "refused", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=HOLES_RUN_S, help="length of the holes part")
    parser.add_argument("--holes", type=int, default=HOLES, help="how many black holes (default 100)")
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the refused part (>= 16)")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    print(f"fairness benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    results, sound = [], True
    for name, run in (("holes", lambda w: holes(w, args.seconds, args.holes)), ("refused", lambda w: refused(w, args.minutes))):
        if args.part in (name, "both"):
            ok, detail, fine = run(Path(tempfile.mkdtemp(prefix=f"poller-fairness-{name}-")))
            label = (f"a healthy resource beside {args.holes} black holes: >= 90 % of its polls" if name == "holes" else
                     "10,000 refused: <= 10 % of a core backed off, one warning per failed poll")
            results.append((label, ok, detail))
            sound = sound and fine
    print("\nTargets:")
    for label, ok, detail in results:
        print(f"  {verdict(ok)} {label:<72} {detail}")
    if not sound:
        print("\nThe benchmark itself had problems (a daemon that did not exit 0, or a refused run shorter than "
              "two backoff cycles): its numbers are not trustworthy.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
