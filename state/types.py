"""The values that go in and out of the state store. Pure: no SQL here.

Every instant is an integer of epoch milliseconds (fields named ``*_ms``); callers convert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["ResourceState", "SeenVersion", "Notification", "OutboxEntry", "Attempt", "Pending", "AttemptResult",
           "OUTBOX_STATUSES", "INBOUND_OUTCOMES", "InboundRequest", "InboundWrite", "StoredRequest"]

OUTBOX_STATUSES = ("pending", "delivered", "dead")


@dataclass(frozen=True, slots=True)
class ResourceState:
    """What is remembered about one resource, keyed ``"{instance_id}/{resource_name}"``."""

    key: str
    cursor_ms: int | None = None
    last_poll_ms: int | None = None
    last_success_ms: int | None = None
    consecutive_failures: int = 0
    next_due_ms: int | None = None
    last_error: str | None = None
    polls: int = 0
    events: int = 0
    removed_ms: int | None = None  # when it left the configuration (paused); None while configured
    seen_from_ms: int | None = None  # date versions are remembered from here on (None: not known)


@dataclass(frozen=True, slots=True)
class SeenVersion:
    """One version of one object that detection has already judged.

    ``version`` is ``"d:<epoch ms>"`` for date versions and ``"h:<hex digest>"`` for content
    hashes; ``stamp_ms`` is the record's stamp (date versions) or when it was last seen (hashes).
    """

    object_id: str
    version: str
    stamp_ms: int


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification body formed at detection time; ``seq`` orders it within its resource."""

    id: str
    resource_key: str
    instance_id: str
    resource: str
    callback_url: str
    created_ms: int
    body: bytes
    event_ids: tuple[str, ...]
    seq: int


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification and where its delivery stands (``status`` is one of OUTBOX_STATUSES)."""

    notification: Notification
    status: str
    attempts: int
    next_attempt_ms: int | None
    last_error: str | None
    delivered_ms: int | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of a notification: the HTTP status it got (``None`` when no response
    came back: timeout, network error) or the error, and how long it took."""

    notification_id: str
    at_ms: int
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Pending:
    """A pending notification without its body: what delivery keeps in memory to plan its sends.
    ``rowid`` grows with every notification written: delivery reads what is new past the last."""

    rowid: int
    id: str
    resource_key: str
    instance_id: str
    callback_url: str
    seq: int
    attempts: int
    next_attempt_ms: int | None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One delivery attempt to record: delivered (``ok``), or failed with the next attempt's time
    (``next_attempt_ms``, ``None``: a dead letter)."""

    notification_id: str
    at_ms: int
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    next_attempt_ms: int | None = None


INBOUND_OUTCOMES = ("accepted", "duplicate", "rejected")


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """One inbound webhook request as it arrived (headers without secrets)."""

    instance_id: str
    received_ms: int
    method: str
    content_type: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class InboundWrite:
    """An accepted request to keep (:meth:`state.Store.record_inbound_many`): ``event_ids`` every
    event's id, ``event_dates`` their dates as keys (see migration 0007; empty: all 0),
    ``build(new ids in order, first seq)`` the notifications of the new ones."""

    request: InboundRequest
    resource_key: str
    event_ids: Sequence[str]
    build: Callable[[list[str], int], Sequence[Notification]]
    replay_of: int | None = None
    event_dates: Sequence[int] = ()
    reason: str | None = None  # kept with the request: what of it could not be taken as sent


@dataclass(frozen=True, slots=True)
class ApiInstance:
    """An instance created through the management API: ``body`` as posted and patched (a Cloud
    Elements instance body), ``token`` given back at creation."""

    number: int
    body: dict
    token: str
    enabled: bool
    created_ms: int
    updated_ms: int
    deleted_ms: int | None = None

    @property
    def instance_id(self) -> str:
        return str(self.number)


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """An inbound request as the state file keeps it, with what became of it."""

    id: int
    request: InboundRequest
    sha256: str
    outcome: str  # accepted | duplicate | rejected
    status: int  # the HTTP status it was answered with
    reason: str | None  # why it was rejected
    events: int  # events it announced (new ones)
    notification_ids: tuple[str, ...]
