"""Delivery: committed outbox notifications, sent per endpoint from queues kept in memory.

    engine = DeliveryEngine(client, store, config, clock)
    await engine.run(stop)                  # the daemon: until stop is set; engine.wake() after a poll
    report = await engine.run_once()        # poller once / deliver: each due notification once

The outbox stays the truth: the engine reads pending rows (without bodies) into one queue per
resource, sends, and records the attempts in batches, one transaction for many; a crash loses
nothing (what was sent and not yet recorded is sent again, with the same ids: delivery is at
least once). What the queues hold:

* per resource, notifications go out in detection order: only the head of a resource's queue
  is sent, the next one once the head is delivered or dead;
* per endpoint (callback URL), up to ``engine.delivery.concurrencyPerEndpoint`` heads of
  different resources at once; endpoints are independent of each other: a slow one never
  paces another;
* when a notification fails, its endpoint's other notifications wait with it until its retry
  time; then it alone probes the endpoint, and the rest follow once it got through.

A notification of an instance no longer configured waits (its signature key is gone).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random as _random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from poller.config import Config
from poller.deliver.sender import DeliveryReport, DeliveryResult, Sender
from poller.javadate.zone import to_ms
from poller.loopturn import turn
from state import AttemptResult, Pending, StateError, Store

__all__ = ["DeliveryEngine", "deliver_due"]

log = logging.getLogger(__name__)
FLUSH_AFTER_S = 0.0  # attempts are recorded at the loop's next turn after they ended (together)...
FLUSH_COUNT = 200  # ...or as soon as this many wait
RESYNC_S = 60.0  # the outbox is read again whole this often (replays from another process)
ELSEWHERE_S = 1.0  # how often to look for commits by another process (a replay beside the daemon)
MAX_LOADED = 200_000  # pending notifications held in memory; more are read as these go
# ...read this many at a time, the event loop free between: 50,000 read at once held it 0.3-0.7 s
LOAD_PART = 2_000


@dataclass
class _Endpoint:
    url: str
    ready: deque[str] = field(default_factory=deque)  # resources whose head may be sent now
    inflight: int = 0
    failing: dict[str, int] = field(default_factory=dict)  # resource -> its failed head's next attempt (ms)
    failed_this_pass: bool = False  # run_once: nothing more for this endpoint in the pass


class DeliveryEngine:
    """See the module docstring."""

    def __init__(self, client: aiohttp.ClientSession, store: Store, config: Config,
                 clock: Callable[[], datetime], *, random: Callable[[], float] = _random.random,
                 on_result: Callable[[DeliveryResult], None] | None = None,
                 before_sending: Callable[[], object] | None = None) -> None:
        self.client = client
        # the daemon's wall-clock watch: a jump seen here moves the outbox's retry times (and
        # marks the queues stale) before a stale time could fire a retry early
        self.before_sending = before_sending
        self.store = store
        self.clock = clock
        self.random = random
        self.on_result = on_result
        self._wake = asyncio.Event()
        self._version: int | None = None  # the store's data_version at the last turn
        self._sends: set[asyncio.Task[None]] = set()
        self._results: list[AttemptResult] = []
        self._first_result_at: float | None = None
        self._inflight: set[str] = set()  # resources whose head is being sent
        self._everything = False  # run_once(everything=True): due or not, failing endpoint or not
        self.report = DeliveryReport()
        self._collect = False  # run_once reports every result; run() hands them to on_result only
        self.error: str | None = None  # the last failure to record attempts (the daemon's health)
        self.configure(config)

    # -- what is known ------------------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """A (re)loaded configuration: callback URLs, signature keys, limits. The queues are read
        again from the outbox (pending notifications follow their instance's callback as
        configured now, so that sending and 'a failing endpoint holds its others' agree)."""
        old = getattr(self, "sender", None)
        self.config = config
        # an instance the reload removed keeps what signing and sending need, for the notifications
        # it left in the outbox: they are still delivered (DESIGN §9), and signed as before
        configured = {i.id for i in config.instances}
        retired = {k: v for k, v in old.instances.items() if k not in configured} if old is not None else {}
        self.sender = Sender(self.client, config, self.clock, self.random, retired=retired)
        self.limit = max(1, config.engine.delivery.concurrency_per_endpoint)
        self._stale = True

    def reread(self) -> None:
        """Read the outbox again (its due times moved, or something went wrong) and look at once."""
        self._stale = True
        self._wake.set()

    def wake(self) -> None:
        """New notifications were committed (or something changed): look again."""
        self._wake.set()

    async def _reload(self, *, retarget: bool = True) -> None:
        """Every pending notification, from the outbox, into fresh queues (nothing is in flight),
        read a part at a time; ``retarget``: first point them at their instances' callback URLs
        (after a (re)load of the configuration or writes by another process: an UPDATE that
        reads every pending row, 0.1-0.2 s at 50,000, so not at each periodic resync)."""
        if retarget:
            self.store.retarget_callbacks({i.id: i.callback_url for i in self.config.instances if i.callback_url})
        self.queues: dict[str, deque[Pending]] = {}
        self.endpoints: dict[str, _Endpoint] = {}
        self.later: list[tuple[int, int, str]] = []  # (next attempt ms, tick, resource): heads not due yet
        self._tick = 0
        self.last_rowid = 0
        self._missing: set[str] = set()
        self._stale = False
        self._loaded = 0
        while self._load_part():
            await turn()
        self._resynced = asyncio.get_running_loop().time()

    def _load_part(self) -> bool:
        """The next pending notifications past those loaded; whether more may follow."""
        want = min(LOAD_PART, MAX_LOADED - self._loaded)
        if want <= 0:
            return False
        rows = self.store.pending(after_rowid=self.last_rowid, limit=want)
        self._load(rows)
        return len(rows) == want and self._loaded < MAX_LOADED

    def _load(self, rows: list[Pending]) -> None:
        now_ms = to_ms(self.clock())
        fresh: set[str] = set()
        for row in rows:
            self.last_rowid = max(self.last_rowid, row.rowid)
            if not self.sender.sendable(row.instance_id):
                if self._collect:
                    self.report.unsendable[row.instance_id] = self.report.unsendable.get(row.instance_id, 0) + 1
                if row.instance_id not in self._missing:
                    self._missing.add(row.instance_id)
                    log.warning("delivery.instance_missing", extra={"notification": row.id,
                                                                   "instance": row.instance_id})
                continue
            queue = self.queues.get(row.resource_key)
            if queue is None:
                queue = self.queues[row.resource_key] = deque()
                fresh.add(row.resource_key)
            if queue and queue[-1].seq > row.seq:  # written out of order (never by the engine): keep seq order
                items = sorted([*queue, row], key=lambda p: (p.seq, p.rowid))
                queue.clear()
                queue.extend(items)
            else:
                queue.append(row)
            self._loaded += 1
        for key in fresh:
            self._offer(key, now_ms)

    def _load_new(self) -> None:
        if self._load_part():
            self._wake.set()  # more to read: at the loop's next turn

    def _endpoint(self, url: str) -> _Endpoint:
        endpoint = self.endpoints.get(url)
        if endpoint is None:
            endpoint = self.endpoints[url] = _Endpoint(url)
        return endpoint

    def _offer(self, key: str, now_ms: int) -> None:
        """The resource's head is ready now, or waits for its time (or its endpoint's failure)."""
        queue = self.queues.get(key)
        if not queue:
            self.queues.pop(key, None)
            return
        head = queue[0]
        endpoint = self._endpoint(head.callback_url)
        if self._everything:
            endpoint.ready.append(key)
            return
        due = head.next_attempt_ms if head.next_attempt_ms is not None else now_ms
        if head.attempts > 0:
            endpoint.failing[key] = due
        if due <= now_ms:
            if key not in endpoint.failing:
                endpoint.ready.append(key)
        else:
            self._tick += 1
            heapq.heappush(self.later, (due, self._tick, key))

    # -- sending --------------------------------------------------------------------------------------

    def _start_sends(self, now_ms: int, *, once: bool, attempted: set[str]) -> int:
        started = 0
        while self.later and self.later[0][0] <= now_ms:
            _, _, key = heapq.heappop(self.later)
            queue = self.queues.get(key)
            if queue and key not in self._inflight:
                endpoint = self._endpoint(queue[0].callback_url)
                if key not in endpoint.failing and key not in endpoint.ready:
                    endpoint.ready.append(key)
        for endpoint in self.endpoints.values():
            if once and endpoint.failed_this_pass:
                continue
            if endpoint.failing:
                # while a failed head waits for its retry, its endpoint waits with it; once none
                # waits any more, the earliest of them probes the endpoint, alone
                if endpoint.inflight == 0 and max(endpoint.failing.values()) <= now_ms:
                    _, key = min((at, key) for key, at in endpoint.failing.items())
                    started += self._send(key, endpoint, attempted)
                continue
            while endpoint.ready and endpoint.inflight < self.limit:
                key = endpoint.ready.popleft()
                queue = self.queues.get(key)
                if not queue or queue[0].callback_url != endpoint.url:
                    continue
                started += self._send(key, endpoint, attempted)
        return started

    def _send(self, key: str, endpoint: _Endpoint, attempted: set[str]) -> int:
        head = self.queues[key][0]
        if key in self._inflight or head.id in attempted:
            return 0
        attempted.add(head.id)
        self._inflight.add(key)
        endpoint.inflight += 1
        task = asyncio.create_task(self._attempt(key, head, endpoint), name=f"deliver-{head.id}")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return 1

    async def _attempt(self, key: str, head: Pending, endpoint: _Endpoint) -> None:
        try:
            body = self.store.body(head.id)
            if body is None:  # not pending any more (replayed elsewhere and delivered, pruned...)
                self._advance(key, head)
                return
            result, attempt = await self.sender.send(head, body)
            if self.before_sending is not None:
                # a jump of the wall clock during the send is seen before this result joins the
                # others: the earlier ones are recorded and moved with it, this one (computed on
                # the new timeline) is not
                self.before_sending()
            self._results.append(attempt)
            if self._first_result_at is None:
                self._first_result_at = asyncio.get_running_loop().time()
            if self.on_result is not None:
                self.on_result(result)
            if self._collect:
                self.report.results.append(result)
            if result.ok or result.dead:
                endpoint.failing.pop(key, None)
                self._advance(key, head)
            else:
                endpoint.failed_this_pass = True
                retry = Pending(head.rowid, head.id, head.resource_key, head.instance_id, head.callback_url, head.seq,
                                head.attempts + 1, result.next_attempt_ms)
                queue = self.queues.get(key)
                if queue and queue[0].id == head.id:
                    queue[0] = retry
                self._offer(key, to_ms(self.clock()))
        finally:
            self._inflight.discard(key)
            endpoint.inflight -= 1
            self._wake.set()

    def _advance(self, key: str, head: Pending) -> None:
        queue = self.queues.get(key)
        if queue and queue[0].id == head.id:
            queue.popleft()
            self._loaded -= 1
        self._offer(key, to_ms(self.clock()))

    def _flush(self, *, force: bool = False) -> None:
        if not self._results:
            return
        loop_time = asyncio.get_running_loop().time()
        if not force and len(self._results) < FLUSH_COUNT and self._first_result_at is not None \
                and loop_time - self._first_result_at < FLUSH_AFTER_S:
            return
        results, self._results, self._first_result_at = self._results, [], None
        try:
            self.store.record_attempts(results)
            self.error = None
        except StateError as exc:  # kept: recorded with the next batch, once the store takes writes
            self._results = results + self._results
            self._first_result_at = loop_time
            self.error = str(exc)
            raise

    @property
    def in_flight(self) -> int:
        """Attempts under way."""
        return len(self._sends)

    def flush(self) -> None:
        """Record now the attempts that ended (before the outbox's due times are moved)."""
        self._flush(force=True)

    # -- the two ways to run -----------------------------------------------------------------------

    async def run_once(self, *, everything: bool = False) -> DeliveryReport:
        """Attempt every due notification once (``everything``: every pending one, due or not,
        whatever its endpoint's failures), each resource in order; an endpoint that fails gets
        nothing more in this pass."""
        self.report, self._collect, self._everything = DeliveryReport(), True, everything
        try:
            await self._reload()
            attempted: set[str] = set()
            while True:
                self._wake.clear()
                started = self._start_sends(to_ms(self.clock()), once=True, attempted=attempted)
                if not started and not self._sends:
                    break
                if self._sends:
                    await asyncio.wait(set(self._sends), return_when=asyncio.FIRST_COMPLETED)
                self._flush()  # what ended since the last turn, in one transaction
            self._flush(force=True)
            return self.report
        finally:
            self._collect = self._everything = False

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; what is in flight then is awaited and recorded."""
        attempted: set[str] = set()  # (run_once's: here a head is tried again after its retry time)
        try:
            while not stop.is_set():
                self._wake.clear()
                if self.before_sending is not None:
                    self.before_sending()
                loop = asyncio.get_running_loop()
                version = self.store.data_version()
                if version != self._version:
                    self._stale |= self._version is not None  # written elsewhere: read the outbox again
                    self._version = version
                if self._stale or (not self._sends and loop.time() - self._resynced >= RESYNC_S):
                    self._flush(force=True)
                    if not self._sends:
                        await self._reload(retarget=self._stale)
                else:
                    self._load_new()
                attempted.clear()
                if not self._stale:  # (stale queues wait for what is in flight, then are read again)
                    self._start_sends(to_ms(self.clock()), once=False, attempted=attempted)
                self._flush()
                await self._sleep(stop)
        finally:
            try:
                if self._sends:
                    await asyncio.gather(*self._sends, return_exceptions=True)
            finally:
                # also when that wait is cancelled (the stop's deadline): the attempts that did
                # end are recorded, or the restart would send them again
                self._flush(force=True)

    async def _sleep(self, stop: asyncio.Event) -> None:
        now_ms = to_ms(self.clock())
        waits = [ELSEWHERE_S]
        if self.later:
            waits.append((self.later[0][0] - now_ms) / 1000)
        for endpoint in self.endpoints.values():
            if endpoint.failing and endpoint.inflight == 0:
                waits.append((max(endpoint.failing.values()) - now_ms) / 1000)
        if self._results:
            waits.append(FLUSH_AFTER_S)
        wait = max(0.0, min(waits))
        if wait <= 0:
            await asyncio.sleep(0)
            return
        stopper = asyncio.ensure_future(stop.wait())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stopper, waker}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            waker.cancel()


async def deliver_due(client: aiohttp.ClientSession, store: Store, config: Config,
                      now: datetime | Callable[[], datetime], *, everything: bool = False,
                      random: Callable[[], float] = _random.random) -> DeliveryReport:
    """Attempt every due notification once (``everything``: every pending one, due or not).

    ``now`` is the clock (a callable) or a fixed instant; it stamps ``webhook-timestamp`` and
    the attempt times.
    """
    clock: Callable[[], datetime] = now if callable(now) else (lambda: now)  # type: ignore[assignment,return-value]
    engine = DeliveryEngine(client, store, config, clock, random=random)
    return await engine.run_once(everything=everything)
