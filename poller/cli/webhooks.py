"""``poller webhooks``: each webhook instance's URL, the requests kept, replay, and registration
with the provider (DESIGN §10)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from poller.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, now, open_reader
from poller.config import Config
from poller.events.notify import iso_z
from poller.javadate.zone import to_ms
from state import open_store

__all__ = ["list_urls", "register", "replay", "requests", "with_api_instances"]


def _tokens(config: Config, state_path: Path) -> dict[str, str]:
    """Every webhook instance's token, made and kept now where missing: the URL printed is the one
    the daemon accepts, before and after it starts (beside a running daemon too)."""
    from poller.inbound.tokens import resolve_tokens

    if all(i.webhook.token is not None for i in config.instances if i.webhook is not None):
        # all configured: no state file is made for this
        return {i.id: str(i.webhook.token) for i in config.instances if i.webhook is not None}
    # beside a running daemon: a small shared write; before the first start: the file is made
    with open_store(state_path, exclusive=not state_path.exists()) as store:
        return resolve_tokens(store, config, to_ms(now()))


def with_api_instances(config: Config, state_path: Path) -> Config:
    """The file's instances and those created through the management API (kept in the state
    file, when there is one): theirs are webhook URLs too (DESIGN §10: every webhook instance).
    A deleted one is not: its URL answers 404, and nothing should register it with a provider."""
    from poller.cli.daemon import with_api_instances as merged

    if not state_path.exists():
        return config
    with open_reader(state_path) as store:
        return merged(store, config, deleted=False)


def list_urls(config: Config, state_path: Path, *, as_json: bool) -> int:
    from poller.inbound.tokens import base_url, webhook_path

    hooks = [i for i in config.instances if i.webhook is not None]
    if not hooks:
        print("no webhook instances in this configuration (DESIGN §10: event.vendor.type webhook, or no "
              "event.poller.configuration)", file=sys.stderr)
        return EXIT_OK
    tokens = _tokens(config, state_path)
    base = base_url(config)
    rows = []
    for instance in hooks:
        assert instance.webhook is not None
        path = webhook_path(instance, tokens[instance.id])
        rows.append({"instance": instance.id, "name": instance.name, "element": instance.element_key,
                     "kind": instance.webhook.kind, "enabled": instance.receives_webhooks,
                     "url": base + path if base else None, "path": path,
                     "lists": list(instance.webhook.list_ids)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        state = "" if r["enabled"] else "  (disabled: answers 404)"
        print(f"{r['instance']}  {r['kind']}  {r['url'] or r['path']}{state}")
    if base is None:
        print("note: neither engine.webhooks.publicUrl nor a listener (engine.listen, engine.webhooks.listen) is set: "
              "only the paths are known, and nothing receives them", file=sys.stderr)
    return EXIT_OK


def requests(path: Path, *, rejected: bool, as_json: bool, limit: int | None) -> int:
    with open_reader(path) as store:
        kept = store.inbound_requests(rejected=rejected, limit=limit)
    rows = [{"id": r.id, "instance": r.request.instance_id, "receivedAt": iso_z(r.request.received_ms),
             "method": r.request.method, "contentType": r.request.content_type, "bytes": len(r.request.body),
             "outcome": r.outcome, "status": r.status, "reason": r.reason, "events": r.events,
             "notificationIds": list(r.notification_ids)} for r in kept]
    if as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        reason = f"  {r['reason']}" if r["reason"] else ""
        print(f"{r['id']}  {r['receivedAt']}  {r['instance']}  {r['outcome']:<9} {r['status']}  "
              f"{r['bytes']} bytes  {r['events']} events{reason}")
    if not rows:
        print("no rejected requests" if rejected else "no inbound requests", file=sys.stderr)
    return EXIT_OK


def replay(config: Config, path: Path, ids: list[str]) -> int:
    """Normalise kept requests again with the configuration as it is now. Beside a running daemon
    too: its delivery picks the new notifications up within a minute."""
    from poller.inbound.receive import Receiver

    numbers = []
    for text in ids:
        if not text.isdigit():
            print(f"poller webhooks replay: {text!r} is not a request id (a number, as `poller webhooks requests` "
                  "shows)", file=sys.stderr)
            return EXIT_USAGE
        numbers.append(int(text))
    failed = False
    with open_store(path, exclusive=False) as store:
        found = {r.id: r for r in store.inbound_requests(ids=numbers)}
        receiver = Receiver(store, config)
        for number in numbers:
            stored = found.get(number)
            if stored is None:
                print(f"{number}: no such request (pruned after engine.retention.inboundDays, or never kept)")
                failed = True
                continue
            answer = receiver.replay(stored, to_ms(now()))
            events = sum(answer.events.values())
            detail = f": {answer.reason}" if answer.reason else f", {events} new events, {answer.notifications} notifications"
            print(f"{number}: {answer.outcome} ({answer.status}){detail}")
            failed |= answer.status != 200
    return EXIT_FAILURE if failed else EXIT_OK


def register(config: Config, state_path: Path, instance_id: str | None, *, remove: bool) -> int:
    from poller.inbound.register import RegisterError, register as register_one
    from poller.inbound.tokens import webhook_url

    hooks = [i for i in config.instances if i.webhook is not None and (instance_id is None or i.id == instance_id)]
    if instance_id is not None and not hooks:
        known = ", ".join(i.id for i in config.instances if i.webhook is not None) or "none"
        print(f"poller webhooks register: {instance_id!r} is not a webhook instance of this configuration "
              f"(webhook instances: {known})", file=sys.stderr)
        return EXIT_USAGE
    if instance_id is None:
        hooks = [i for i in hooks if i.webhook is not None and i.webhook.kind != "generic"]
    tokens = _tokens(config, state_path)
    failed = False
    for instance in hooks:
        url = webhook_url(config, instance, tokens)
        if url is None:
            print(f"poller webhooks register: {instance.id}: the public URL is not known: set "
                  "engine.webhooks.publicUrl (the address the provider reaches)", file=sys.stderr)
            return EXIT_USAGE
        try:
            changes = register_one(instance, url, remove=remove)
        except RegisterError as exc:
            print(f"poller webhooks register: {exc}", file=sys.stderr)
            failed = True
            continue
        for change in changes:
            ident = f" {change.webhook_id}" if change.webhook_id else ""
            print(f"{instance.id}  list {change.list_id}: {change.action}{ident}")
    if not hooks:
        print("no webhook instances to register (the generic element has no registration API)", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK

