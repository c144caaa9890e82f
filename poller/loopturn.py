"""Giving the event loop a turn between the parts of long work: a large page, a prune, a reload.

    for part in parts:
        handle(part)
        await turn()
"""

from __future__ import annotations

import asyncio

__all__ = ["turn"]


async def turn() -> None:
    """Let every task that became ready during the last part run before the next part.

    One ``asyncio.sleep(0)`` is not enough. A timer or socket that fired during the part is
    seen in the loop's next iteration, after our own wake-up, and its callback only sets a
    future; the task waiting on that future runs in the iteration after that. So the waiting
    task runs in the third iteration from now: with fewer, our next part comes first and the
    task waits two parts (bench/bigpage.py saw the loop held 130-150 ms by parts of 65 ms)."""
    for _ in range(3):
        await asyncio.sleep(0)
