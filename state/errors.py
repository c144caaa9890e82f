"""The one error of :mod:`state`; ``poller.errors.StateError`` is this same class."""

from __future__ import annotations

__all__ = ["StateError"]


class StateError(Exception):
    """The state file cannot be used: missing, locked by another process, too new, or broken.

    The message names the file, so it makes sense alone in a log line.
    """
