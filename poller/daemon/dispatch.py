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

Groups (``group=``: a resource's provider host) share the pool: with ``share`` given, the polls
of one group under way or handed out (``share`` divided by the groups that have some) are
bounded, and a due resource of a group at its bound waits aside, in due order, until one of the
group's polls ends. With ``share`` no larger than the waiting room, however many resources of
one host hang, they can all let go of their slots, and the workers they leave free serve the
other hosts: 300 providers that never answer no longer starve a healthy one (bench/fairness.py).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

__all__ = ["BATCH", "SLOW_AFTER_S", "Dispatcher", "Slots", "Ticket"]

log = logging.getLogger(__name__)
T = TypeVar("T")
BATCH = 256  # hand-offs between two yields to the event loop
SLOW_AFTER_S = 1.0  # a request waited on this long lets go of its slot


class Slots:
    """``active`` slots for polls making progress, and room for ``waiting`` more that wait on a
    slow provider or before a retry. ``workers`` is how many polls may be under way in all.

    A ticket names its poll's group (the provider host). When polls wait for a slot, a freed
    one goes to a waiting poll of the group that holds the fewest slots (round robin among
    equals), not to the one that came first: hundreds of polls of a host that never answers,
    queued for their turn to start a request, do not keep a healthy host's poll waiting behind
    them (each would hold its slot for :data:`SLOW_AFTER_S` before letting go)."""

    def __init__(self, active: int, waiting: int, *, slow_after_s: float = SLOW_AFTER_S) -> None:
        self.active = max(1, active)
        self.waiting_cap = max(0, waiting)
        self.slow_after_s = slow_after_s
        self.waiting = 0
        self._free = self.active
        self._held: dict[str, int] = {}  # group -> slots it holds (the groups holding any)
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}  # the groups with polls waiting for one

    @property
    def workers(self) -> int:
        return self.active + self.waiting_cap

    @property
    def in_use(self) -> int:
        """Slots held now (by polls making progress)."""
        return self.active - self._free

    def ticket(self, group: str = "") -> Ticket:
        return Ticket(self, group)

    async def _acquire(self, group: str) -> None:
        if self._free and not self._queues:
            self._take(group)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(group, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(group)  # granted as it was cancelled: to the next one
            else:
                queue = self._queues.get(group)
                if queue is not None and future in queue:
                    queue.remove(future)
                    if not queue:
                        del self._queues[group]
            raise

    def _take(self, group: str) -> None:
        self._free -= 1
        self._held[group] = self._held.get(group, 0) + 1

    def _release(self, group: str) -> None:
        held = self._held[group] - 1
        if held:
            self._held[group] = held
        else:
            del self._held[group]
        self._free += 1
        held_by = self._held.get
        while self._free and self._queues:
            queues = self._queues
            fewest = next(iter(queues)) if len(queues) == 1 else min(queues, key=lambda g: held_by(g, 0))
            queue = self._queues.pop(fewest)
            future = queue.popleft()
            if queue:
                self._queues[fewest] = queue  # (at the end: the next tie goes to another group)
            if not future.done():
                future.set_result(None)
                self._take(fewest)


class Ticket:
    """One poll's hold on a slot: ``async with ticket:`` takes it; :meth:`sleep` and :meth:`wait`
    are the poll's retry sleep and request wait (fetch's ``sleep`` and ``wait``)."""

    __slots__ = ("_slots", "_group", "_held")

    def __init__(self, slots: Slots, group: str = "") -> None:
        self._slots = slots
        self._group = group
        self._held = False

    async def __aenter__(self) -> Ticket:
        await self._slots._acquire(self._group)
        self._held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._give_back()

    def _give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._group)

    def _may_let_go(self) -> bool:
        return self._held and self._slots.waiting < self._slots.waiting_cap

    async def _take_again(self) -> None:
        self._slots.waiting -= 1
        await self._slots._acquire(self._group)
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


class _Group:
    """One group's polls out (under way, or handed to the workers), and its due resources aside."""

    __slots__ = ("out", "aside")

    def __init__(self) -> None:
        self.out = 0
        self.aside: deque[tuple[float, str]] = deque()


class Dispatcher:
    """See the module docstring. ``run(key, due)`` polls one resource; it must not raise."""

    def __init__(self, run: Callable[[str, float], Awaitable[Any]], *, workers: int,
                 clock: Callable[[], float] = time.monotonic, group: Callable[[str], str] | None = None,
                 share: int | None = None) -> None:
        self._run = run
        self._clock = clock
        self._workers_n = max(1, workers)
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # key -> its live entry in the heap (others are stale)
        self._tick = 0
        self._queue: asyncio.Queue[tuple[str, float, str]] = asyncio.Queue(self._workers_n)
        self._group = group if share is not None and group is not None else None
        self._share = max(1, share or 1)
        self._groups: dict[str, _Group] = {}  # the groups with polls under way, handed out, or aside
        self._aside: dict[str, float] = {}  # key -> due, of the resources waiting for their group's turn
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
        self._aside.pop(key, None)  # (its place aside, if it had one, is stale now)
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
        self._aside.pop(key, None)

    def due(self, key: str) -> float | None:
        due = self._due.get(key)
        return due if due is not None else self._aside.get(key)

    def polling(self) -> list[str]:
        """The keys being polled now."""
        return list(self._busy.values())

    def __len__(self) -> int:
        return len(self._due) + len(self._aside)

    def overdue(self, now: float | None = None) -> int:
        """How many planned runs are due and wait for a worker."""
        now = self._clock() if now is None else now
        return sum(1 for due in self._due.values() if due <= now) + len(self._aside)  # (aside: due)

    def longest_wait(self, now: float | None = None) -> float:
        """How long (s) the most overdue planned run has been due and waited for a worker (0: none)."""
        now = self._clock() if now is None else now
        oldest = min((*self._due.values(), *self._aside.values()), default=now)
        return max(0.0, now - oldest)

    def _compact(self) -> None:
        """The heap rebuilt from the live entries only (one per key)."""
        self._heap = [(due, i, key) for i, (key, due) in enumerate(self._due.items())]
        self._tick = len(self._heap)
        heapq.heapify(self._heap)

    # -- groups -----------------------------------------------------------------------------------

    def _bound(self) -> int:
        """How many polls one group may have out (under way or handed to the workers) now."""
        return max(1, self._share // len(self._groups))

    def _ended(self, group: str) -> None:
        """One poll of ``group`` ended: what waited aside goes back to the heap, as far as the
        bound now allows (for every group when this one has nothing left, which raises it)."""
        entry = self._groups[group]
        entry.out -= 1
        self._back(entry)
        if entry.out or entry.aside:
            return
        del self._groups[group]
        for name, other in [(n, e) for n, e in self._groups.items() if e.aside]:
            self._back(other)
            if not other.out and not other.aside:  # (only stale entries were left aside)
                del self._groups[name]

    def _back(self, entry: _Group) -> None:
        room = self._bound() - entry.out
        while room > 0 and entry.aside:
            due, key = entry.aside.popleft()
            if self._aside.get(key) != due:
                continue  # planned again, or forgotten, while it waited aside
            del self._aside[key]
            self.plan(key, due)  # (its own due time: overdue, it is handed out first)
            room -= 1

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
                group = ""
                if self._group is not None:
                    group = self._group(key)
                    entry = self._groups.get(group)
                    if entry is None:
                        entry = self._groups[group] = _Group()
                    if entry.out >= self._bound():
                        entry.aside.append((due, key))  # its group has its share out: after one of them
                        self._aside[key] = due
                        handed += 1
                        if handed % BATCH == 0:
                            await asyncio.sleep(0)
                            now = self._clock()
                        heap = self._heap
                        continue
                    entry.out += 1
                if self._queue.full():
                    await self._queue.put((key, due, group))  # every worker busy: wait for one
                    now = self._clock()
                else:
                    self._queue.put_nowait((key, due, group))
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
            key, due, group = await self._queue.get()
            if self._stopping:
                if self._group is not None:
                    self._groups[group].out -= 1  # (its turn is not taken: nothing goes back)
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
                if self._group is not None:
                    self._ended(group)

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
