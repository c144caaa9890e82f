"""Signals that arrive while ``poller run`` starts, before the daemon's own handlers exist.

Importing the configuration, opening the state file and starting the event loop take a few
hundred milliseconds. A SIGHUP in that time would kill the process (its default), and a
SIGTERM would end it by the signal instead of a clean exit 0. So the CLI installs these
handlers first of all, before its other imports; they only remember what was asked, and the
daemon acts on it as soon as it runs: a stop stops it at once, a reload reloads.
"""

from __future__ import annotations

import signal

__all__ = ["Requests", "install"]


class Requests:
    """What was asked before the daemon could answer: ``stop`` and ``reload`` (flags)."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop = True

    def _on_reload(self, signum: int, frame: object) -> None:
        self.reload = True


requests = Requests()


def install() -> Requests:
    signal.signal(signal.SIGTERM, requests._on_stop)
    signal.signal(signal.SIGINT, requests._on_stop)
    signal.signal(signal.SIGHUP, requests._on_reload)
    return requests
