"""``poller once`` and ``poller explain``: polls run from the command line."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from poller.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, now
from poller.config import Config
from state import open_store

__all__ = ["explain", "once"]


def once(config: Config, state_path: Path) -> int:
    from poller.deliver.client import delivery_session
    from poller.deliver.engine import deliver_due
    from poller.poll.runner import poll_all

    from poller.cli.daemon import with_api_instances

    async def run() -> tuple[list, object]:
        outcomes = await poll_all(config, store, now())
        async with delivery_session() as client:
            # every due notification (DESIGN §9), those of instances made through the API too
            report = await deliver_due(client, store, with_api_instances(store, config), now)
        return outcomes, report

    with open_store(state_path) as store:
        outcomes, report = asyncio.run(run())
    for outcome in outcomes:
        print(outcome.summary())
    if not outcomes:
        print("no enabled polling resource in the configuration", file=sys.stderr)
    for result in report.results:  # type: ignore[attr-defined]
        print(result.summary())
    ok = all(o.ok for o in outcomes) and report.ok  # type: ignore[attr-defined]
    return EXIT_OK if ok else EXIT_FAILURE


def explain(config: Config, state_path: Path, instance_id: str, resource_name: str) -> int:
    from poller.httpclient import HttpClients
    from poller.poll.explain import explain as explain_poll

    pair = next(((i, r) for i, r in config.resources() if i.id == instance_id and r.name == resource_name), None)
    if pair is None:
        known = ", ".join(f"{i.id} {r.name}" for i, r in config.resources()) or "none"
        what = (f"no resource {resource_name!r} in instance {instance_id!r}"
                if any(i.id == instance_id for i in config.instances) else f"no instance {instance_id!r}")
        print(f"poller explain: {what} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    instance, resource = pair

    async def run() -> bool:
        async with AsyncExitStack() as stack:
            client = await HttpClients(stack).get(instance.api.verify_tls)
            store = stack.enter_context(open_store(state_path, writer=False)) if state_path.exists() else None
            return await explain_poll(client, store, config.engine, instance, resource, now(), sys.stdout)

    return EXIT_OK if asyncio.run(run()) else EXIT_FAILURE
