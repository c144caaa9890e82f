"""When each resource is polled: pure timing rules. They take ``now`` and a random source as
arguments (tested under freezegun); poller.daemon.dispatch carries them out.

* the first poll after a start runs at ``last poll + interval`` when that is still ahead,
  else now plus a jitter (thousands of resources must not fire in the same second, and a
  restart must neither poll everything at once nor wait a whole interval): up to
  ``min(interval, 30 s)``, or longer when more resources are overdue than the steady polling
  rate works off in 30 s (:func:`start_window_s`);
* after a poll, the next one is due an interval after the one that just ran was due; a poll
  that ran late by more than an interval is not repeated for every run it missed
  (:func:`next_due`);
* a failing resource backs off: after ``n`` consecutive failures the next poll waits
  ``interval * 2**(n-1)``, at most 8 intervals, and never before the provider's Retry-After.
"""

from __future__ import annotations

import logging
import math
import random as _random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from poller.httpclient import retry_after_cap_s

__all__ = ["MAX_START_JITTER_S", "MAX_BACKOFF_INTERVALS", "backoff_delay_s", "first_run", "longest_wait_s",
           "next_due", "next_due_after_failure", "start_window_s"]

log = logging.getLogger(__name__)
UTC = timezone.utc
MAX_START_JITTER_S = 30.0
MAX_BACKOFF_INTERVALS = 8


def first_run(last_poll: datetime | None, interval_s: float, now: datetime,
              random: Callable[[], float] = _random.random, window_s: float = MAX_START_JITTER_S) -> datetime:
    """The first poll of a resource after the daemon starts (or after it is added)."""
    if last_poll is not None:
        due = last_poll + timedelta(seconds=interval_s)
        if due > now:
            return due
    return now + timedelta(seconds=random() * min(interval_s, window_s))


def start_window_s(overdue: int, polls_per_s: float) -> float:
    """Over how long the resources due at a start are spread: 30 s, or as long as the polling
    rate (``polls_per_s``: the steady rate, the sum of 1 / interval) needs for ``overdue`` polls, so that a
    restart after a long stop, or the very first start of 100,000 resources, asks no more of
    the providers and of the pool than the steady state does. (first_run caps it at each
    resource's interval.)"""
    if overdue <= 0 or polls_per_s <= 0:
        return MAX_START_JITTER_S
    return max(MAX_START_JITTER_S, overdue / polls_per_s)


def next_due(due: float, interval_s: float, now: float) -> float:
    """The next run after the one due at ``due`` (any clock, seconds): an interval later, or, for
    a poll that ran late by more than an interval, the first point of that grid after ``now``."""
    following = due + interval_s
    if following > now:
        return following
    return due + math.ceil((now - due) / interval_s + 1e-9) * interval_s


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
