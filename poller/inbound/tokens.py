"""Each webhook instance's URL: ``/webhooks/{instanceId}/{token}`` (DESIGN §10).

The token is ``event.webhook.token`` when configured, else 128 random bits made once and kept in
the state file, so that a URL pasted into a provider keeps working across restarts.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import quote

from poller.config.types import Config, InstanceConfig
from state import Store

__all__ = ["new_token", "resolve_tokens", "stored_tokens", "webhook_path", "webhook_url", "base_url",
           "token_matches"]


def new_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits


def resolve_tokens(store: Store, config: Config, now_ms: int) -> dict[str, str]:
    """The token of every webhook instance (enabled or not), made and stored where missing."""
    instances = [i for i in config.instances if i.webhook is not None]
    need = [i.id for i in instances if i.webhook is not None and i.webhook.token is None]
    stored = store.ensure_webhook_tokens(need, new_token, now_ms=now_ms) if need else {}
    out = {}
    for instance in instances:
        assert instance.webhook is not None
        token = instance.webhook.token or stored.get(instance.id)
        if token:
            out[instance.id] = str(token)
    return out


def stored_tokens(store: Store, config: Config) -> dict[str, str]:
    """As :func:`resolve_tokens`, without writing: instances whose token was never made are left out."""
    stored = store.webhook_tokens()
    out = {}
    for instance in config.instances:
        if instance.webhook is not None:
            token = instance.webhook.token or stored.get(instance.id)
            if token:
                out[instance.id] = str(token)
    return out


def token_matches(expected: str | None, given: str) -> bool:
    """Constant-time; a missing expectation compares against a dummy, so it takes as long."""
    return hmac.compare_digest((expected or "\x00" * 22).encode(), given.encode("utf-8", "replace")) and bool(expected)


def webhook_path(instance: InstanceConfig | str, token: str) -> str:
    instance_id = instance if isinstance(instance, str) else instance.id
    return f"/webhooks/{quote(instance_id, safe='')}/{quote(token, safe='')}"


def base_url(config: Config) -> str | None:
    """``engine.webhooks.publicUrl``, else the listener that serves the inbound routes."""
    hooks = config.engine.webhooks
    if hooks.public_url:
        return hooks.public_url.rstrip("/")
    listen = hooks.listen or config.engine.listen
    if listen is None:
        return None
    host, port = listen
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def webhook_url(config: Config, instance: InstanceConfig, tokens: Mapping[str, str]) -> str | None:
    token = tokens.get(instance.id)
    base = base_url(config)
    if token is None or base is None:
        return None
    return base + webhook_path(instance, token)
