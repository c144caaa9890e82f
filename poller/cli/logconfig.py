"""Logging for the command line: one line per event, with a fixed event name and its fields.

Library modules log ``log.info("poll.done", extra={...})``; only the CLI calls :func:`setup`.
httpx and httpcore are quietened to WARNING: they log every request URL (query tokens included).
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import datetime, timezone

__all__ = ["setup", "TextFormatter", "JsonFormatter"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _stamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2024-03-01T10:00:00.123Z INFO poll.done resource=crm/contacts events=3``"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_stamp(record), record.levelname, record.getMessage()]
        parts += [f"{k}={_text(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, logger and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {"time": _stamp(record), "level": record.levelname, "event": record.getMessage(),
                                   "logger": record.name}
        data.update(_fields(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or "=" in text or not text) else text


def setup(fmt: str = "text", level: str = "INFO") -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": JsonFormatter if fmt == "json" else TextFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main", "stream": sys.stderr}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # httpx logs every URL (tokens included)
        "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
    })
