"""The JSON the management API answers: instances (secrets masked) and notifications. Pure."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from poller.config.instance import element_key
from poller.config.values import format_path
from poller.events.notify import iso_z
from state import OutboxEntry

__all__ = ["MASK", "masked", "masked_api", "masks_in", "instance_view", "event_view", "page_token",
           "read_page_token", "unmasked"]

MASK = "********"
_SECRET_WORDS = ("secret", "password", "token", "key", "code", "credential", "authorization", "cookie")
_NOT_SECRET = frozenset({"events.list.ids", "event.notification.callback.url", "event.notification.enabled",
                         "event.vendor.type", "idfield"})
# objects of names, JSON paths and patterns, never secrets (a resource named "tokens" is no secret)
_NO_SECRETS_INSIDE = frozenset({"event.poller.configuration", "event.webhook.events"})


def _secret_key(key: str) -> bool:
    lower = key.lower()
    return lower not in _NOT_SECRET and any(word in lower.rsplit(".", 1)[-1] for word in _SECRET_WORDS)


def _masked_value(key: str, value: Any) -> Any:
    if _secret_key(key):
        return MASK if value not in (None, "") else value
    if isinstance(value, dict) and key.lower() not in _NO_SECRETS_INSIDE:
        return {k: _masked_value(k, v) for k, v in value.items()}  # event.webhook.verify's secret, password
    return value


def masked(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with every value of a secret-looking key (``*.key``, ``*secret*``,
    ``*password*``, ``*token*``...) shown as ``********``, in nested objects too."""
    return {k: _masked_value(k, v) for k, v in configuration.items()}


def masked_api(api: object) -> object:
    """The ``api`` object with every header value (credentials, mostly) shown as ``********``."""
    if not isinstance(api, dict):
        return api
    out = {k: v if k == "headers" else _masked_value(k, v) for k, v in api.items()}
    if isinstance(out.get("headers"), dict):
        out["headers"] = {name: MASK for name in out["headers"]}
    return out


def unmasked(key: str, new: Any, old: Any, *, header: bool = False) -> Any:
    """``new``, the value of ``key``, with each ``********`` that stands where the view shows a
    secret kept in ``old`` given that secret: an instance sent back as it was read changes none.
    (Elsewhere ``********`` is a value like any other.) ``header``: every value is masked."""
    if new == MASK and old is not None and (header or _secret_key(key)):
        return old
    if isinstance(new, dict) and isinstance(old, dict) and key.lower() not in _NO_SECRETS_INSIDE:
        return {k: unmasked(k, v, old.get(k)) for k, v in new.items()}
    return new


def masks_in(body: Mapping[str, Any]) -> list[str]:
    """The paths (as ``poller check`` writes them) where a body gives ``********`` for a secret."""
    found: list[str] = []

    def walk(key: str, value: Any, path: tuple[str, ...]) -> None:
        if value == MASK and _secret_key(key):
            found.append(format_path(path))
        elif isinstance(value, dict) and key.lower() not in _NO_SECRETS_INSIDE:
            for k, v in value.items():
                walk(k, v, (*path, k))

    for k, v in (body.get("configuration") or {}).items() if isinstance(body.get("configuration"), dict) else ():
        walk(k, v, ("configuration", k))
    api = body.get("api")
    if isinstance(api, dict) and isinstance(api.get("headers"), dict):
        found += [format_path(("api", "headers", k)) for k, v in api["headers"].items() if v == MASK]
    return found


def instance_view(number: int, body: Mapping[str, Any], *, instance_id: str, token: str | None,
                  created_ms: int | None, updated_ms: int | None, enabled: bool, events_enabled: bool,
                  read_only: str | None) -> dict[str, Any]:
    """One instance in Cloud Elements' shape (plus ``instanceId``, ``readOnly`` and ``source``)."""
    configuration = body.get("configuration") if isinstance(body.get("configuration"), dict) else {}
    view: dict[str, Any] = {
        "id": number,
        "instanceId": instance_id,
        "name": str(body.get("name") or instance_id),
        "token": token,
        "element": {"key": element_key(body)},
        "configuration": masked(configuration),
        "tags": [str(t) for t in body.get("tags", [])] if isinstance(body.get("tags"), list) else [],
        "createdDate": iso_z(created_ms) if created_ms is not None else None,
        "updatedDate": iso_z(updated_ms) if updated_ms is not None else None,
        "disabled": not enabled,
        "eventsEnabled": events_enabled,
        "readOnly": read_only is not None,
        "source": read_only or "api",
    }
    if "api" in body:
        view["api"] = masked_api(body["api"])
    return view


def event_view(entry: OutboxEntry, *, with_body: bool = False) -> dict[str, Any]:
    """A notification with its events and where its delivery stands."""
    note = entry.notification
    message = json.loads(note.body).get("message", {})
    view: dict[str, Any] = {
        "id": note.id,
        "resource": note.resource,
        "status": entry.status,
        "attempts": entry.attempts,
        "createdDate": iso_z(note.created_ms),
        "deliveredDate": iso_z(entry.delivered_ms) if entry.delivered_ms is not None else None,
        "nextAttemptDate": (iso_z(entry.next_attempt_ms) if entry.status == "pending"
                            and entry.next_attempt_ms is not None else None),
        "lastError": entry.last_error,
        "events": message.get("events", []),
    }
    if with_body:
        view["notification"] = json.loads(note.body)
    return view


def page_token(entry: OutboxEntry) -> str:
    note = entry.notification
    raw = json.dumps([note.created_ms, note.seq, note.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_page_token(token: str) -> tuple[int, int, str] | None:
    """The position a ``nextPage`` token names, or None when it is not one of ours."""
    try:
        created, seq, nid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        return None
    if not (isinstance(created, int) and isinstance(seq, int) and isinstance(nid, str)):
        return None
    return created, seq, nid
