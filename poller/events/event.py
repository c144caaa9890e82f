"""The normalised event: one version of one record, and its stable id. Pure.

An event's id is a UUID derived from (instance id, resource, object id, version), stable
forever (DESIGN.md §9), so that a change found again after a crash, or by a retried request,
carries the same id and receivers can drop the repeat.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

__all__ = ["CREATED", "UPDATED", "Event", "EventIds", "event_id", "uuid5_text"]

CREATED = "CREATED"
UPDATED = "UPDATED"
_EVENT_NAMESPACE = uuid.UUID("6f0f7c2e-3c1a-5b8e-9d4a-0c6b2f1e9a77")
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def uuid5_text(sha1_hex: str) -> str:
    """``str(uuid.uuid5(...))`` from the SHA-1 hex digest of namespace + name (version and variant
    bits set as RFC 4122 says), without building UUID objects: detection makes thousands per page."""
    x = sha1_hex
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


class Event(NamedTuple):
    id: str
    object_id: str
    event_type: str
    version: str
    stamp_ms: int  # the record's stamp; for hash versions, the poll's start
    record: Any


def event_id(instance_id: str, resource: str, object_id: str, version: str) -> str:
    """A UUID that names one version of one record, stable forever: uuid5 of the four parts."""
    return EventIds(instance_id, resource)(object_id, version)


class EventIds:
    """uuid5 ids for one resource, hashing the shared prefix once (the same ids, 3x cheaper)."""

    __slots__ = ("_prefix",)

    def __init__(self, instance_id: str, resource: str) -> None:
        self._prefix = hashlib.sha1(_EVENT_NAMESPACE.bytes + f"{instance_id}\x1f{resource}\x1f".encode())

    def __call__(self, object_id: str, version: str) -> str:
        h = self._prefix.copy()
        h.update(f"{object_id}\x1f{version}".encode())
        x = h.hexdigest()  # the first 32 hex digits are the UUID's 16 bytes
        # byte 6's high nibble (digit 12) becomes 5 (version 5); byte 8's top bits (digit 16) 10 (RFC 4122)
        return uuid5_text(x)

    def many(self, items: Iterable[Sequence[Any]]) -> list[str]:
        """The ids of many versions at once, each item starting with (object id, version): a
        page's thousands, or a webhook batch's, in one loop."""
        copy = self._prefix.copy
        out: list[str] = []
        append = out.append
        for item in items:
            h = copy()
            h.update(f"{item[0]}\x1f{item[1]}".encode())
            append(uuid5_text(h.hexdigest()))
        return out
