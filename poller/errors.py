"""The exception tree of poller. Every message makes sense alone in a log line.

    PollerError
     +-- DateFormatError (also ValueError)  a Java date pattern or a date text is wrong
     +-- ConfigError                        a configuration file is wrong (carries every problem)
     +-- FetchError                         a provider request failed (resource, url, status)
     +-- DetectError                        a record could not be judged (resource, record id)
     +-- DeliveryError                      a notification could not be delivered (event id, url)

    state.StateError (not a PollerError: the state package never imports poller) is raised when
    the state file cannot be used (locked, corrupt, too new); the CLI catches both.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "PollerError",
    "DateFormatError",
    "ConfigError",
    "FetchError",
    "DetectError",
    "DeliveryError",
]


class PollerError(Exception):
    """Base class of every error poller raises on purpose."""


class DateFormatError(PollerError, ValueError):
    """A Java date pattern is invalid, or a text does not match it.

    ``pattern`` is the pattern, ``text`` the text being parsed (``None`` when the
    pattern itself is wrong) and ``position`` the 0-based index where it failed.
    """

    def __init__(self, reason: str, *, pattern: str, text: str | None = None, position: int = 0) -> None:
        self.reason = reason
        self.pattern = pattern
        self.text = text
        self.position = position
        if text is None:
            message = f"invalid date pattern {pattern!r}: {reason} at position {position}"
        else:
            message = f"cannot parse {text!r} with pattern {pattern!r}: {reason} at position {position}"
        super().__init__(message)


class ConfigError(PollerError):
    """A configuration is invalid. ``problems`` holds every message, each naming file and JSON path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid configuration")


class FetchError(PollerError):
    """A provider request failed. ``url`` must already have its secrets masked.

    ``retry_after`` (aware UTC) is set when the provider asked us to wait longer than we wait
    inline: the resource should not be polled again before then.
    """

    def __init__(self, resource: str, url: str, reason: str, *, status: int | None = None,
                 retry_after: datetime | None = None) -> None:
        self.resource = resource
        self.url = url
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        where = f"HTTP {status} from {url}" if status is not None else url
        super().__init__(f"{resource}: {where}: {reason}")


class DetectError(PollerError):
    """A record could not be judged."""

    def __init__(self, resource: str, record_id: str | None, reason: str) -> None:
        self.resource = resource
        self.record_id = record_id
        self.reason = reason
        super().__init__(f"{resource}: record {record_id!r}: {reason}")


class DeliveryError(PollerError):
    """A notification could not be delivered."""

    def __init__(self, notification_id: str, url: str, reason: str, *, status: int | None = None) -> None:
        self.notification_id = notification_id
        self.url = url
        self.status = status
        self.reason = reason
        super().__init__(f"notification {notification_id} to {url}: {reason}")
