"""poller.daemon.dispatch: the hand-off of due resources to a fixed pool of workers, on an
injected monotonic clock (no test waits for a due time to come), and the slots it fills."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from poller.daemon.dispatch import BATCH, Dispatcher, Slots


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 30))


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_due_keys_run_in_due_order_and_future_ones_wait() -> None:
    async def main() -> list[str]:
        clock, done = Clock(), []

        async def poll(key: str, due: float) -> None:
            done.append(key)

        d = Dispatcher(poll, workers=1, clock=clock)
        d.plan_many([("c", 1000.0), ("a", 990.0), ("b", 995.0), ("later", 1100.0)])
        d.start()
        await settle()
        assert done == ["a", "b", "c"] and d.due("later") == 1100.0
        clock.now = 1100.0
        d.poke()
        await settle()
        await d.stop(1)
        return done

    assert run(main) == ["a", "b", "c", "later"]


def test_a_key_is_never_polled_twice_at_once_and_missed_runs_collapse() -> None:
    async def main() -> tuple[int, int]:
        clock = Clock()
        release = asyncio.Event()
        running, most, calls = 0, 0, 0

        async def poll(key: str, due: float) -> None:
            nonlocal running, most, calls
            calls += 1
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1

        d = Dispatcher(poll, workers=8, clock=clock)
        d.plan("k", 1000.0)
        d.start()
        await settle()
        for _ in range(5):  # planned again and again while it runs (and a long time passes)
            clock.now += 3600
            d.plan("k", clock.now - 1)
            d.poke()
            await settle()
        release.set()
        await settle()
        clock.now += 2  # the run planned while it was busy comes after it
        d.poke()
        await settle(200)
        await d.stop(1)
        return most, calls

    most, calls = run(main)
    assert most == 1  # never beside itself
    assert calls == 2  # the run under way, then one more: not one per missed run


def test_an_all_due_burst_never_holds_the_loop_and_waits_for_workers() -> None:
    async def main() -> tuple[int, int, int]:
        clock, n = Clock(), 20_000
        gate = asyncio.Event()
        started = 0

        async def poll(key: str, due: float) -> None:
            nonlocal started
            started += 1
            await gate.wait()

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        d = Dispatcher(poll, workers=16, clock=clock)
        d.plan_many((f"r{i}", 1000.0) for i in range(n))
        t = asyncio.create_task(ticker())
        d.start()
        await settle(200)
        waiting = d.overdue()  # 16 polling: the rest waits in the heap or ready, due (none queued ahead)
        gate.set()
        while started < n:
            await asyncio.sleep(0)
        t.cancel()
        await d.stop(1)
        return waiting, ticks, started

    waiting, ticks, started = run(main)
    assert waiting == 20_000 - 16
    assert started == 20_000
    assert ticks >= 20_000 // BATCH  # the loop ran other tasks all along the burst


def test_forget_and_plan_again() -> None:
    async def main() -> list[tuple[str, float]]:
        clock, done = Clock(), []

        async def poll(key: str, due: float) -> None:
            done.append((key, due))

        d = Dispatcher(poll, workers=2, clock=clock)
        d.plan_many([("gone", 990.0), ("moved", 990.0)])
        d.forget("gone")
        d.plan("moved", 2000.0)  # replaces its planned run
        d.plan("new", 995.0)
        d.start()
        await settle()
        assert len(d) == 1 and d.due("moved") == 2000.0
        await d.stop(1)
        return done

    assert run(main) == [("new", 995.0)]


@pytest.mark.parametrize("grouped", [False, True])
def test_stop_lets_running_polls_finish_and_starts_none_that_waited(grouped: bool) -> None:
    async def main() -> tuple[list[str], int]:
        clock, finished = Clock(), []

        async def poll(key: str, due: float) -> None:
            await asyncio.sleep(0.05)
            finished.append(key)

        d = Dispatcher(poll, workers=1, clock=clock, **({"group": hosts, "share": 4} if grouped else {}))
        d.plan_many([("first", 990.0), ("second", 995.0)])
        d.start()
        await settle()
        cancelled = await d.stop(5)
        await asyncio.sleep(0.1)
        return finished, cancelled

    assert run(main) == (["first"], 0)


def test_stop_cancels_what_outlives_the_timeout() -> None:
    async def main() -> tuple[int, bool]:
        clock = Clock()
        was_cancelled = False

        async def poll(key: str, due: float) -> None:
            nonlocal was_cancelled
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                was_cancelled = True
                raise

        d = Dispatcher(poll, workers=1, clock=clock)
        d.plan("stuck", 990.0)
        d.start()
        await settle()
        return await d.stop(0.05), was_cancelled

    assert run(main) == (1, True)


# -- slots -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("waiting", "expected"), [
    (4, ["sleeper starts", "other", "sleeper ends"]),  # a retry sleep lets go of the slot
    (0, ["sleeper starts", "sleeper ends", "other"]),  # no room to wait in: a sleeping poll keeps it
])
def test_a_retry_sleep_lets_go_of_the_slot_while_the_waiting_room_has_space(waiting: int,
                                                                              expected: list[str]) -> None:
    async def main() -> list[str]:
        slots, order = Slots(1, waiting=waiting), []

        async def sleeper() -> None:
            async with slots.ticket() as t:
                order.append("sleeper starts")
                await t.sleep(0.05)
                order.append("sleeper ends")

        async def other() -> None:
            await asyncio.sleep(0.01)
            async with slots.ticket():
                order.append("other")

        await asyncio.gather(sleeper(), other())
        return order

    assert run(main) == expected


def test_a_slow_request_lets_go_of_the_slot_and_a_quick_one_does_not() -> None:
    async def main() -> tuple[list[str], int]:
        slots, order = Slots(1, waiting=4, slow_after_s=0.02), []

        async def answer(delay: float, value: str) -> str:
            await asyncio.sleep(delay)
            return value

        async def slow() -> None:
            async with slots.ticket() as t:
                assert await t.wait(answer(0.2, "slow")) == "slow"
                order.append("slow answered")

        async def healthy() -> None:
            await asyncio.sleep(0.05)
            async with slots.ticket() as t:
                assert await t.wait(answer(0.0, "ok")) == "ok"
                order.append("healthy")

        await asyncio.gather(slow(), healthy())
        return order, slots.in_use

    assert run(main) == (["healthy", "slow answered"], 0)


def test_a_cancelled_wait_cancels_the_request_and_gives_the_slot_back() -> None:
    async def main() -> tuple[bool, int, int]:
        slots = Slots(1, waiting=4, slow_after_s=0.01)
        request_cancelled = False

        async def request() -> None:
            nonlocal request_cancelled
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                request_cancelled = True
                raise

        async def poll() -> None:
            async with slots.ticket() as t:
                await t.wait(request())

        task = asyncio.create_task(poll())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return request_cancelled, slots.in_use, slots.waiting

    assert run(main) == (True, 0, 0)


def test_a_slow_request_that_fails_takes_its_slot_again_before_the_poll_goes_on() -> None:
    """A poll whose slow request let go of the slot, then failed (a timeout, a 5xx), retries:
    it must hold a slot again meanwhile, or maxConcurrentPolls would be exceeded."""
    async def main() -> tuple[list[str], int, int]:
        slots, order = Slots(1, waiting=4, slow_after_s=0.02), []

        async def failing() -> None:
            await asyncio.sleep(0.1)
            raise OSError("reset by peer")

        async def slow() -> None:
            async with slots.ticket() as t:
                with pytest.raises(OSError):
                    await t.wait(failing())
                order.append("slow retries")
                await asyncio.sleep(0.05)

        async def other() -> None:
            await asyncio.sleep(0.05)  # takes the slot the slow one let go
            async with slots.ticket():
                order.append("other")
                await asyncio.sleep(0.1)
                order.append("other done")

        await asyncio.gather(slow(), other())
        return order, slots.in_use, slots.waiting

    assert run(main) == (["other", "other done", "slow retries"], 0, 0)


# -- groups: each provider host its share ----------------------------------------------------------

def hosts(key: str) -> str:
    return key.split("/", 1)[0]


def test_a_host_whose_polls_hang_leaves_workers_for_the_other_hosts() -> None:
    """60 resources of host "hole" hang; workers 20, share 8: "hole" has at most 8 out (4 once
    "ok" has some), and the healthy host's resource runs every time it is due."""
    async def main() -> tuple[int, int, int]:
        clock, hang = Clock(), asyncio.Event()
        out = most_out = healthy = 0

        async def poll(key: str, due: float) -> None:
            nonlocal out, most_out, healthy
            if key.startswith("hole/"):
                out += 1
                most_out = max(most_out, out)
                await hang.wait()
                out -= 1
            else:
                healthy += 1
                d.plan(key, clock.now + 3)

        d = Dispatcher(poll, workers=20, clock=clock, group=hosts, share=8)
        d.plan_many([*((f"hole/r{i}", 990.0 + i / 100) for i in range(60)), ("ok/r", 1000.0)])
        d.start()
        for _ in range(10):  # 30 s of the healthy resource's 3-s interval, the holes hanging all along
            await settle()
            clock.now += 3
            d.poke()
        await settle()
        held = most_out
        hang.set()
        await settle(500)
        await d.stop(1)
        return held, healthy, d.overdue()

    held, healthy, overdue = run(main)
    assert held == 8  # the hole host's share, never more
    assert healthy == 11  # at 1000, then every 3 s: none missed
    assert overdue == 0  # and once they answer, every hole resource set aside has had its turn


def test_what_waits_aside_keeps_its_due_order_and_is_polled_once() -> None:
    async def main() -> list[str]:
        clock, done = Clock(), []
        gate = asyncio.Event()

        async def poll(key: str, due: float) -> None:
            done.append(key)
            if key == "h/first":
                await gate.wait()

        d = Dispatcher(poll, workers=4, clock=clock, group=hosts, share=1)
        d.plan_many([("h/first", 990.0), ("h/c", 999.0), ("h/a", 995.0), ("h/b", 997.0), ("h/gone", 998.0)])
        d.start()
        await settle()
        assert done == ["h/first"] and d.overdue() == 4 and d.due("h/a") == 995.0
        assert d.longest_wait() == pytest.approx(5.0)  # h/a, due at 995, waits behind its host's one poll
        d.forget("h/gone")  # forgotten while aside: never polled
        d.plan("h/b", 2000.0)  # planned again while aside: at its new time, once
        gate.set()
        await settle(200)
        assert done == ["h/first", "h/a", "h/c"]
        clock.now = 2000.0
        d.poke()
        await settle(200)
        await d.stop(1)
        return done

    assert run(main) == ["h/first", "h/a", "h/c", "h/b"]


def test_without_groups_hanging_polls_fill_every_worker() -> None:
    """The same world as the first group test without groups: what the share prevents."""
    async def main() -> int:
        clock, hang, healthy = Clock(), asyncio.Event(), 0

        async def poll(key: str, due: float) -> None:
            nonlocal healthy
            if key.startswith("hole/"):
                await hang.wait()
            else:
                healthy += 1

        d = Dispatcher(poll, workers=20, clock=clock)
        d.plan_many([*((f"hole/r{i}", 990.0 + i / 100) for i in range(60)), ("ok/r", 1000.0)])
        d.start()
        await settle(200)
        ran = healthy
        hang.set()
        await d.stop(1)
        return ran

    assert run(main) == 0


def test_hosts_waiting_for_a_slot_take_turns() -> None:
    """Two slots, held by host "hole", whose 10 more polls wait for one; then a poll of host "ok"
    comes: it gets the second slot freed, not the twelfth (the hosts take turns)."""
    async def main() -> list[str]:
        slots, order = Slots(2, waiting=0), []
        release = asyncio.Event()

        async def hole(i: int) -> None:
            async with slots.ticket("hole"):
                order.append(f"hole{i}")
                await (release.wait() if i < 2 else asyncio.sleep(0))

        async def ok() -> None:
            async with slots.ticket("ok"):
                order.append("ok")

        tasks = [asyncio.create_task(hole(i)) for i in range(12)]
        await settle()
        tasks.append(asyncio.create_task(ok()))
        await settle()
        assert order == ["hole0", "hole1"] and slots.in_use == 2
        release.set()
        await asyncio.gather(*tasks)
        return order

    order = run(main)
    assert order[:4] == ["hole0", "hole1", "hole2", "ok"] and sorted(order) == sorted(
        [f"hole{i}" for i in range(12)] + ["ok"])
    assert order[4:] == [f"hole{i}" for i in range(3, 12)]  # each host's polls in the order they came


def test_polls_of_a_host_ending_together_keep_its_due_order() -> None:
    """(From a review: polls ending in one loop turn once sent the resources after them back and
    forth, out of their due order.)"""
    async def main() -> list[str]:
        clock, done, gate = Clock(), [], asyncio.Event()

        async def poll(key: str, due: float) -> None:
            done.append(key)
            if key in ("h/0", "h/1"):
                await gate.wait()

        d = Dispatcher(poll, workers=8, clock=clock, group=hosts, share=2)
        d.plan_many([(f"h/{i}", 900.0 + i) for i in range(10)])
        d.start()
        await settle()
        gate.set()  # both answer at once
        await settle(200)
        await d.stop(1)
        return done

    assert run(main) == [f"h/{i}" for i in range(10)]


def test_a_stop_leaves_no_poll_counted_out() -> None:
    async def main() -> tuple[dict[str, int], int]:
        hang = asyncio.Event()

        async def poll(key: str, due: float) -> None:
            await hang.wait()

        d = Dispatcher(poll, workers=2, clock=Clock(), group=hosts, share=100)
        d.plan_many([(f"h/{i}", 990.0 + i) for i in range(10)])
        d.start()
        await settle()
        await d.stop(0.01)
        return {g: e.out for g, e in d._groups.items() if e.out}, d._out

    assert run(main) == ({}, 0)


def test_a_key_planned_again_while_it_waits_for_a_worker_runs_once_at_its_new_time() -> None:
    """(A review found, in the dispatcher before groups, a key planned again while it sat in the
    workers' queue handed out a second time: two workers could poll it at once.)"""
    async def main() -> tuple[int, list[str]]:
        clock, gate = Clock(), asyncio.Event()
        running: dict[str, int] = {}
        most, calls = 0, []

        async def poll(key: str, due: float) -> None:
            nonlocal most
            calls.append(key)
            running[key] = running.get(key, 0) + 1
            most = max(most, running[key])
            await gate.wait()
            running[key] -= 1

        d = Dispatcher(poll, workers=2, clock=clock, group=hosts, share=4)
        d.plan_many([("a/1", 990.0), ("a/2", 991.0), ("a/3", 992.0)])  # a/3 waits: both workers busy
        d.start()
        await settle()
        d.plan("a/3", clock.now + 5)  # planned again (a reload) while it waits for a worker
        gate.set()
        await settle(200)
        assert calls == ["a/1", "a/2"]  # not at its old time
        clock.now += 5
        d.poke()
        await settle(200)
        await d.stop(1)
        return most, calls

    assert run(main) == (1, ["a/1", "a/2", "a/3"])


def test_a_poll_cancelled_while_it_waits_for_a_slot_leaves_no_trace() -> None:
    async def main() -> tuple[int, list[str]]:
        slots, order = Slots(1, waiting=0), []
        gate = asyncio.Event()

        async def holder() -> None:
            async with slots.ticket("a"):
                await gate.wait()

        async def waiter(name: str, group: str) -> None:
            async with slots.ticket(group):
                order.append(name)

        first = asyncio.create_task(holder())
        await settle()
        doomed = asyncio.create_task(waiter("doomed", "b"))
        await settle()
        doomed.cancel()
        await settle()
        gate.set()
        await first
        await waiter("after", "b")  # the cancelled waiter took nothing with it
        return slots.in_use, order

    assert run(main) == (0, ["after"])


def test_polls_that_return_at_once_never_hold_the_loop() -> None:
    """A poll that returns without waiting (the daemon's, once it is stopping or the resource is
    gone) freed its worker, which took the next resource in the same step: 88,000 due resources
    ran one after another in one step of one task, holding the loop 0.2 s at a stop
    (bench/fanout.py, 100,000 resources)."""
    async def main() -> tuple[int, int]:
        clock, n, ran, ticks = Clock(), 20_000, 0, 0
        gate = asyncio.Event()

        async def poll(key: str, due: float) -> None:
            nonlocal ran
            ran += 1
            if not gate.is_set():
                await gate.wait()  # the first ones wait, while everything else becomes ready

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        d = Dispatcher(poll, workers=64, clock=clock, group=hosts, share=64)
        d.plan_many((f"h/r{i}", 1000.0) for i in range(n))
        d.start()
        await settle(500)
        assert d.overdue() == n - 64  # all ready, none of them started
        t = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        gate.set()  # from now on every poll returns at once
        while ran < n:
            await asyncio.sleep(0)
        t.cancel()
        await d.stop(1)
        return ran, ticks

    ran, ticks = run(main)
    # the loop ran other tasks all along: a step runs about BATCH polls of all 64 workers together
    # (plus the one each worker was already running), where each counting its own ran 64 * BATCH
    assert ran == 20_000 and ticks >= 20_000 // (BATCH + 64)


def test_a_key_moved_to_another_group_with_the_same_due_leaves_the_old_group_whole() -> None:
    """(From a review: a stale entry of a key planned again, with the same due, into another
    group (its URL moved to another host) was taken for live by the old group, which then lost
    count of its own ready resources: a worker died of an empty deque and a resource was never
    polled again.)"""
    async def main() -> tuple[list[str], dict]:
        clock, ran, hold = Clock(), [], asyncio.Event()
        host = {"h": "H", "a1": "A", "a2": "A"}

        async def poll(key: str, due: float) -> None:
            ran.append(key)
            if key == "h":
                await hold.wait()

        d = Dispatcher(poll, workers=1, clock=clock, group=host.__getitem__, share=4)
        d.plan_many([("h", 990.0), ("a1", 995.0), ("a2", 996.0)])
        d.start()
        await settle()
        host["a1"] = "B"  # a reload moved its URL to another host
        d.plan("a1", 995.0)  # and planned it again, at the same time
        d.poke()
        await settle()
        hold.set()
        await settle(200)
        alive = [t for t in d._tasks if t.done()]
        await d.stop(1)
        return ran, {"dead": alive}

    ran, state = run(main)
    assert sorted(ran) == ["a1", "a2", "h"] and ran[0] == "h" and not state["dead"]


def test_a_poll_whose_own_await_is_cancelled_does_not_end_its_worker() -> None:
    """(From a review: a CancelledError of the poll's own, from a future someone else cancelled,
    was re-raised by the worker, which ended; the pool shrank for good.)"""
    async def main() -> list[str]:
        clock, ran = Clock(), []

        async def poll(key: str, due: float) -> None:
            ran.append(key)
            if key.startswith("h/bad"):
                future = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(future.cancel)
                await future  # raises CancelledError, though nobody cancelled the worker

        d = Dispatcher(poll, workers=1, clock=clock, group=hosts, share=1)
        d.plan_many([("h/bad1", 990.0), ("h/bad2", 991.0), ("h/ok", 992.0)])
        d.start()
        await settle(100)
        assert d.running and not any(t.done() for t in d._tasks)
        await d.stop(1)
        return ran

    assert run(main) == ["h/bad1", "h/bad2", "h/ok"]
