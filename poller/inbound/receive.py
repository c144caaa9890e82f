"""One inbound request: verify, normalise, persist, then answer (DESIGN §10).

:class:`Receiver` is what the HTTP route and ``poller webhooks replay`` call. The request, its
new events and their notifications are committed in one transaction before the answer is
made: a 200 is only ever said about what is in the state file. A failed commit answers 503, so
the provider sends the request again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from poller.config.types import Config, InstanceConfig
from poller.events.notify import Envelope
from poller.inbound.group import GroupCommit
from poller.inbound.normalise import Parsed, Refused, listed, normalise
from poller.inbound.pushed import WEBHOOK_RESOURCE, build_pushed, event_ids
from poller.inbound.verify import SECRET_HEADERS, check
from state import Notification, StateError, Store
from state.store import InboundResult
from state.types import InboundRequest, InboundWrite, StoredRequest

__all__ = ["Answer", "Receiver", "resource_key"]

log = logging.getLogger(__name__)


def resource_key(instance_id: str) -> str:
    return f"{instance_id}/{WEBHOOK_RESOURCE}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer, and what to count: ``outcome`` accepted, duplicate, handshake, rejected,
    unauthorized or unavailable."""

    status: int
    outcome: str
    reason: str = ""
    request_id: int | None = None
    events: Mapping[str, int] = field(default_factory=dict)  # new events by type
    notifications: int = 0


class Receiver:
    def __init__(self, store: Store, config: Config, *, on_committed: Callable[[], None] | None = None,
                 on_write_failure: Callable[[StateError, str], None] | None = None) -> None:
        self.store = store
        self.on_committed = on_committed
        self.on_write_failure = on_write_failure
        self._group: GroupCommit | None = None
        self.configure(config)

    def configure(self, config: Config) -> None:
        self.config = config
        self.instances = {i.id: i for i in config.instances if i.receives_webhooks}

    def receive(self, instance: InstanceConfig, method: str, content_type: str | None,
                headers: Sequence[tuple[str, str]], body: bytes, now_ms: int) -> Answer:
        """``headers`` as received (any case); the request is kept without its secret ones."""
        step = self._run(instance, self._request(instance, method, content_type, headers, body, now_ms),
                         _lower(headers), replay_of=None)
        return step if isinstance(step, Answer) else self._commit(instance, step)

    async def receive_async(self, instance: InstanceConfig, method: str, content_type: str | None,
                            headers: Sequence[tuple[str, str]], body: bytes, now_ms: int) -> Answer:
        """:meth:`receive` for the HTTP route: the commit is shared with the other requests
        ready in the same turn of the loop (:class:`~poller.inbound.group.GroupCommit`)."""
        step = self._run(instance, self._request(instance, method, content_type, headers, body, now_ms),
                         _lower(headers), replay_of=None)
        if isinstance(step, Answer):
            return step
        if self._group is None:
            self._group = GroupCommit(self.store)
        try:
            result = await self._group.submit(step.write)
        except StateError as exc:
            return self._unavailable(instance, exc)
        return self._finish(step, result)

    def replay(self, stored: StoredRequest, now_ms: int) -> Answer:
        """Normalise a kept request again with the configuration as it is now. A request rejected
        for its signature is verified again (a basic-auth one cannot be: its header is not kept)."""
        instance = self.instances.get(stored.request.instance_id)
        if instance is None:
            return Answer(404, "rejected", f"{stored.request.instance_id} is not an enabled webhook instance now")
        headers = dict(stored.request.headers)
        verify = stored.outcome == "rejected" and stored.status == 401
        step = self._run(instance, stored.request, headers, replay_of=stored.id, verify=verify, now_ms=now_ms)
        return step if isinstance(step, Answer) else self._commit(instance, step)

    @staticmethod
    def _request(instance: InstanceConfig, method: str, content_type: str | None,
                 headers: Sequence[tuple[str, str]], body: bytes, now_ms: int) -> InboundRequest:
        kept = tuple((name.lower(), value) for name, value in headers if name.lower() not in SECRET_HEADERS)
        return InboundRequest(instance.id, now_ms, method, content_type, kept, body)

    def _run(self, instance: InstanceConfig, request: InboundRequest, headers: Mapping[str, str], *,
             replay_of: int | None, verify: bool = True, now_ms: int | None = None) -> Answer | _Accepted:
        """Verify and normalise: the answer when there is nothing to commit but a rejection (kept
        here), else what to commit."""
        webhook = instance.webhook
        assert webhook is not None
        now_ms = request.received_ms if now_ms is None else now_ms
        if request.method in ("GET", "HEAD"):  # a handshake (DESIGN §10), for every kind: no event, nothing kept
            return Answer(200, "handshake")
        try:
            if verify and webhook.verify.type != "none":
                if webhook.verify.type == "basic" and replay_of is not None:
                    problem: str | None = "cannot be verified again: its Authorization header is not kept"
                else:
                    # (a signature's timestamp is judged by when the request came, also on a replay)
                    problem = check(webhook.verify, headers, request.body, request.received_ms / 1000.0)
                if problem is not None:
                    rid = self.store.record_rejected(request, status=401, reason=problem, replay_of=replay_of)
                    return Answer(401, "unauthorized", problem, rid)
            try:
                parsed = normalise(webhook, request.method, request.content_type, request.body, request.received_ms)
            except Refused as exc:
                rid = self.store.record_rejected(request, status=exc.status, reason=exc.reason, replay_of=replay_of)
                return Answer(exc.status, "rejected", exc.reason, rid)
        except StateError as exc:
            return self._unavailable(instance, exc)
        if parsed.handshake:
            return Answer(200, "handshake")
        return self._prepare(instance, request, parsed, replay_of, now_ms)

    def _prepare(self, instance: InstanceConfig, request: InboundRequest, parsed: Parsed, replay_of: int | None,
                 now_ms: int) -> _Accepted:
        ids = event_ids(instance.id, parsed.events)
        position = {eid: i for i, eid in reversed(list(enumerate(ids)))}  # the first of repeats
        envelope = self._envelope(instance)
        key = resource_key(instance.id)
        counts: dict[str, int] = {}

        def build(new: list[str], seq: int) -> list[Notification]:
            counts.clear()  # (a transaction done again builds again)
            chosen = [(position[e], e, parsed.events[position[e]]) for e in new]
            for _, _, event in chosen:
                counts[event.event_type] = counts.get(event.event_type, 0) + 1
            bodies = build_pushed(envelope, chosen, parsed.raw_for, received_ms=request.received_ms,
                                  created_ms=now_ms)
            return [Notification(b.id, key, instance.id, WEBHOOK_RESOURCE, str(instance.callback_url), now_ms, b.body,
                                 b.event_ids, seq + i) for i, b in enumerate(bodies)]

        reason = listed(parsed.notes, 5) if parsed.notes else None
        write = InboundWrite(request, key, ids, build, replay_of, [e.date_ms for e in parsed.events], reason)
        return _Accepted(write, counts)

    def _commit(self, instance: InstanceConfig, step: _Accepted) -> Answer:
        try:
            [result] = self.store.record_inbound_many([step.write])
        except StateError as exc:
            return self._unavailable(instance, exc)
        return self._finish(step, result)

    def _finish(self, step: _Accepted, result: InboundResult) -> Answer:
        if result.notification_ids and self.on_committed is not None:
            self.on_committed()
        return Answer(200, result.outcome, step.write.reason or "", result.request_id, dict(step.counts),
                      len(result.notification_ids))

    def _unavailable(self, instance: InstanceConfig, exc: StateError) -> Answer:
        if self.on_write_failure is not None:
            self.on_write_failure(exc, f"inbound {instance.id}")
        return Answer(503, "unavailable", "the state file cannot be written now; send it again later")

    def _envelope(self, instance: InstanceConfig) -> Envelope:
        assert instance.webhook is not None
        return Envelope(instance_id=instance.id, instance_name=instance.name, element_key=instance.element_key,
                        tags=instance.tags, resource=WEBHOOK_RESOURCE, hub_key=instance.webhook.hub_key or instance.element_key,
                        batch_size=self.config.engine.delivery.batch_size)


@dataclass(slots=True)
class _Accepted:
    """A request verified and normalised, to commit: ``counts`` its new events by type, filled
    when the commit builds their notifications."""

    write: InboundWrite
    counts: dict[str, int]


def _lower(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}
