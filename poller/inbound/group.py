"""Group commit of inbound requests: those ready in the same turn of the event loop share one
transaction (DESIGN §10, persist then acknowledge).

A commit costs a WAL write and its sync, whatever it holds; under load, many requests' bodies
arrive between two turns, and one commit for all of them lets the daemon accept far more per
second without answering any of them earlier than its rows are in the state file. A lone
request waits for nothing: its group is flushed in the very next turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from state import Store
from state.store import InboundResult
from state.types import InboundWrite

__all__ = ["GroupCommit", "MAX_GROUP_EVENTS"]

# a group larger than this is cut into several transactions, so one commit never holds the
# loop for long (1,000-event batches: 20 of them)
MAX_GROUP_EVENTS = 20_000


class GroupCommit:
    def __init__(self, store: Store, *, max_events: int = MAX_GROUP_EVENTS) -> None:
        self.store = store
        self.max_events = max_events
        self._waiting: list[tuple[InboundWrite, asyncio.Future[InboundResult]]] = []
        self._scheduled = False

    def submit(self, write: InboundWrite) -> asyncio.Future[InboundResult]:
        """The result once ``write`` is committed; the store's error (all of the group's) if not."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InboundResult] = loop.create_future()
        self._waiting.append((write, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        waiting, self._waiting, self._scheduled = self._waiting, [], False
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
