"""Polling every enabled resource once, concurrently and bounded (``poller once``, and the daemon's building block)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import datetime

import httpx

from poller.config import Config, InstanceConfig, ResourceConfig
from poller.httpclient import HttpClients
from poller.javadate.zone import to_ms
from poller.poll.engine import PollOutcome, poll_resource, resource_key
from state import StateError, Store

__all__ = ["poll_all"]

log = logging.getLogger(__name__)


async def poll_all(config: Config, store: Store, now: datetime, *,
                   only: Iterable[tuple[InstanceConfig, ResourceConfig]] | None = None,
                   transport: httpx.AsyncBaseTransport | None = None) -> list[PollOutcome]:
    """Poll every polled resource (or ``only`` these) once; one failure never stops the others."""
    pairs = list(only) if only is not None else [(i, r) for i, r in config.resources() if i.polled]
    limit = asyncio.Semaphore(max(1, config.engine.max_concurrent_polls))
    async with AsyncExitStack() as stack:
        clients = HttpClients(stack, transport)

        async def one(instance: InstanceConfig, resource: ResourceConfig) -> PollOutcome:
            async with limit:
                client = await clients.get(instance.api.verify_tls)
                try:
                    return await poll_resource(client, store, config.engine, instance, resource, now)
                except StateError as exc:  # the state file (locked, full, read-only): said once, no traceback
                    key = resource_key(instance, resource)
                    log.error("state.write_failed", extra={"where": key, "error": str(exc)})
                    return PollOutcome(key, ok=False, error=str(exc))
                except Exception as exc:  # the loop boundary: one resource must not stop the rest
                    key = resource_key(instance, resource)
                    error = f"{type(exc).__name__}: {exc}"
                    log.exception("poll.crashed", extra={"resource": key})
                    try:
                        store.fail_poll(key, instance.id, resource.name, now_ms=to_ms(now), error=error, next_due_ms=None)
                    except Exception:  # the store itself may be what failed
                        log.exception("poll.state_unwritable", extra={"resource": key})
                    return PollOutcome(key, ok=False, error=error)

        return list(await asyncio.gather(*(one(i, r) for i, r in pairs)))
