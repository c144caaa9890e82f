"""Telling systemd how the daemon is doing: the sd_notify(3) protocol, without a dependency.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or an abstract socket name starting
with ``@``) to a ``Type=notify`` service; the service sends it datagrams of ``KEY=VALUE``
lines. We send:

* ``READY=1`` (with ``STATUS=``) once scheduling runs, and again after each reload, accepted
  or not, to end the reload;
* ``STATUS=<one line>`` as polls complete;
* ``WATCHDOG=1`` every ``watchdog_interval()`` seconds while the scheduler and store are healthy;
* ``RELOADING=1`` + ``MONOTONIC_USEC=`` on SIGHUP (what ``Type=notify-reload``, systemd >= 253,
  expects; harmless for ``Type=notify``);
* ``STOPPING=1`` on SIGTERM/SIGINT.

Without ``NOTIFY_SOCKET`` nothing is sent and every call returns False. A missing or closed
socket never raises: the send returns False and a :class:`Notifier` logs one warning. Each
send opens and closes its own socket, as sd_notify() does, so nothing needs closing.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "notify", "ready", "reloading", "status", "stopping", "watchdog", "watchdog_interval"]

log = logging.getLogger(__name__)

_SEND_TIMEOUT_S = 1.0  # a full receive queue must not hang the daemon; systemd's is large


def _address(value: str) -> str | None:
    """The AF_UNIX address for ``NOTIFY_SOCKET``: a path, or ``@name`` -> ``\\0name``; else None."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None  # relative paths and vsock: addresses (systemd >= 254) are not supported


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Notifier:
    """The daemon's link to systemd for its whole life: ``Notifier(os.environ).ready("3 resources")``.

    Reads ``NOTIFY_SOCKET`` once, at construction. Logs ``systemd.notify_failed`` once per
    notifier, however many sends fail after it (the watchdog pings every few seconds).
    """

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.socket_name = environ.get("NOTIFY_SOCKET") or None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    def notify(self, state: str) -> bool:
        """Send ``state`` (``KEY=VALUE`` lines) in one datagram; True when it was sent."""
        if self.socket_name is None:
            return False
        address = _address(self.socket_name)
        if address is None:
            self._warn("unsupported NOTIFY_SOCKET address")
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(_SEND_TIMEOUT_S)
                sock.sendto(state.encode("utf-8"), address)
        except OSError as exc:
            self._warn(f"{type(exc).__name__}: {exc}")
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def _warn(self, error: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("systemd.notify_failed", extra={"socket": self.socket_name, "error": error})

    def __repr__(self) -> str:
        return f"Notifier(socket_name={self.socket_name!r})"


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send one message to ``$NOTIFY_SOCKET``. False (and nothing sent) when it is unset or the
    send failed. A one-shot :class:`Notifier`: a long-lived caller should keep its own."""
    return Notifier(environ).notify(state)


def ready(status: str | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    return Notifier(environ).ready(status)


def status(text: str, environ: Mapping[str, str] = os.environ) -> bool:
    return Notifier(environ).status(text)


def watchdog(environ: Mapping[str, str] = os.environ) -> bool:
    return Notifier(environ).watchdog()


def reloading(environ: Mapping[str, str] = os.environ) -> bool:
    return Notifier(environ).reloading()


def stopping(environ: Mapping[str, str] = os.environ) -> bool:
    return Notifier(environ).stopping()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, when that is a positive
    integer and ``WATCHDOG_PID`` is unset or ``pid``; else None (no watchdog for us). Pure."""
    usec = _unsigned(environ.get("WATCHDOG_USEC"))
    if not usec:
        return None
    if "WATCHDOG_PID" in environ and _unsigned(environ["WATCHDOG_PID"]) != pid:
        return None
    return usec / 2 / 1e6


def _unsigned(value: str | None) -> int | None:
    """A decimal number as systemd writes it; None for anything else (no signs, spaces or ``_``)."""
    return int(value) if value is not None and re.fullmatch(r"[0-9]+", value) else None
