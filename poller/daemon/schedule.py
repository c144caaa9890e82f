"""When each resource is polled: pure timing rules, and APScheduler 3.x wiring.

The rules take ``now`` and a random source as arguments (tested under freezegun):

* the first poll after a start runs at ``last poll + interval`` when that is still ahead,
  else now plus a jitter of up to ``min(interval, 30 s)`` (thousands of resources must not
  fire in the same second, and a restart must neither poll everything at once nor wait a
  whole interval);
* a failing resource backs off: after ``n`` consecutive failures the next poll waits
  ``interval * 2**(n-1)``, at most 8 intervals, and never before the provider's Retry-After.

Each resource is one interval job: UTC, ``max_instances=1`` (a poll never overlaps itself),
``coalesce=True`` (missed runs collapse into one) and ``misfire_grace_time=None`` (a late
poll runs late, it is never skipped). Misses and overlaps are logged.
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from poller.httpclient import retry_after_cap_s

__all__ = ["MAX_START_JITTER_S", "MAX_BACKOFF_INTERVALS", "PollScheduler", "backoff_delay_s", "first_run",
           "longest_wait_s", "next_due_after_failure"]

log = logging.getLogger(__name__)
UTC = timezone.utc
MAX_START_JITTER_S = 30.0
MAX_BACKOFF_INTERVALS = 8


def first_run(last_poll: datetime | None, interval_s: float, now: datetime,
              random: Callable[[], float] = _random.random) -> datetime:
    """The first poll of a resource after the daemon starts (or after it is added)."""
    if last_poll is not None:
        due = last_poll + timedelta(seconds=interval_s)
        if due > now:
            return due
    return now + timedelta(seconds=random() * min(interval_s, MAX_START_JITTER_S))


def backoff_delay_s(failures: int, interval_s: float) -> float:
    """The wait before the next poll after ``failures`` consecutive failures (0: the interval)."""
    if failures <= 0:
        return interval_s
    return interval_s * min(2 ** (failures - 1), MAX_BACKOFF_INTERVALS)


def longest_wait_s(interval_s: float) -> float:
    """The longest a resource may wait for its next poll after a failure: its longest backoff, or
    a provider's Retry-After capped (httpclient.retry_after_cap_s). A next due time in the state
    further ahead than this (left by an older version) is cut to it."""
    return max(interval_s * MAX_BACKOFF_INTERVALS, retry_after_cap_s(interval_s))


def next_due_after_failure(now: datetime, failures: int, interval_s: float,
                           retry_after: datetime | None = None) -> datetime:
    due = now + timedelta(seconds=backoff_delay_s(failures, interval_s))
    return max(due, retry_after) if retry_after is not None else due


class PollScheduler:
    """One APScheduler interval job per resource key; the job calls ``poll(key)``."""

    def __init__(self, poll: Callable[[str], Awaitable[None]]) -> None:
        self._poll = poll
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.intervals: dict[str, float] = {}

    def start(self) -> None:
        self.scheduler.start()

    def pause(self) -> None:
        """Start no new poll; the running ones go on (a graceful stop drains them, then shuts down)."""
        if self.scheduler.running:
            self.scheduler.pause()

    def shutdown(self) -> None:
        """Stop the scheduler. Its asyncio executor cancels the jobs still running: drain first."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def add(self, key: str, interval_s: float, first: datetime) -> None:
        self.intervals[key] = interval_s
        self.scheduler.add_job(
            self._poll, IntervalTrigger(seconds=interval_s, start_date=first, timezone=UTC), args=(key,),
            id=key, name=key, max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
            next_run_time=first,
        )

    def remove(self, key: str) -> None:
        self.intervals.pop(key, None)
        if self.scheduler.get_job(key) is not None:
            self.scheduler.remove_job(key)

    def change_interval(self, key: str, interval_s: float, now: datetime) -> None:
        """A changed interval applies from the next run: the one already planned stays."""
        job = self.scheduler.get_job(key)
        if job is None or self.intervals.get(key) == interval_s:
            return
        self.intervals[key] = interval_s
        planned = job.next_run_time or now
        job.modify(trigger=IntervalTrigger(seconds=interval_s, start_date=planned, timezone=UTC),
                   next_run_time=planned)

    def postpone(self, key: str, when: datetime) -> None:
        """Back off: the next poll of ``key`` is not before ``when``."""
        job = self.scheduler.get_job(key)
        if job is not None:
            job.modify(next_run_time=when)

    def next_run(self, key: str) -> datetime | None:
        job = self.scheduler.get_job(key)
        return job.next_run_time if job is not None else None

    def keys(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    @staticmethod
    def _on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("schedule.missed", extra={"resource": event.job_id})
        else:
            log.warning("schedule.still_running", extra={"resource": event.job_id})
