"""`poller run` with a 10 ms ticker on its event loop: how long the loop is ever kept from running.

    python bench/lagged_daemon.py run -c CONFIG --state DB     # as `python -m poller run ...`

Benchmark-only (bench/fanout.py starts the daemon through it). The ticker sleeps 10 ms at a time
and records how late each wake-up came; when the daemon returns, the maximum and the 99th
percentile of those lags, and the number of ticks, are written as one JSON line to the file named
by ``BENCH_LAG_FILE``. The ticker's own cost (100 wake-ups a second) is part of what is measured.
``BENCH_SLOW_CALLBACK=0.1`` also turns on asyncio's debug mode, which logs every callback that
ran longer than that, with its source line (to find what blocks; debug mode slows the loop).
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


async def _ticker(lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
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
        ticker = asyncio.create_task(_ticker(lags))
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
