"""What the daemon does beside polling and delivering, on a one-second tick:

* the event loop's lag (how late the tick wakes up): /healthz and the watchdog report a loop
  that was blocked;
* wall-clock jumps (NTP stepping the clock, a VM resumed): the wall clock minus the monotonic
  clock changes at once. Polls are planned on the monotonic clock and do not care; the due
  times kept in the state file (retries, backoffs) are moved by the jump, so that a jump back
  neither stalls them for its length nor a jump ahead fires them all;
* retention (engine.retention), in small batches, and the space it frees given back;
* one INFO summary line a minute (polls, events, failures, the slowest resource), since a poll
  that changed nothing logs at DEBUG only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from poller.config import RetentionConfig
from poller.javadate.zone import to_ms
from poller.loopturn import turn
from state import StateError, Store

__all__ = ["CLOCK_JUMP_S", "LAG_UNHEALTHY_S", "Housekeeping", "Summary"]

log = logging.getLogger(__name__)
TICK_S = 1.0
CLOCK_JUMP_S = 5.0  # a change of wall minus monotonic larger than this is a jump
LAG_UNHEALTHY_S = 5.0  # a tick this late means the loop was blocked: unhealthy for a while
LAG_MEMORY_S = 30.0
SUMMARY_EVERY_S = 60.0
RETENTION_EVERY_S = 60.0
RETENTION_BATCHES = 20  # at most this many batches a round; the rest waits for the next
PRUNE_BATCH = 500  # rows of each kind per retention transaction
DAY_MS = 86_400_000


@dataclass
class Summary:
    """What the polls did since the last summary line."""

    polls: int = 0
    events: int = 0
    failures: int = 0
    slowest: tuple[float, str] = (0.0, "")
    late: float = 0.0  # the largest lateness (s): due to started

    def poll(self, key: str, *, ok: bool, events: int, duration_s: float, late_s: float) -> None:
        self.polls += 1
        self.events += events
        self.failures += not ok
        if duration_s > self.slowest[0]:
            self.slowest = (duration_s, key)
        self.late = max(self.late, late_s)


@dataclass
class Housekeeping:
    store: Store
    clock: Callable[[], datetime]
    retention: Callable[[], RetentionConfig]
    on_clock_jump: Callable[[float], None]
    mono: Callable[[], float] = time.monotonic
    # what must reach the state file before the due times move (the delivery engine's attempts
    # not yet recorded: their retry times belong to the timeline before the jump)
    before_shift: Callable[[], None] | None = None
    # a failed write (the daemon logs one line per kind of failure and counts it in health)
    on_write_failure: Callable[[StateError, str], None] | None = None
    # engine.webhooks.dedupeHours: inbound event ids are kept at least this long (and as long as
    # the requests themselves, so that replaying a kept request never announces its events again)
    dedupe_hours: Callable[[], float] = lambda: 24.0
    # (resources due and waiting for a worker or their host's turn, the longest such wait in s):
    # max_late_s says how late the polls that started were, this what has not started yet
    overdue: Callable[[], tuple[int, float]] = lambda: (0, 0.0)
    summary: Summary = field(default_factory=Summary)
    blocked: tuple[float, float] | None = None  # (when, how long) the loop was last blocked
    _offset: float | None = None

    def retention_every_s(self) -> float:
        """Every minute, or four times per the shortest retention when that is shorter (a test
        keeping seconds' worth)."""
        r = self.retention()
        shortest = min(r.delivered_days, r.dead_days, r.inbound_days, r.removed_days) * 86_400
        return max(TICK_S, min(RETENTION_EVERY_S, shortest / 4))

    def lag_problem(self) -> str | None:
        """Why health should fail because of the loop, or None."""
        if self.blocked is None:
            return None
        when, lag = self.blocked
        if self.mono() - when > LAG_MEMORY_S:
            return None
        return f"the event loop was blocked for {lag:.1f} s (in the last {LAG_MEMORY_S:g} s)"

    async def run(self) -> None:
        last_summary = last_retention = self.mono()
        while True:
            before = self.mono()
            await asyncio.sleep(TICK_S)
            now = self.mono()
            lag = now - before - TICK_S
            if lag > LAG_UNHEALTHY_S:
                self.blocked = (now, lag)
                log.error("daemon.loop_blocked", extra={"seconds": round(lag, 1)})
            self.watch_clock()
            if now - last_summary >= SUMMARY_EVERY_S:
                self.log_summary(now - last_summary)
                last_summary = now
            if now - last_retention >= self.retention_every_s():
                last_retention = now
                await self.prune()

    def watch_clock(self) -> float | None:
        """The jump of the wall clock since the last look (seconds), or None."""
        offset = self.clock().timestamp() - self.mono()
        previous, self._offset = self._offset, offset
        if previous is None or abs(offset - previous) <= CLOCK_JUMP_S:
            return None
        jump = offset - previous
        log.warning("daemon.clock_jump", extra={"seconds": round(jump, 3)})
        try:
            if self.before_shift is not None:
                self.before_shift()
            # the due times planned before the jump, moved with it
            moved = self.store.shift_due_times(int(jump * 1000), after_ms=to_ms(self.clock()) - int(jump * 1000))
            log.info("daemon.due_times_moved", extra={"rows": moved, "seconds": round(jump, 3)})
        except StateError as exc:
            self._write_failed(exc, "moving due times")
        self.on_clock_jump(jump)
        return jump

    def _write_failed(self, exc: StateError, where: str) -> None:
        if self.on_write_failure is not None:
            self.on_write_failure(exc, where)
        else:
            log.error("state.write_failed", extra={"where": where, "error": str(exc)})

    def log_summary(self, seconds: float) -> None:
        s, self.summary = self.summary, Summary()
        overdue, longest = self.overdue()
        extra: dict[str, object] = {"seconds": round(seconds), "polls": s.polls, "events": s.events,
                                    "failures": s.failures, "max_late_s": round(s.late, 3), "overdue": overdue,
                                    "longest_wait_s": round(longest, 3)}
        if s.slowest[1]:
            extra["slowest"] = s.slowest[1]
            extra["slowest_s"] = round(s.slowest[0], 3)
        log.info("daemon.summary", extra=extra)

    async def prune(self) -> tuple[int, int]:
        """One round of retention: batches with a yield between each, then space given back."""
        r = self.retention()
        now_ms = to_ms(self.clock())
        total = [0, 0, 0]
        try:
            for _ in range(RETENTION_BATCHES):
                notes, resources = self.store.prune(
                    now_ms=now_ms, delivered_before_ms=now_ms - int(r.delivered_days * DAY_MS),
                    dead_before_ms=now_ms - int(r.dead_days * DAY_MS),
                    removed_before_ms=now_ms - int(r.removed_days * DAY_MS), limit=PRUNE_BATCH)
                inbound = self.store.prune_inbound(
                    requests_before_ms=now_ms - int(r.inbound_days * DAY_MS),
                    events_before_ms=now_ms - int(max(r.inbound_days * DAY_MS, self.dedupe_hours() * 3_600_000)),
                    limit=PRUNE_BATCH)
                total[0] += notes
                total[1] += resources
                total[2] += inbound
                await turn()
                if notes < PRUNE_BATCH and resources < PRUNE_BATCH and inbound < PRUNE_BATCH:
                    break
            for _ in range(50):  # 1,000 pages a step, with yields, until nothing is left free
                if not self.store.give_space_back(1000):
                    break
                await turn()
        except StateError as exc:
            self._write_failed(exc, "retention")
        if any(total):
            log.info("retention.pruned", extra={"notifications": total[0], "resources": total[1],
                                                "inbound": total[2]})
        return total[0], total[1]
