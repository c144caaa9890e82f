"""`poller run`: the process lifetime. Open the store, plan every resource, poll through a fixed
pool of workers, deliver beside it, answer signals (SIGTERM/SIGINT stop, SIGHUP reloads), and
keep systemd informed.

No business rules live here: polls are :func:`poller.poll.engine.poll_resource`, deliveries
:func:`poller.deliver.sender.deliver_due`, timing :mod:`poller.daemon.schedule` and the hand-off
:mod:`poller.daemon.dispatch`. This is the one place (with the CLI) that reads the clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random as _random
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import Protocol

import aiohttp
import httpx

from poller.config import Config, ConfigLoadError, InstanceConfig, ResourceConfig, load_config, templates
from poller.daemon.dispatch import Dispatcher, Slots, Ticket
from poller.daemon.housekeeping import Housekeeping
from poller.daemon.schedule import first_run, longest_wait_s, next_due, next_due_after_failure, start_window_s
from poller.daemon.systemd import Notifier, watchdog_interval
from poller.deliver.client import delivery_session
from poller.deliver.engine import DeliveryEngine
from poller.deliver.sender import DeliveryResult
from poller.errors import PollerError
from poller.gcpause import freeze_long_lived
from poller.httpclient import HttpClients
from poller.javadate.zone import from_ms, to_ms
from poller.poll.engine import PollOutcome, poll_resource, resource_key
from state import ResourceState, StateError, Store

__all__ = ["Daemon", "ListenError"]

log = logging.getLogger(__name__)
UTC = timezone.utc
STATUS_INTERVAL_S = 2.0
DELIVERY_ERROR_BACKOFF_S = 5.0
GAUGES_EVERY_S = 5.0
CHECKPOINT_EVERY_S = 1.0  # WAL checkpoints, in a worker thread
QUIET_POLLS_EVERY_S = 1.0  # the polls that changed nothing are written together this often
# of engine.shutdownTimeoutSeconds, kept after draining the polls for closing clients, the store and
# the process, so that the whole stop fits in the timeout
SHUTDOWN_RESERVE_S = 0.5
# How long a write waits for SQLite's write lock held by another process (a sqlite3 shell, a
# backup; `poller replay` holds it for milliseconds, about a second for 100,000 dead letters).
# The wait holds the event loop, so it is short: past it the write fails as a full disk's does
# (logged once, /healthz 503 until the lock is gone, the poll done again).
DAEMON_BUSY_TIMEOUT_MS = 200
WAITING_PER_SLOT = 16  # polls that may wait on slow providers, per engine.maxConcurrentPolls slot
MIN_WAITING = 256
HEALTH_EVERY_S = 10.0  # how often health is checked for the log when there is no systemd watchdog


def _totals(by_key: dict[str, dict[str, int]]) -> dict[str, int]:
    return {"pending": sum(c["pending"] for c in by_key.values()), "dead": sum(c["dead"] for c in by_key.values())}


class StartRequests(Protocol):
    """Signals received before :meth:`Daemon.run` installed its handlers (poller.cli.startsignals)."""

    stop: bool
    reload: bool


class ListenError(PollerError):
    """engine.listen cannot be bound (address in use, no permission)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _StoreHealth:
    """Failures to write the state file, logged once per kind (no traceback), and the recovery."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}

    def failed(self, exc: StateError, where: str) -> None:
        kind = str(exc.__cause__ or exc)
        count = self.kinds.get(kind, 0)
        self.kinds[kind] = count + 1
        if count == 0:
            log.error("state.write_failed", extra={"where": where, "error": str(exc)})

    def ok(self) -> None:
        if self.kinds:
            log.info("state.writable_again", extra={"failed_writes": sum(self.kinds.values())})
            self.kinds = {}


class Daemon:
    def __init__(self, config_path: str, config: Config, store: Store, *, environ: Mapping[str, str] = os.environ,
                 clock: Callable[[], datetime] = _utc_now, random: Callable[[], float] = _random.random,
                 transport: httpx.AsyncBaseTransport | None = None, early: StartRequests | None = None,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.config_path = config_path
        self.store = store
        self.environ = environ
        self.store_health = _StoreHealth()
        self.file_config = config  # the configuration file's; self.config adds the API's instances
        self.config = self._merged(config)
        self.clock = clock
        self.mono = mono
        self.random = random
        self.transport = transport
        self.early = early
        self.resources = self._polled(self.config)
        self.slots = self._slots(self.config)
        # each provider host its share of the polls out: all its polls may wait at once, and free
        # their slots (dispatch.py); resources are grouped by the origin of their URL
        self._hosts: dict[str, str] = {}
        self.dispatcher = Dispatcher(self._poll_job, workers=self.slots.workers, clock=mono, group=self._host,
                                     share=self.slots.waiting_cap)
        self.failures: dict[str, int] = {}  # consecutive failures of the resources failing now
        self._quiet_flush_failing = False
        self.stop = asyncio.Event()
        self.delivery: DeliveryEngine | None = None
        self.notifier = Notifier(environ)
        self.clients: HttpClients | None = None
        self.delivery_client: aiohttp.ClientSession | None = None
        self.housekeeping = Housekeeping(store, clock, lambda: self.config.engine.retention, self._clock_jumped, mono,
                                         on_write_failure=self.store_health.failed,
                                         dedupe_hours=lambda: self.config.engine.webhooks.dedupe_hours,
                                         overdue=lambda: (self.dispatcher.overdue(), self.dispatcher.longest_wait()))
        self.delivery_error: str | None = None
        self.last_poll: tuple[str, bool] | None = None  # (key, ok) of the newest poll
        self._reloading: asyncio.Task | None = None
        self.delivery_task: asyncio.Task | None = None
        self._status_sent = -STATUS_INTERVAL_S
        self.metrics = None
        self.http = None
        self.webhooks_http = None  # engine.webhooks.listen: the inbound routes on a listener of their own
        self.receiver = None
        self.tokens: dict[str, str] = {}

    # -- lifetime -------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.store.set_busy_timeout(DAEMON_BUSY_TIMEOUT_MS)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        if self.early is not None:  # what was asked while the process started
            if self.early.stop:
                self.stop.set()
            elif self.early.reload:
                self._reload_soon()
        try:
            async with AsyncExitStack() as stack:
                self.clients = HttpClients(stack, self.transport, max_connections=self.slots.workers + 16)
                if self.resources:  # made now, not by the first poll: its TLS context takes 50-100 ms
                    await self.clients.get(True)
                self.delivery_client = await stack.enter_async_context(delivery_session())
                await self._start_observability(stack)
                self._plan_all(self.clock())
                freeze_long_lived()
                self.dispatcher.start()
                self.delivery_task = asyncio.create_task(self._delivery_loop(), name="delivery")
                tasks = [self.delivery_task, asyncio.create_task(self._watchdog_loop(), name="watchdog"),
                         asyncio.create_task(self.housekeeping.run(), name="housekeeping"),
                         asyncio.create_task(self._gauges_loop(), name="gauges"),
                         asyncio.create_task(self._checkpoint_loop(), name="checkpoints"),
                         asyncio.create_task(self._quiet_polls_loop(), name="quiet-polls")]
                self.notifier.ready(self.status_line())
                log.info("daemon.started", extra={"resources": len(self.resources), "state": str(self.store.path)})
                await self.stop.wait()
                self.notifier.stopping()
                log.info("daemon.stopping")
                timeout = self.config.engine.shutdown_timeout_seconds
                budget = max(0.0, timeout - min(SHUTDOWN_RESERVE_S, timeout / 4))
                ends = loop.time() + budget
                cancelled = await self.dispatcher.stop(budget)
                if cancelled:
                    # abandoned: the pages they committed stay, their cursors did not move
                    log.warning("daemon.polls_cancelled", extra={"count": cancelled})
                # Deliveries under way finish meanwhile (the engine saw the stop and starts no
                # more) and their attempts are recorded: cancelled, a POST the receiver already
                # took would be sent again after the restart, its attempt never counted.
                _, unfinished = await asyncio.wait({self.delivery_task}, timeout=max(0.0, ends - loop.time()))
                if unfinished:
                    log.warning("daemon.deliveries_cancelled", extra={
                        "count": self.delivery.in_flight if self.delivery is not None else 0,
                        "note": "sent again after the restart (the same notification ids)"})
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("daemon.stopped")
        return 0

    async def _start_observability(self, stack: AsyncExitStack) -> None:
        """The listeners: engine.listen (metrics, health and, unless they have their own, the
        inbound webhooks) and engine.webhooks.listen."""
        engine = self.config.engine
        listen, hooks = engine.listen, engine.webhooks.listen
        if listen is None and hooks is None:
            return
        from poller.daemon.httpserver import HttpServer
        from poller.daemon.metrics import Metrics
        from poller.inbound.receive import Receiver
        from poller.inbound.routes import InboundRoutes

        self.receiver = Receiver(self.store, self.config, on_committed=self._inbound_committed,
                                 on_write_failure=self.store_health.failed)
        self._refresh_tokens()
        self.metrics = Metrics() if listen is not None else None
        inbound = InboundRoutes(lambda: self.receiver, lambda: self.tokens,  # type: ignore[arg-type,return-value]
                                lambda: self.config.engine.webhooks.max_body_bytes, lambda: to_ms(self.clock()),
                                observe=self.metrics.observe_inbound if self.metrics is not None else None)
        from poller.api.manager import Manager
        from poller.api.routes import ApiRoutes

        management = ApiRoutes(lambda: self.config.engine.api, Manager(self))

        def routes(app: object) -> None:
            if hooks is None:
                inbound.add(app)  # type: ignore[arg-type]
            management.add(app)  # type: ignore[arg-type]

        if listen is not None:
            self.http = HttpServer(self.metrics, self.healthy, routes=routes)
            await self._listen(stack, self.http, listen, "engine.listen")
        if hooks is not None:
            self.webhooks_http = HttpServer(routes=inbound.add, name="webhooks")
            await self._listen(stack, self.webhooks_http, hooks, "engine.webhooks.listen")

    async def _listen(self, stack: AsyncExitStack, server: object, address: tuple[str, int], key: str) -> None:
        try:
            await server.start(*address)  # type: ignore[attr-defined]
        except OSError as exc:
            raise ListenError(f"cannot listen on {address[0]}:{address[1]} ({key}): {exc.strerror or exc}") from exc
        stack.push_async_callback(server.close)  # type: ignore[attr-defined]
        log.info("daemon.listening", extra={"address": f"{address[0]}:{server.port}", "key": key})  # type: ignore

    # -- the management API (poller.api.manager.Host) ---------------------------------------------

    def now_ms(self) -> int:
        return to_ms(self.clock())

    def api_changed(self) -> None:
        """An instance was created, changed, paused or deleted through the API: run with it now."""
        self.apply(self._merged(self.file_config), "api.applied")

    def _refresh_tokens(self) -> None:
        """Every webhook instance's URL token (made once, kept in the state file)."""
        from poller.inbound.tokens import resolve_tokens

        try:
            self.tokens = resolve_tokens(self.store, self.config, to_ms(self.clock()))
        except StateError as exc:
            self.store_health.failed(exc, "webhook tokens")
        if self.receiver is not None:
            self.receiver.configure(self.config)
        hooks = [i.id for i in self.config.instances if i.receives_webhooks]
        if hooks:
            log.info("webhooks.ready", extra={"instances": len(hooks)})

    def _inbound_committed(self) -> None:
        if self.delivery is not None:
            self.delivery.wake()
        self._status_soon()

    # -- planning -------------------------------------------------------------------------------

    @staticmethod
    def _polled(config: Config) -> dict[str, tuple[InstanceConfig, ResourceConfig]]:
        return {resource_key(i, r): (i, r) for i, r in config.resources() if i.polled}

    def _host(self, key: str) -> str:
        host = self._hosts.get(key)
        if host is None:
            pair = self.resources.get(key)
            host = self._hosts[key] = templates.origin(pair[1].url) if pair is not None else ""
        return host

    @staticmethod
    def _slots(config: Config) -> Slots:
        active = max(1, config.engine.max_concurrent_polls)
        return Slots(active, max(MIN_WAITING, WAITING_PER_SLOT * active))

    def _mono_at(self, when: datetime, now: datetime) -> float:
        """The monotonic time of the wall-clock instant ``when`` (``now`` being the wall clock now)."""
        return self.mono() + (when - now).total_seconds()

    def _plan_all(self, now: datetime) -> None:
        """Every resource's first run, from one read of the state file; the resources the file
        knows but the configuration does not are marked removed (kept, paused)."""
        states = {s.key: s for s in self.store.resource_states()}
        self._write(lambda: self.store.mark_removed(
            [k for k, s in states.items() if k not in self.resources and s.removed_ms is None], now_ms=to_ms(now)),
            "marking removed resources")
        self._write(lambda: self.store.resume(
            [k for k in self.resources if k in states and states[k].removed_ms is not None]), "resuming resources")
        plans = self._first_runs(self.resources.keys(), states, now)
        self.dispatcher.plan_many((key, self._mono_at(when, now)) for key, when in plans)

    def _first_runs(self, keys: object, states: Mapping[str, ResourceState],
                    now: datetime, *, running: bool = False) -> list[tuple[str, datetime]]:
        """``running``: resources added while the daemon runs (a reload, the API): no start burst
        to soften, so they are spread only as far as the pool needs, and begin at once."""
        keys = list(keys)  # type: ignore[call-overload]
        rate = sum(1.0 / self.resources[k][0].refresh_interval_seconds for k in keys)
        overdue = 0
        for key in keys:
            state = states.get(key)
            interval = self.resources[key][0].refresh_interval_seconds
            if state is None or state.last_poll_ms is None or state.last_poll_ms + interval * 1000 <= to_ms(now):
                overdue += 1
        # spread at the steady rate, or at one poll a second per slot when that is faster
        window = start_window_s(overdue, max(rate, float(self.slots.active)))
        if running:
            window = overdue / max(rate, float(self.slots.active))
        plans = []
        for key in keys:
            state = states.get(key)
            instance = self.resources[key][0]
            interval = instance.refresh_interval_seconds
            last = from_ms(state.last_poll_ms) if state is not None and state.last_poll_ms is not None else None
            first = first_run(last, interval, now, self.random, window)
            if state is not None:
                if state.consecutive_failures:
                    self.failures[key] = state.consecutive_failures
                if state.next_due_ms is not None and from_ms(state.next_due_ms) > first:
                    # a backoff or Retry-After survives a restart, within what this version allows
                    first = min(from_ms(state.next_due_ms), now + timedelta(seconds=longest_wait_s(interval)))
            plans.append((key, first))
        return plans

    # -- polling --------------------------------------------------------------------------------

    async def _poll_job(self, key: str, due: float) -> None:
        pair = self.resources.get(key)
        if pair is None or self.stop.is_set():
            return  # removed by a reload since it was handed out, or stopping
        instance, resource = pair
        ticket = self.slots.ticket(self._host(key))
        try:
            async with ticket:
                if self.stop.is_set():  # stopping while this poll waited for a free slot
                    return
                started = self.mono()
                outcome = await self._poll(instance, resource, ticket)
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise
            return  # abandoned at shutdown (the dispatcher logs it): committed pages stay, the cursor did not move
        self._after_poll(key, instance, outcome, due, started)

    async def _poll(self, instance: InstanceConfig, resource: ResourceConfig, ticket: Ticket) -> PollOutcome:
        key = resource_key(instance, resource)
        assert self.clients is not None
        try:
            client = await self.clients.get(instance.api.verify_tls)
            outcome = await poll_resource(client, self.store, self.config.engine, instance, resource, self.clock(),
                                          sleep=ticket.sleep, wait=ticket.wait)
            if not self._quiet_flush_failing:  # (a quiet poll writes nothing: it proves no write works)
                self.store_health.ok()
            return outcome
        except asyncio.CancelledError:
            raise
        except StateError as exc:  # the state file: one line per kind of failure, no traceback
            self.store_health.failed(exc, key)
            return PollOutcome(key, ok=False, error=str(exc))
        except Exception as exc:  # the loop boundary: one resource never stops the others
            log.exception("poll.crashed", extra={"resource": key})
            error = f"{type(exc).__name__}: {exc}"
            self._write(lambda: self.store.fail_poll(key, instance.id, resource.name, now_ms=to_ms(self.clock()),
                                                     error=error, next_due_ms=None), key)
            return PollOutcome(key, ok=False, error=error)

    def _after_poll(self, key: str, instance: InstanceConfig, outcome: PollOutcome, due: float,
                    started: float) -> None:
        self.last_poll = (key, outcome.ok)
        self.housekeeping.summary.poll(key, ok=outcome.ok, events=outcome.events, duration_s=outcome.duration_s,
                                       late_s=max(0.0, started - due))
        if self.metrics is not None:
            self.metrics.observe_poll(instance.id, outcome.key.split("/", 1)[1], outcome, self.clock())
        if key not in self.resources or self.stop.is_set():
            return
        interval = self.resources[key][0].refresh_interval_seconds  # after a reload: the new interval
        if outcome.ok:
            self.failures.pop(key, None)
            self.dispatcher.plan(key, next_due(due, interval, self.mono()))
        else:
            failures = self.failures[key] = self.failures.get(key, 0) + 1
            now = self.clock()
            when = next_due_after_failure(now, failures, interval, outcome.retry_after)
            self._write(lambda: self.store.set_next_due(key, to_ms(when)), key)  # a restart keeps the backoff
            self.dispatcher.plan(key, self._mono_at(when, now))
            log.info("poll.backoff", extra={"resource": key, "failures": failures, "next": when.isoformat()})
        if outcome.notifications and self.delivery is not None:
            self.delivery.wake()
        self._status_soon()

    def _write(self, write: Callable[[], object], where: str) -> None:
        try:
            write()
        except StateError as exc:
            self.store_health.failed(exc, where)

    def _clock_jumped(self, seconds: float) -> None:
        if self.delivery is not None:  # the retry times moved in the outbox: read them again
            self.delivery.reread()

    # -- delivery -------------------------------------------------------------------------------

    async def _delivery_loop(self) -> None:
        """The delivery engine until the stop; a failure (the state file, say) never ends it: it is
        logged, and the engine starts again a little later."""
        assert self.delivery_client is not None
        self.delivery = DeliveryEngine(self.delivery_client, self.store, self.config, self.clock,
                                       random=self.random, on_result=self._delivered,
                                       before_sending=self.housekeeping.watch_clock)
        self.housekeeping.before_shift = self.delivery.flush
        while not self.stop.is_set():
            state_failed = False
            try:
                await self.delivery.run(self.stop)
                self.delivery_error = None
            except asyncio.CancelledError:
                raise
            except StateError as exc:
                self.store_health.failed(exc, "delivery")
                self.delivery_error = str(exc)
                state_failed = True
            except Exception as exc:
                log.exception("delivery.crashed")
                self.delivery_error = f"{type(exc).__name__}: {exc}"
            if not self.stop.is_set():
                self.delivery.reread()  # the outbox again after the trouble
                try:
                    await asyncio.wait_for(self.stop.wait(), DELIVERY_ERROR_BACKOFF_S)
                except asyncio.TimeoutError:
                    pass
                if state_failed:
                    # The engine starts again whole; whether the state file takes writes now is
                    # the store's to say (healthy() asks it), or /healthz would stay 503 and the
                    # watchdog unfed long after the disk has room again. (A crash stays until the
                    # restarted engine ends an attempt: a crashing one must not look healthy meanwhile.)
                    self.delivery_error = None

    def _delivered(self, result: DeliveryResult) -> None:
        self.delivery_error = None  # the engine started again after a crash delivers: it works
        if self.metrics is not None:
            instance_id, _, resource = result.resource_key.partition("/")
            self.metrics.observe_delivery(instance_id, resource, result)
        self._status_soon()

    async def _checkpoint_loop(self) -> None:
        """The state file's WAL checkpoints, every second in a worker thread (state.checkpoint:
        inside a commit on the loop they held it for a quarter of a second)."""
        try:
            checkpointer = self.store.take_over_checkpoints()
        except StateError as exc:
            self.store_health.failed(exc, "checkpoints")
            return
        try:
            while not self.stop.is_set():
                await asyncio.to_thread(checkpointer.run)
                await asyncio.sleep(CHECKPOINT_EVERY_S)
        finally:
            checkpointer.close()  # (waits for a checkpoint under way in its thread)

    async def _quiet_polls_loop(self) -> None:
        """The polls that changed nothing, written once a second in one transaction (see
        Store.finish_quiet_poll), and a last time when the daemon stops (the polls have ended)."""
        self.store.defer_quiet_polls = True
        try:
            while True:
                await asyncio.sleep(QUIET_POLLS_EVERY_S)
                self._flush_quiet_polls()
        finally:
            self.store.defer_quiet_polls = False
            self._flush_quiet_polls()

    def _flush_quiet_polls(self) -> None:
        try:
            written = self.store.flush_quiet_polls()
        except StateError as exc:  # kept for the next flush; health says it
            self._quiet_flush_failing = True
            self.store_health.failed(exc, "quiet polls")
            return
        if written and self._quiet_flush_failing:
            self._quiet_flush_failing = False
            self.store_health.ok()

    async def _gauges_loop(self) -> None:
        """The outbox gauges of /metrics, counted every few seconds (one query over the outbox)."""
        while self.metrics is not None and not self.stop.is_set():
            try:
                by_key = self.store.open_counts_by_resource()
                self.metrics.set_outbox(_totals(by_key), by_resource={
                    tuple(key.split("/", 1)): counts for key, counts in by_key.items()})  # type: ignore[misc]
            except StateError:
                pass  # health says it
            await asyncio.sleep(GAUGES_EVERY_S)

    # -- reload ---------------------------------------------------------------------------------

    def _reload_soon(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self.reload())

    def _merged(self, file_config: Config) -> Config:
        """The file's instances and those created through the management API (DESIGN §11)."""
        from poller.config.apibody import ApiBody, merge

        try:
            if file_config.engine.api is not None and self.store.writer:
                # the file's instances are numbered first, in file order (their ids in the API)
                self.store.instance_numbers([i.id for i in file_config.instances])
            rows = self.store.api_instances()
        except StateError as exc:
            self.store_health.failed(exc, "api instances")
            return file_config
        if not rows:
            return file_config
        merged, problems = merge(file_config, [ApiBody(r.number, r.body, r.token, r.enabled, r.deleted_ms is not None)
                                               for r in rows])
        for number, problem in sorted(problems.items()):
            log.error("api.instance_not_loaded", extra={"instance": number, "problems": problem})
        return merged

    async def reload(self) -> bool:
        """Apply the configuration file again; an invalid one changes nothing."""
        self.notifier.reloading()
        try:
            loaded = load_config(self.config_path, self.environ)
        except ConfigLoadError as exc:
            log.error("config.reload_rejected", extra={"problems": "; ".join(exc.problems)})
            self.notifier.ready(self.status_line())
            return False
        self.file_config = loaded.config
        self.apply(self._merged(loaded.config), "config.reloaded")
        return True

    def apply(self, config: Config, event: str = "config.applied") -> None:
        """Run with ``config`` from now on: resources added are planned, removed ones paused (their
        state kept), callbacks, keys and tokens as configured now. A reload and every change made
        through the management API end here."""
        new = self._polled(config)
        old = self.resources
        now = self.clock()
        removed, added = sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())
        for key in removed:
            self.dispatcher.forget(key)
            self.failures.pop(key, None)
            if self.metrics is not None:
                self.metrics.forget(old[key][0].id, old[key][1].name)
        # kept, paused: a resource that comes back within engine.retention.removedDays resumes
        self._write(lambda: self.store.mark_removed(removed, now_ms=to_ms(now)), "reload")
        kept = sorted(old.keys() & new.keys())
        # A kept resource keeps its state, whatever else changed (its URL, its idField): DESIGN §9
        # identifies it by (instance id, resource name), as a restart does. (Forgetting it at a
        # changed URL path missed every change made since its last poll; a new name starts afresh.)
        # A new interval (a PATCH, a reload) applies now, counted from the last poll.
        retimed = [k for k in kept if old[k][0].refresh_interval_seconds != new[k][0].refresh_interval_seconds]
        previous = self.config.engine
        self.config = config
        self.resources = new
        self._hosts.clear()  # (a URL may have moved to another host)
        if added:
            self._write(lambda: self.store.resume(added), "reload")
        if added or retimed:
            states = {s.key: s for s in self.store.resource_states()}
            for key, when in self._first_runs(added + retimed, states, now, running=True):
                self.dispatcher.plan(key, self._mono_at(when, now))
        if self._slots(config).active != self.slots.active:
            log.warning("config.restart_needed", extra={"key": "engine.maxConcurrentPolls",
                                                        "note": "takes effect when the daemon restarts"})
        for key, before, after in (("engine.listen", previous.listen, config.engine.listen),
                                   ("engine.webhooks.listen", previous.webhooks.listen,
                                    config.engine.webhooks.listen)):
            if before != after:
                log.warning("config.restart_needed", extra={"key": key, "note": "takes effect when the daemon restarts"})
        if previous.state_path != config.engine.state_path:
            # silently, the next start (without --state) would open another file: a new baseline for
            # every resource, and this file's outbox left behind
            log.warning("config.restart_needed", extra={
                "key": "engine.statePath", "state": self.store.path,
                "note": "this daemon keeps its state file; a start without --state would open the new path, "
                        "where none of this file's cursors or pending notifications are: move the file there "
                        "while the daemon is stopped"})
        if self.receiver is not None:
            self._refresh_tokens()
        log.info(event, extra={"added": added, "removed": removed, "kept": len(old.keys() & new.keys())})
        freeze_long_lived()  # the new configuration lives until the next reload
        self.notifier.ready(self.status_line())
        if self.delivery is not None:
            self.delivery.configure(config)  # callback URLs, keys and limits as configured now
            self.delivery.wake()

    # -- health ---------------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        if not self.dispatcher.running:
            return False, "the poll dispatcher is not running"
        if self.delivery_task is not None and self.delivery_task.done():
            return False, "the delivery loop has stopped"
        if self.delivery_error is not None:
            return False, f"delivery: {self.delivery_error}"
        try:
            self.store.check_writable()
        except StateError as exc:
            return False, f"the state file cannot be written: {exc}"
        lag = self.housekeeping.lag_problem()
        if lag is not None:
            return False, lag
        return True, "ok"

    async def _watchdog_loop(self) -> None:
        """The health check, for systemd's watchdog (WATCHDOG_USEC) when there is one, and for the
        log either way: without a watchdog, ``daemon.unhealthy`` once when health fails (a state
        file deleted under the daemon, a full disk...) and ``daemon.healthy_again`` when it
        recovers; with one, ``daemon.unhealthy`` at every check that fails, as systemd sees it."""
        interval = watchdog_interval(self.environ, os.getpid())
        was_ok = True
        while not self.stop.is_set():
            ok, reason = self.healthy()
            if ok:
                if interval is not None:
                    self.notifier.watchdog()
                if not was_ok:
                    log.info("daemon.healthy_again")
            elif interval is not None or was_ok:
                log.error("daemon.unhealthy", extra={"reason": reason})
            was_ok = ok
            await asyncio.sleep(interval if interval is not None else HEALTH_EVERY_S)

    def _status_soon(self) -> None:
        """STATUS= for systemd at most every STATUS_INTERVAL_S: rebuilding it after each of
        thousands of polls cost the daemon 15 % of its time (bench/fanout.py)."""
        now = time.monotonic()
        if self.notifier.enabled and now - self._status_sent >= STATUS_INTERVAL_S:
            self._status_sent = now
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        failed = len(self.failures.keys() & self.resources.keys())
        try:
            counts = _totals(self.store.open_counts_by_resource())
        except StateError:
            counts = {}
        last = ""
        if self.last_poll is not None:
            key, ok = self.last_poll
            last = f"; last poll {key} {'ok' if ok else 'failed'}"
        return (f"{len(self.resources)} resources ({failed} failing){last}; "
                f"{counts.get('pending', 0)} notifications pending, {counts.get('dead', 0)} dead")
