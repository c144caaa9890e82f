"""Pausing the cyclic garbage collector around work that allocates much and creates no cycles.

Decoding a page and judging it allocate tens of thousands of dicts, lists and tuples that
reference counting frees; none forms a cycle. The cyclic collector, triggered every 700
allocations, would walk them again and again for nothing (3-5 ms of a 10,000-record page,
more in a daemon holding a large configuration). Paused, the collections happen after the
work, over what survived it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "freeze_long_lived"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block, if it is enabled, and enable it again after.

    Only around synchronous code: across an ``await``, other tasks would run with it paused."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def freeze_long_lived() -> None:
    """Move every object alive now out of the cyclic collector's sight (``gc.freeze``).

    A daemon's configuration and schedule for 100,000 resources are millions of objects that
    live as long as it does; each full collection walked all of them again, holding the event
    loop 0.3 s every 14 s (bench/fanout.py). Reference counting still frees them when a reload
    drops them; only cycles among them would stay, and a configuration has none."""
    gc.freeze()
