"""Group commit of inbound requests: those ready in the same turn of the event loop share one
transaction (DESIGN §10, persist then acknowledge).

A commit costs the WAL frames of every page it changed, and a request changes about as many
pages alone as several do together (the tail of each table and index): one commit for the
requests that arrive together lets the daemon accept far more per second, and none of them is
answered before its rows are in the state file. A group is committed as soon as a turn of the
loop brings no new request to it (it has read all that had arrived), when it holds
``max_events`` events, or ``max_wait_s`` after its first request: a lone request waits a turn or two (microseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from state import Store
from state.store import InboundResult
from state.types import InboundWrite

__all__ = ["GroupCommit", "MAX_GROUP_EVENTS", "MAX_WAIT_S"]

# a group larger than this is cut into several transactions, so one commit never holds the
# loop for long (1,000-event batches: 20 of them)
MAX_GROUP_EVENTS = 20_000
MAX_WAIT_S = 0.010  # the longest a request waits for others to join its commit


class GroupCommit:
    def __init__(self, store: Store, *, max_events: int = MAX_GROUP_EVENTS, max_wait_s: float = MAX_WAIT_S) -> None:
        self.store = store
        self.max_events = max_events
        self.max_wait_s = max_wait_s
        self._waiting: list[tuple[InboundWrite, asyncio.Future[InboundResult]]] = []
        self._events = 0
        self._counted = 0  # len(_waiting) at the last turn
        self._started = 0.0

    def submit(self, write: InboundWrite) -> asyncio.Future[InboundResult]:
        """The result once ``write`` is committed; the store's error (all of the group's) if not."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InboundResult] = loop.create_future()
        if not self._waiting:
            self._started = loop.time()
            self._counted = 0
            # a timer, not call_soon: due timers run after the I/O callbacks of the next turn,
            # so the requests read in that turn get their own turn to join before the check
            loop.call_later(0, self._turn)
        self._waiting.append((write, future))
        self._events += max(1, len(write.event_ids))
        return future

    def _turn(self) -> None:
        loop = asyncio.get_running_loop()
        grew = len(self._waiting) > self._counted
        if grew and self._events < self.max_events and loop.time() - self._started < self.max_wait_s:
            self._counted = len(self._waiting)
            loop.call_later(0, self._turn)
            return
        self._flush()

    def _flush(self) -> None:
        waiting, self._waiting, self._events = self._waiting, [], 0
        for group in _groups(waiting, self.max_events):
            try:
                results = self.store.record_inbound_many([write for write, _ in group])
            except Exception as exc:  # noqa: BLE001 - each waiter answers for itself (503 for a StateError)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results):
                if not future.done():  # (its request may have been given up meanwhile)
                    future.set_result(result)


def _groups(waiting: Sequence[tuple[InboundWrite, asyncio.Future[InboundResult]]],
            max_events: int) -> list[list[tuple[InboundWrite, asyncio.Future[InboundResult]]]]:
    groups: list[list[tuple[InboundWrite, asyncio.Future[InboundResult]]]] = [[]]
    size = 0
    for item in waiting:
        count = max(1, len(item[0].event_ids))
        if groups[-1] and size + count > max_events:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += count
    return groups
