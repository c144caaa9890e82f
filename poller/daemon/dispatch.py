"""Handing due resources to a fixed pool of workers, on a monotonic clock.

    dispatcher = Dispatcher(poll_one, workers=slots.workers)    # poll_one(key, due) -> awaitable
    dispatcher.plan_many([(key, due_monotonic), ...])            # before it starts: one heapify
    dispatcher.start()
    dispatcher.plan(key, due)                                    # when a poll has finished
    await dispatcher.stop(timeout_s)                             # running polls finish or are cancelled

One heap of (due, key) and a bounded queue in front of the workers. A resource is in the heap,
in the queue or being polled, never twice: a poll cannot overlap itself, and missed runs collapse
into one (the caller plans the next run when a poll ends). When every worker is busy the
dispatcher waits, and what is due waits in the heap, oldest first: an all-due burst is worked
off at the pool's pace instead of becoming one task per resource. The loop is never held: the
dispatcher yields every :data:`BATCH` hand-offs.

Due times are ``time.monotonic()`` seconds: a wall clock that jumps (NTP, a suspended VM)
neither stalls the polls for the length of a backward jump nor fires them all after a forward one.

:class:`Slots` is what ``engine.maxConcurrentPolls`` bounds: polls making progress. A poll that
sleeps before a retry, or waits more than :data:`SLOW_AFTER_S` for a provider to answer, lets go
of its slot meanwhile (up to ``waiting`` polls at a time): a hanging or failing provider cannot
take the slots of the healthy ones.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

__all__ = ["BATCH", "SLOW_AFTER_S", "Dispatcher", "Slots", "Ticket"]

log = logging.getLogger(__name__)
T = TypeVar("T")
BATCH = 256  # hand-offs between two yields to the event loop
SLOW_AFTER_S = 1.0  # a request waited on this long lets go of its slot


class Slots:
    """``active`` slots for polls making progress, and room for ``waiting`` more that wait on a
    slow provider or before a retry. ``workers`` is how many polls may be under way in all."""

    def __init__(self, active: int, waiting: int, *, slow_after_s: float = SLOW_AFTER_S) -> None:
        self.active = max(1, active)
        self.waiting_cap = max(0, waiting)
        self.slow_after_s = slow_after_s
        self._sem = asyncio.Semaphore(self.active)
        self.waiting = 0

    @property
    def workers(self) -> int:
        return self.active + self.waiting_cap

    @property
    def in_use(self) -> int:
        """Slots held now (by polls making progress)."""
        return self.active - self._sem._value  # noqa: SLF001 - asyncio.Semaphore has no public count

    def ticket(self) -> Ticket:
        return Ticket(self)


class Ticket:
    """One poll's hold on a slot: ``async with ticket:`` takes it; :meth:`sleep` and :meth:`wait`
    are the poll's retry sleep and request wait (fetch's ``sleep`` and ``wait``)."""

    __slots__ = ("_slots", "_held")

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._held = False

    async def __aenter__(self) -> Ticket:
        await self._slots._sem.acquire()
        self._held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._give_back()

    def _give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots._sem.release()

    def _may_let_go(self) -> bool:
        return self._held and self._slots.waiting < self._slots.waiting_cap

    async def _take_again(self) -> None:
        self._slots.waiting -= 1
        await self._slots._sem.acquire()
        self._held = True

    async def sleep(self, seconds: float) -> None:
        if not self._may_let_go():
            await asyncio.sleep(seconds)
            return
        self._give_back()
        self._slots.waiting += 1
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            self._slots.waiting -= 1
            raise
        await self._take_again()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable``; if it takes more than slow_after_s, without holding the slot.

        Awaited in the poll's own task, with a timer that lets go of the slot: a task and an
        ``asyncio.wait`` per request were a tenth of a no-change poll's CPU."""
        let_go = False

        def slow() -> None:
            nonlocal let_go
            if self._may_let_go():
                self._give_back()
                self._slots.waiting += 1
                let_go = True

        timer = asyncio.get_running_loop().call_later(self._slots.slow_after_s, slow)
        try:
            result = await awaitable
        except asyncio.CancelledError:
            timer.cancel()
            if let_go:
                self._slots.waiting -= 1  # (cancelled: the poll ends, it takes no slot again)
            raise
        except BaseException:
            timer.cancel()
            if let_go:
                await self._take_again()  # the poll goes on (a retry, its error): with its slot
            raise
        timer.cancel()
        if let_go:
            await self._take_again()
        return result


class Dispatcher:
    """See the module docstring. ``run(key, due)`` polls one resource; it must not raise."""

    def __init__(self, run: Callable[[str, float], Awaitable[Any]], *, workers: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self._clock = clock
        self._workers_n = max(1, workers)
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # key -> its live entry in the heap (others are stale)
        self._tick = 0
        self._queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue(self._workers_n)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: dict[asyncio.Task[None], str] = {}  # worker -> the key it polls
        self._busy_keys: set[str] = set()  # the same keys, looked up for every hand-off
        self._idle = asyncio.Event()  # set whenever no poll is under way
        self._idle.set()
        self.dispatched = 0

    # -- the plan ---------------------------------------------------------------------------------

    def plan(self, key: str, due: float) -> None:
        """Poll ``key`` at monotonic time ``due`` (replacing its planned run, if any)."""
        self._due[key] = due
        self._tick += 1
        heapq.heappush(self._heap, (due, self._tick, key))
        if self._heap[0][2] == key:
            self._wake.set()
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def plan_many(self, items: Iterable[tuple[str, float]]) -> None:
        for key, due in items:
            self._due[key] = due
        self._compact()
        self._wake.set()

    def poke(self) -> None:
        """Look at the heap again now (the clock moved: tests, or a wall-clock jump's aftermath)."""
        self._wake.set()

    def forget(self, key: str) -> None:
        """Not polled any more (a run already handed to a worker still happens unless the worker
        finds it gone: the caller checks)."""
        self._due.pop(key, None)

    def due(self, key: str) -> float | None:
        return self._due.get(key)

    def polling(self) -> list[str]:
        """The keys being polled now."""
        return list(self._busy.values())

    def __len__(self) -> int:
        return len(self._due)

    def overdue(self, now: float | None = None) -> int:
        """How many planned runs are due and wait for a worker."""
        now = self._clock() if now is None else now
        return sum(1 for due in self._due.values() if due <= now)

    def _compact(self) -> None:
        """The heap rebuilt from the live entries only (one per key)."""
        self._heap = [(due, i, key) for i, (key, due) in enumerate(self._due.items())]
        self._tick = len(self._heap)
        heapq.heapify(self._heap)

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(), name=f"poll-worker-{i}") for i in range(self._workers_n)]
        self._tasks.append(asyncio.create_task(self._dispatch(), name="dispatcher"))

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._stopping and not self._tasks[-1].done()

    async def _dispatch(self) -> None:
        heap, due_of = self._heap, self._due
        handed = 0
        while not self._stopping:
            now = self._clock()
            heap = self._heap  # (compaction replaces the list)
            while heap and heap[0][0] <= now and not self._stopping:
                due, _, key = heapq.heappop(heap)
                if due_of.get(key) != due:
                    continue  # a stale entry: the key was planned again, or forgotten
                del due_of[key]
                if key in self._busy_keys:  # planned again while polled: after that poll, not beside it
                    self.plan(key, now + 1.0)
                    continue
                if self._queue.full():
                    await self._queue.put((key, due))  # every worker busy: wait for one
                    now = self._clock()
                else:
                    self._queue.put_nowait((key, due))
                self.dispatched += 1
                handed += 1
                if handed % BATCH == 0:
                    await asyncio.sleep(0)  # never hold the loop, whatever is due
                    now = self._clock()
                heap = self._heap
            self._wake.clear()
            wait = min(60.0, heap[0][0] - now) if heap else 60.0
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass

    async def _worker(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:  # (a poll cancelled at the stop may return instead of raising)
            key, due = await self._queue.get()
            if self._stopping:
                continue  # stopping: what waited for a worker does not start
            self._busy[task] = key
            self._busy_keys.add(key)
            self._idle.clear()
            try:
                await self._run(key, due)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop boundary: run() should not raise; if it does, the next poll goes on
                log.exception("poll.crashed", extra={"resource": key})
            finally:
                self._busy.pop(task, None)
                self._busy_keys.discard(key)
                if not self._busy:
                    self._idle.set()

    async def stop(self, timeout_s: float) -> int:
        """Start no more polls; let those under way finish within ``timeout_s``, then cancel the
        rest. Returns how many were cancelled."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        cancelled = len(self._busy)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        return cancelled
