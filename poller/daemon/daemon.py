"""`poller run`: the process lifetime. Open the store, schedule every resource, deliver beside
it, answer signals (SIGTERM/SIGINT stop, SIGHUP reloads), and keep systemd informed.

No business rules live here: polls are :func:`poller.poll.engine.poll_resource`, deliveries
:func:`poller.deliver.sender.deliver_due`, timing :mod:`poller.daemon.schedule`. This is the one place (with
the CLI) that reads the clock.
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

import httpx

from poller.config import Config, ConfigLoadError, InstanceConfig, ResourceConfig, load_config
from poller.daemon.schedule import PollScheduler, first_run, longest_wait_s, next_due_after_failure
from poller.daemon.systemd import Notifier, watchdog_interval
from poller.deliver.sender import deliver_due
from poller.errors import PollerError
from poller.httpclient import HttpClients
from poller.javadate.zone import from_ms, to_ms
from poller.poll.engine import PollOutcome, poll_resource, resource_key
from state import Store

__all__ = ["Daemon", "ListenError"]

log = logging.getLogger(__name__)
UTC = timezone.utc
MAX_DELIVERY_SLEEP_S = 60.0
STATUS_INTERVAL_S = 2.0
DELIVERY_ERROR_BACKOFF_S = 5.0
# of engine.shutdownTimeoutSeconds, kept after draining the polls for closing clients, the store and
# the process, so that the whole stop fits in the timeout
SHUTDOWN_RESERVE_S = 0.5


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


@dataclass
class _Health:
    store_ok: bool = True
    store_error: str | None = None
    delivery_error: str | None = None
    last_outcomes: dict[str, PollOutcome] = field(default_factory=dict)


class Daemon:
    def __init__(self, config_path: str, config: Config, store: Store, *, environ: Mapping[str, str] = os.environ,
                 clock: Callable[[], datetime] = _utc_now, random: Callable[[], float] = _random.random,
                 transport: httpx.AsyncBaseTransport | None = None, early: StartRequests | None = None) -> None:
        self.config_path = config_path
        self.early = early
        self.config = config
        self.store = store
        self.environ = environ
        self.clock = clock
        self.random = random
        self.transport = transport
        self.resources = self._polled(config)
        self.scheduler = PollScheduler(self._poll_job)
        self.limit_size = max(1, config.engine.max_concurrent_polls)
        self.limit = asyncio.Semaphore(self.limit_size)
        self.stop = asyncio.Event()
        self.wake_delivery = asyncio.Event()
        self.inflight: set[asyncio.Task] = set()
        self.health = _Health()
        self.notifier = Notifier(environ)
        self.clients: HttpClients | None = None
        self._reloading: asyncio.Task | None = None
        self.delivery_task: asyncio.Task | None = None
        self.failing: set[str] = set()
        self._status_sent = -STATUS_INTERVAL_S
        self.metrics = None
        self.http = None

    # -- lifetime -------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
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
                self.clients = HttpClients(stack, self.transport)
                await self._start_observability(stack)
                self.scheduler.start()
                now = self.clock()
                for key, (instance, _) in self.resources.items():
                    self._schedule(key, instance, now)
                self.delivery_task = asyncio.create_task(self._delivery_loop(), name="delivery")
                tasks = [self.delivery_task, asyncio.create_task(self._watchdog_loop(), name="watchdog")]
                self.notifier.ready(self.status_line())
                log.info("daemon.started", extra={"resources": len(self.resources), "state": str(self.store.path)})
                await self.stop.wait()
                self.notifier.stopping()
                log.info("daemon.stopping")
                # pause, not shutdown: APScheduler's asyncio executor cancels running jobs on shutdown,
                # so the in-flight polls would be abandoned at once instead of being given the time
                self.scheduler.pause()
                timeout = self.config.engine.shutdown_timeout_seconds
                await self._drain(max(0.0, timeout - min(SHUTDOWN_RESERVE_S, timeout / 4)))
                self.scheduler.shutdown()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("daemon.stopped")
        return 0

    async def _start_observability(self, stack: AsyncExitStack) -> None:
        listen = self.config.engine.listen
        if listen is None:
            return
        from poller.daemon.httpserver import MetricsServer
        from poller.daemon.metrics import Metrics

        self.metrics = Metrics()
        self.http = MetricsServer(self.metrics, self.healthy)
        try:
            await self.http.start(*listen)
        except OSError as exc:
            raise ListenError(f"cannot listen on {listen[0]}:{listen[1]} (engine.listen): {exc.strerror or exc}") from exc
        stack.push_async_callback(self.http.close)
        log.info("daemon.listening", extra={"address": f"{listen[0]}:{self.http.port}"})

    async def _drain(self, timeout: float) -> None:
        """Let in-flight polls finish within the shutdown timeout; cancel the rest. A cancelled
        poll keeps the pages it committed and leaves its cursor where it was."""
        if self.inflight:
            done, pending = await asyncio.wait(set(self.inflight), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("daemon.polls_cancelled", extra={"count": len(pending)})
                await asyncio.gather(*pending, return_exceptions=True)

    # -- polling --------------------------------------------------------------------------------

    @staticmethod
    def _polled(config: Config) -> dict[str, tuple[InstanceConfig, ResourceConfig]]:
        return {resource_key(i, r): (i, r) for i, r in config.resources() if i.polled}

    def _schedule(self, key: str, instance: InstanceConfig, now: datetime) -> None:
        state = self.store.resource_state(key)
        interval = instance.refresh_interval_seconds
        last = from_ms(state.last_poll_ms) if state.last_poll_ms is not None else None
        first = first_run(last, interval, now, self.random)
        if state.next_due_ms is not None and from_ms(state.next_due_ms) > first:
            # a backoff or Retry-After survives a restart, within what this version allows
            first = min(from_ms(state.next_due_ms), now + timedelta(seconds=longest_wait_s(interval)))
        self.scheduler.add(key, interval, first)

    async def _poll_job(self, key: str) -> None:
        pair = self.resources.get(key)
        if pair is None or self.stop.is_set():
            return
        instance, resource = pair
        task = asyncio.current_task()
        try:
            async with self.limit:
                if self.stop.is_set():  # stopping while this poll waited for a free slot
                    return
                if task is not None:
                    self.inflight.add(task)
                try:
                    outcome = await self._poll(instance, resource)
                finally:
                    if task is not None:
                        self.inflight.discard(task)
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise
            # abandoned at shutdown (_drain logs it): the pages it committed stay, its cursor did not
            # move. Not re-raised: APScheduler would log the cancellation as a crashed job.
            return
        self.health.last_outcomes.pop(key, None)
        self.health.last_outcomes[key] = outcome  # the newest last
        if self.metrics is not None:
            self.metrics.observe_poll(instance.id, resource.name, outcome, self.clock())
        if not outcome.ok and key in self.resources:
            failures = self.store.resource_state(key).consecutive_failures
            due = next_due_after_failure(self.clock(), failures, instance.refresh_interval_seconds,
                                         outcome.retry_after)
            self.scheduler.postpone(key, due)
            self.store.set_next_due(key, to_ms(due))  # a restart keeps the backoff
            log.info("poll.backoff", extra={"resource": key, "failures": failures, "next": due.isoformat()})
        if outcome.notifications:
            self.wake_delivery.set()
        if not outcome.ok:
            self.failing.add(key)
        else:
            self.failing.discard(key)
        self._status_soon()

    async def _poll(self, instance: InstanceConfig, resource: ResourceConfig) -> PollOutcome:
        key = resource_key(instance, resource)
        assert self.clients is not None
        try:
            client = await self.clients.get(instance.api.verify_tls)
            outcome = await poll_resource(client, self.store, self.config.engine, instance, resource, self.clock())
            self.health.store_ok, self.health.store_error = True, None
            return outcome
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop boundary: one resource never stops the others
            log.exception("poll.crashed", extra={"resource": key})
            error = f"{type(exc).__name__}: {exc}"
            try:
                self.store.fail_poll(key, instance.id, resource.name, now_ms=to_ms(self.clock()), error=error,
                                     next_due_ms=None)
            except Exception as store_exc:
                self.health.store_ok, self.health.store_error = False, str(store_exc)
            return PollOutcome(key, ok=False, error=error)

    # -- delivery -------------------------------------------------------------------------------

    async def _delivery_loop(self) -> None:
        """Deliver, then sleep until the earliest retry or until a poll adds notifications. An
        error never ends the loop: it is logged, and the loop tries again a little later."""
        while not self.stop.is_set():
            self.wake_delivery.clear()
            assert self.clients is not None
            try:
                report = await deliver_due(await self.clients.get(True), self.store, self.config, self.clock,
                                           random=self.random)
                if self.metrics is not None:
                    for result in report.results:
                        instance_id, _, resource = result.resource_key.partition("/")
                        self.metrics.observe_delivery(instance_id, resource, result)
                    by_key = self.store.open_counts_by_resource()
                    self.metrics.set_outbox(_totals(by_key), by_resource={
                        tuple(key.split("/", 1)): counts for key, counts in by_key.items()})  # type: ignore[misc]
                if report.results:
                    self._status_soon()
                sleep = self._delivery_sleep()
                self.health.delivery_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("delivery.crashed")
                self.health.delivery_error = f"{type(exc).__name__}: {exc}"
                sleep = DELIVERY_ERROR_BACKOFF_S
            try:
                await asyncio.wait_for(self.wake_delivery.wait(), timeout=sleep)
            except asyncio.TimeoutError:
                pass

    def _delivery_sleep(self) -> float:
        """Until the earliest retry: a head that waits is either not due yet or held by a failed
        notification of its endpoint, which is itself a head that is not due yet."""
        now_ms = to_ms(self.clock())
        if self.store.due_notifications(now_ms):
            return 0.0  # something became due while the last pass ran
        heads = self.store.due_notifications(now_ms, everything=True)
        future = [h.next_attempt_ms for h in heads if h.next_attempt_ms is not None and h.next_attempt_ms > now_ms]
        if not future:
            return MAX_DELIVERY_SLEEP_S
        return max(0.05, min(MAX_DELIVERY_SLEEP_S, (min(future) - now_ms) / 1000))

    # -- reload ---------------------------------------------------------------------------------

    def _reload_soon(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self.reload())

    async def reload(self) -> bool:
        """Apply the configuration file again; an invalid one changes nothing."""
        self.notifier.reloading()
        try:
            loaded = load_config(self.config_path, self.environ)
        except ConfigLoadError as exc:
            log.error("config.reload_rejected", extra={"problems": "; ".join(exc.problems)})
            self.notifier.ready(self.status_line())
            return False
        new = self._polled(loaded.config)
        old = self.resources
        now = self.clock()
        for key in old.keys() - new.keys():
            self.scheduler.remove(key)
            self.store.forget_resource(key)  # its notifications stay; if it comes back: a baseline
            self.health.last_outcomes.pop(key, None)
            self.failing.discard(key)
            if self.metrics is not None:
                self.metrics.forget(old[key][0].id, old[key][1].name)
        for key in old.keys() & new.keys():
            self.scheduler.change_interval(key, new[key][0].refresh_interval_seconds, now)
        self.config = loaded.config
        self.resources = new
        for key in new.keys() - old.keys():
            self._schedule(key, new[key][0], now)
        if loaded.config.engine.max_concurrent_polls != self.limit_size:  # running polls keep the old one
            self.limit_size = max(1, loaded.config.engine.max_concurrent_polls)
            self.limit = asyncio.Semaphore(self.limit_size)
        log.info("config.reloaded", extra={"added": sorted(new.keys() - old.keys()),
                                           "removed": sorted(old.keys() - new.keys()), "kept": len(old.keys() & new.keys())})
        self.notifier.ready(self.status_line())
        self.wake_delivery.set()
        return True

    # -- health ---------------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "the scheduler is not running"
        if self.delivery_task is not None and self.delivery_task.done():
            return False, "the delivery loop has stopped"
        if not self._store_writable():
            return False, f"the state file cannot be written: {self.health.store_error}"
        return True, "ok"

    def _store_writable(self) -> bool:
        try:
            self.store.check_writable()
            self.health.store_ok = True
        except Exception as exc:
            self.health.store_ok, self.health.store_error = False, str(exc)
        return self.health.store_ok

    async def _watchdog_loop(self) -> None:
        interval = watchdog_interval(self.environ, os.getpid())
        if interval is None:
            return
        while not self.stop.is_set():
            ok, reason = self.healthy()
            if ok:
                self.notifier.watchdog()
            else:
                log.error("daemon.unhealthy", extra={"reason": reason})
            await asyncio.sleep(interval)

    def _status_soon(self) -> None:
        """STATUS= for systemd at most every STATUS_INTERVAL_S: rebuilding it after each of
        thousands of polls cost the daemon 15 % of its time (bench/fanout.py)."""
        now = time.monotonic()
        if self.notifier.enabled and now - self._status_sent >= STATUS_INTERVAL_S:
            self._status_sent = now
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        outcomes = self.health.last_outcomes
        failed = len(self.failing & self.resources.keys())
        counts = _totals(self.store.open_counts_by_resource())
        last = ""
        if outcomes:
            key, outcome = next(reversed(outcomes.items()))
            last = f"; last poll {key} {'ok' if outcome.ok else 'failed'}"
        return (f"{len(self.resources)} resources ({failed} failing){last}; "
                f"{counts.get('pending', 0)} notifications pending, {counts.get('dead', 0)} dead")
