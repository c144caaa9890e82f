"""Handing due resources to a fixed pool of workers, on a monotonic clock.

    dispatcher = Dispatcher(poll_one, workers=slots.workers)    # poll_one(key, due) -> awaitable
    dispatcher.plan_many([(key, due_monotonic), ...])            # before it starts: one heapify
    dispatcher.start()
    dispatcher.plan(key, due)                                    # when a poll has finished
    await dispatcher.stop(timeout_s)                             # running polls finish or are cancelled

One heap of (due, key) for what is planned; what is due moves to its group's queue of ready
resources (``group=``: the resource's provider host; one group without it), and is handed to a
free worker from there. A resource is in the heap, ready, handed out or being polled, never
twice: a poll cannot overlap itself, and missed runs collapse into one (the caller plans the
next run when a poll ends). No more is handed out than there are workers: when every worker is
busy, what is due waits, oldest first within its group, so an all-due burst is worked off at
the pool's pace instead of becoming one task per resource. The loop is never held: the
dispatcher yields every :data:`BATCH` resources it moves.

Groups take turns (round robin) for each free worker, and a group gets no more out (handed
out, or being polled) than ``share`` divided by the groups that have some out or ready. With
``share`` no larger than the waiting room of :class:`Slots`, however many resources of one host
hang, they can all let go of their slots, and the workers they leave serve the other hosts:
1,000 providers that never answer no longer starve a healthy one (bench/fairness.py). (Past
``share`` hosts hanging at once, the bound stays 1 each: the ones beyond the waiting room keep
their slots while they hang.)

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
from collections import OrderedDict, deque
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

    A ticket names its poll's group (the provider host). When polls wait for a slot, the groups
    take turns (round robin), each group's polls in the order they came: hundreds of polls of a
    host that never answers, queued for their turn to start a request, do not keep a healthy
    host's poll waiting behind them (each would hold its slot for :data:`SLOW_AFTER_S` before
    letting go)."""

    def __init__(self, active: int, waiting: int, *, slow_after_s: float = SLOW_AFTER_S) -> None:
        self.active = max(1, active)
        self.waiting_cap = max(0, waiting)
        self.slow_after_s = slow_after_s
        self.waiting = 0
        self._free = self.active
        self._held: dict[str, int] = {}  # group -> slots it holds (the groups holding any)
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}  # groups with polls waiting: their turns

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
        queues = self._queues
        while self._free and queues:
            turn = next(iter(queues))
            queue = queues.pop(turn)
            future = queue.popleft()
            if queue:
                queues[turn] = queue  # (at the end: the next slot goes to another group)
            if not future.done():
                future.set_result(None)
                self._take(turn)


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
    """One group's polls out (handed to a worker, or under way), and its due resources ready."""

    __slots__ = ("out", "ready", "live")

    def __init__(self) -> None:
        self.out = 0
        self.ready: deque[tuple[float, str]] = deque()  # (due, key), in due order; stale ones skipped
        self.live = 0  # the entries of ready that are not stale


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
        # what is handed out is at most the workers: the queue never refuses a hand-off
        self._queue: asyncio.Queue[tuple[str, float, str]] = asyncio.Queue(self._workers_n)
        self._group = group
        self._share = max(1, share) if share is not None else self._workers_n
        self._groups: dict[str, _Group] = {}  # the groups with polls out or resources ready
        self._ready: dict[str, tuple[float, str]] = {}  # key -> (due, group), due and not handed out yet
        # groups with resources ready and room for more out, in turn (an OrderedDict: popping the
        # first of a plain dict again and again skips every slot deleted before it, quadratic)
        self._turns: OrderedDict[str, None] = OrderedDict()
        self._full: set[str] = set()  # groups with resources ready and their share out
        self._out = 0
        self._quick = 0  # polls started without waiting in this step of the loop (all workers)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: dict[asyncio.Task[None], str] = {}  # worker -> the key it polls
        self._busy_keys: set[str] = set()  # the keys handed out (queued or polled), for every hand-off
        self._idle = asyncio.Event()  # set whenever no poll is under way
        self._idle.set()
        self.dispatched = 0

    # -- the plan ---------------------------------------------------------------------------------

    def plan(self, key: str, due: float) -> None:
        """Poll ``key`` at monotonic time ``due`` (replacing its planned run, if any)."""
        self._unready(key)
        self._due[key] = due
        self._tick += 1
        heapq.heappush(self._heap, (due, self._tick, key))
        if self._heap[0][2] == key:
            self._wake.set()
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def plan_many(self, items: Iterable[tuple[str, float]]) -> None:
        for key, due in items:
            self._unready(key)
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
        self._unready(key)

    def due(self, key: str) -> float | None:
        due = self._due.get(key)
        if due is None and key in self._ready:
            due = self._ready[key][0]
        return due

    def polling(self) -> list[str]:
        """The keys being polled now."""
        return list(self._busy.values())

    def __len__(self) -> int:
        return len(self._due) + len(self._ready)

    def overdue(self, now: float | None = None) -> int:
        """How many planned runs are due and wait for a worker (or for their group's turn)."""
        now = self._clock() if now is None else now
        return sum(1 for due in self._due.values() if due <= now) + len(self._ready)  # (ready: due)

    def longest_wait(self, now: float | None = None) -> float:
        """How long (s) the most overdue planned run has been due and waited for a worker (0: none)."""
        now = self._clock() if now is None else now
        oldest = min((*self._due.values(), *(due for due, _ in self._ready.values())), default=now)
        return max(0.0, now - oldest)

    def _compact(self) -> None:
        """The heap rebuilt from the live entries only (one per key)."""
        self._heap = [(due, i, key) for i, (key, due) in enumerate(self._due.items())]
        self._tick = len(self._heap)
        heapq.heapify(self._heap)

    # -- groups: each its turn, and at most its share out --------------------------------------------

    def _bound(self) -> int:
        """How many polls one group may have out now: the share over the groups with some out or ready."""
        return max(1, self._share // max(1, len(self._groups)))

    def _make_ready(self, key: str, due: float) -> None:
        name = ""
        if self._group is not None:
            try:
                name = self._group(key)
            except Exception:  # (the loop boundary: a resource nobody can name shares the nameless group)
                log.exception("dispatch.group_failed", extra={"resource": key})
        entry = self._groups.get(name)
        if entry is None:
            entry = self._groups[name] = _Group()
        entry.ready.append((due, key))
        entry.live += 1
        self._ready[key] = (due, name)
        if name not in self._full:
            self._turns[name] = None

    def _unready(self, key: str) -> None:
        """``key`` leaves the ready resources of its group (planned again, or forgotten)."""
        item = self._ready.pop(key, None)
        if item is not None:
            entry = self._groups[item[1]]
            entry.live -= 1  # (its entry in entry.ready is stale now)
            if not entry.live:
                self._no_more_ready(item[1], entry)

    def _no_more_ready(self, name: str, entry: _Group) -> None:
        """Group ``name`` has no resource ready now: out of the turns, and gone if it has none out."""
        self._turns.pop(name, None)
        self._full.discard(name)
        entry.ready.clear()  # (only stale entries left)
        if not entry.out:
            del self._groups[name]
            self._bound_rose()

    def _bound_rose(self) -> None:
        """A group went: the others' bound may be higher now."""
        if self._full:
            bound = self._bound()
            for name in [n for n in self._full if self._groups[n].out < bound]:
                self._full.discard(name)
                self._turns[name] = None

    def _hand(self) -> None:
        """Hand ready resources to the workers while some are free: one per group in turn (round
        robin), each group's in due order, none to a group with its share out."""
        groups, turns, ready, queue = self._groups, self._turns, self._ready, self._queue
        while turns and self._out < self._workers_n and not self._stopping:
            name = turns.popitem(last=False)[0]
            entry = groups[name]
            if entry.out >= self._bound():
                self._full.add(name)  # (its turn comes back when one of its polls ends)
                continue
            while True:  # its oldest live entry (entry.live > 0: there is one)
                due, key = entry.ready.popleft()
                if ready.get(key) == (due, name):  # (the same due in another group is not this entry)
                    break
            del ready[key]
            entry.live -= 1
            entry.out += 1
            self._out += 1
            self._busy_keys.add(key)
            queue.put_nowait((key, due, name))
            self.dispatched += 1
            if entry.live:
                turns[name] = None  # (at the end: the next turn goes to another group)
            else:
                self._no_more_ready(name, entry)

    def _ended(self, name: str) -> None:
        """One poll of group ``name`` ended (or will not start): its group may take another turn."""
        entry = self._groups[name]
        entry.out -= 1
        self._out -= 1
        if not entry.live:
            self._no_more_ready(name, entry)
        elif name in self._full and entry.out < self._bound():
            self._full.discard(name)
            self._turns[name] = None
        self._hand()

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(), name=f"poll-worker-{i}") for i in range(self._workers_n)]
        self._tasks.append(asyncio.create_task(self._dispatch(), name="dispatcher"))

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._stopping and not self._tasks[-1].done()

    async def _dispatch(self) -> None:
        heap, due_of = self._heap, self._due
        moved = 0
        while not self._stopping:
            now = self._clock()
            heap = self._heap  # (compaction replaces the list)
            while heap and heap[0][0] <= now and not self._stopping:
                due, _, key = heapq.heappop(heap)
                moved += 1  # (stale entries too: 100,000 forgotten at once are as many pops)
                if due_of.get(key) != due:
                    pass  # a stale entry: the key was planned again, or forgotten
                elif key in self._busy_keys:  # planned again while handed out: after that poll, not beside it
                    del due_of[key]
                    self.plan(key, now + 1.0)
                else:
                    del due_of[key]
                    self._make_ready(key, due)
                if moved % BATCH == 0:
                    self._hand()
                    await asyncio.sleep(0)  # never hold the loop, whatever is due
                    now = self._clock()
                heap = self._heap
            self._hand()
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
            if not self._queue.empty():  # get() will not wait: polls that return at once (a stop,
                await self._quick_turn()  # a resource removed) would run on in this step of the loop
            key, due, group = await self._queue.get()
            if self._stopping:
                self._busy_keys.discard(key)
                self._ended(group)  # (stopping: no hand-off follows)
                continue  # stopping: what waited for a worker does not start
            self._busy[task] = key
            self._idle.clear()
            try:
                await self._run(key, due)
            except asyncio.CancelledError:
                cancelling = getattr(task, "cancelling", None)  # (Python 3.11+)
                if self._stopping or cancelling is None or cancelling():
                    raise
                # a CancelledError of the poll's own (a future someone else cancelled), not this
                # worker being cancelled: re-raised, it ended the worker, and the pool shrank for good
                log.exception("poll.crashed", extra={"resource": key})
            except Exception:  # the loop boundary: run() should not raise; if it does, the next poll goes on
                log.exception("poll.crashed", extra={"resource": key})
            finally:
                self._busy.pop(task, None)
                self._busy_keys.discard(key)
                if not self._busy:
                    self._idle.set()
                self._ended(group)

    async def _quick_turn(self) -> None:
        """Count a poll started without waiting, for all workers together within one step of the
        loop, and give the loop a turn after :data:`BATCH` of them (each worker counting its own
        let 272 workers run 256 each in one step: 0.16 s)."""
        if not self._quick:
            asyncio.get_running_loop().call_soon(self._new_step)
        self._quick += 1
        if self._quick >= BATCH:
            await asyncio.sleep(0)

    def _new_step(self) -> None:
        self._quick = 0

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
        while not self._queue.empty():  # handed out, never started: no longer out
            key, _, group = self._queue.get_nowait()
            self._busy_keys.discard(key)
            self._ended(group)
        return cancelled
