"""`poller run` with a 10 ms ticker on its event loop: how long the loop is ever kept from running.

    python bench/lagged_daemon.py run -c CONFIG --state DB     # as `python -m poller run ...`

Benchmark-only (bench/fanout.py starts the daemon through it). The ticker sleeps 10 ms at a time
and records how late each wake-up came; when the daemon returns, the maximum and the 99th
percentile of those lags, and the number of ticks, are written as one JSON line to the file named
by ``BENCH_LAG_FILE``. The ticker's own cost (100 wake-ups a second) is part of what is measured.
``BENCH_SLOW_CALLBACK=0.1`` also turns on asyncio's debug mode, which logs every callback that
ran longer than that, with its source line (to find what blocks; debug mode slows the loop).
``BENCH_STALL_FILE=PATH`` samples, from a thread, where the main thread is while the loop is
late by more than 80 ms, and appends each such stall to PATH (what blocks, without debug mode),
and each garbage collection longer than 20 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TICK_S = 0.010
STALL_S = 0.080  # BENCH_STALL_FILE: the main thread's stack is sampled while the loop is this late


def _stall_sampler(beat: list[float], path: str) -> None:
    """A thread: while the ticker's last beat is over STALL_S old, the main thread's innermost
    frames (of poller and state; with ``BENCH_STALL_FRAMES=all``, of anything) are counted, every 5 ms; each stall is written as one block
    (longest first is for the reader to sort). It sees Python frames and C calls that release
    the GIL (SQLite does); a C call holding the GIL shows as the frame that made it."""
    import threading
    import traceback
    from collections import Counter

    main_id = threading.main_thread().ident
    everything = os.environ.get("BENCH_STALL_FRAMES") == "all"  # libraries' frames too
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
    current: Counter[str] | None = None
    started = 0.0

    def flush() -> None:
        if current:
            out.write(f"stall {1000 * (time.perf_counter() - started):.0f} ms\n")
            for where, n in current.most_common(5):
                out.write(f"  {5 * n:5d} ms  {where}\n")
            out.flush()

    while True:
        time.sleep(0.005)
        if time.perf_counter() - beat[0] > STALL_S:
            frame = sys._current_frames().get(main_id)  # noqa: SLF001
            stack = [f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.name}"
                     for f in traceback.extract_stack(frame) if everything
                     or "/poller/" in f.filename or "/state/" in f.filename][-5:]
            if current is None:
                current, started = Counter(), beat[0]
            current[" < ".join(reversed(stack))] += 1
        elif current is not None:
            flush()
            current = None


def _time_collections(path: str) -> None:
    """BENCH_STALL_FILE: also each garbage collection that took longer than 20 ms (the sampler
    shows a collection as whatever frame allocated when it began)."""
    import gc

    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
    began = [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif (took := time.perf_counter() - began[0]) > 0.020:
            out.write(f"gc generation {info['generation']}: {1000 * took:.0f} ms, {info['collected']} collected, "
                      f"{len(gc.get_objects(info['generation']))} objects in that generation after\n")
            out.flush()

    gc.callbacks.append(timed)


async def _ticker(lags: list[float], beat: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        beat[0] = time.perf_counter()
        lags.append(max(0.0, loop.time() - planned))


def main() -> int:
    sys.argv = ["poller", *sys.argv[1:]]  # poller.cli installs its early signal handlers for "run"
    import poller.cli
    from poller.daemon.daemon import Daemon

    lags: list[float] = []
    original = Daemon.run

    async def run(self: Daemon) -> int:
        slow = os.environ.get("BENCH_SLOW_CALLBACK")
        if slow:  # asyncio's debug mode names each callback slower than this (and slows everything)
            import logging

            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = float(slow)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s SLOW %(message)s"))
            logging.getLogger("asyncio").addHandler(handler)
        beat = [time.perf_counter()]
        if os.environ.get("BENCH_STALL_FILE"):
            import threading

            threading.Thread(target=_stall_sampler, args=(beat, os.environ["BENCH_STALL_FILE"]), daemon=True).start()
            _time_collections(os.environ["BENCH_STALL_FILE"])
        ticker = asyncio.create_task(_ticker(lags, beat))
        try:
            return await original(self)
        finally:
            ticker.cancel()
            ordered = sorted(lags) or [0.0]
            report = {"ticks": len(lags), "max_s": ordered[-1],
                      "p99_s": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
                      "over_100ms": sum(1 for v in lags if v > 0.1), "at": time.time()}
            target = os.environ.get("BENCH_LAG_FILE")
            if target:
                Path(target).write_text(json.dumps(report) + "\n", encoding="utf-8")

    Daemon.run = run  # type: ignore[method-assign]
    return poller.cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
