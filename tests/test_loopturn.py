"""poller.loopturn.turn: a task that became ready during a part runs before the next part."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from poller.loopturn import turn


def parts_and_a_timer(pause: Callable[[], Awaitable[None]]) -> list[str]:
    async def main() -> list[str]:
        order: list[str] = []

        async def waiting() -> None:
            await asyncio.sleep(0.001)
            order.append("timer")

        task = asyncio.create_task(waiting())
        await asyncio.sleep(0)  # its timer is set
        time.sleep(0.01)  # a part that holds the loop past the timer (a page's part, say)
        order.append("part 1")
        await pause()
        order.append("part 2")
        await task
        return order

    return asyncio.run(main())


def test_a_task_whose_timer_fired_during_a_part_runs_before_the_next_part() -> None:
    assert parts_and_a_timer(turn) == ["part 1", "timer", "part 2"]


def test_one_or_two_sleep_0_would_not_let_it() -> None:  # why turn() is three of them
    async def twice() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    assert parts_and_a_timer(lambda: asyncio.sleep(0)) == ["part 1", "part 2", "timer"]
    assert parts_and_a_timer(twice) == ["part 1", "part 2", "timer"]
