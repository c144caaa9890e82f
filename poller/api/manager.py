"""What the management API changes, and how (DESIGN §11): the state file first, then the running
daemon, which takes the new configuration at once (as a reload does, without reading the file).

Instances of the configuration file are listed too, read-only: changing one answers 409 naming
the file. API instances are kept in the state file with the body as posted and patched; their
integer ids and those shown for the file's instances come from one space of numbers.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from poller.api.views import MASK, event_view, instance_view, masks_in, page_token, read_page_token, unmasked
from poller.config.apibody import ApiBody, build_api_instance, parse_body
from poller.config.instance import element_key
from poller.config.load import ConfigLoadError
from poller.config.types import Config
from poller.config.webhook import TOKEN as WEBHOOK_TOKEN
from state import StateError, Store
from state.types import ApiInstance

__all__ = ["ApiError", "Host", "Manager", "PATCHABLE", "MAX_PAGE_SIZE"]

PATCHABLE = ("name", "tags", "configuration", "api")
log = logging.getLogger(__name__)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.errors:
            out["errors"] = [{"path": path, "message": message} for path, message in self.errors]
        return out


class Host(Protocol):
    """The running daemon, as the manager needs it."""

    store: Store
    file_config: Config
    config: Config

    def now_ms(self) -> int: ...

    def api_changed(self) -> None: ...


def _invalid(exc: ConfigLoadError) -> ApiError:
    details = exc.details or tuple(("", p.split(": ", 1)[-1]) for p in exc.problems)
    first = details[0][1] if details else "invalid"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ApiError(400, f"invalid instance body: {first}{more}", tuple(details))


class Manager:
    def __init__(self, host: Host, *, token: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> None:
        self.host = host
        self.token = token

    # -- reading ----------------------------------------------------------------------------------

    def _file_bodies(self) -> dict[str, dict]:
        """The file's instance bodies by id, as written (to show their configuration, masked)."""
        try:
            data = json.loads(Path(self.host.file_config.source).read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            return {}
        values = data.get("instances", []) if isinstance(data, dict) and "instances" in data else \
            data if isinstance(data, list) else [data]
        out = {}
        for value in values:
            if isinstance(value, dict):
                ident = value.get("id") or value.get("name") or element_key(value)
                out[str(ident).strip()] = value
        return out

    def list(self) -> list[dict[str, Any]]:
        store = self.host.store
        file_ids = [i.id for i in self.host.file_config.instances]
        numbers = store.instance_numbers(file_ids)
        bodies = self._file_bodies()
        views = []
        for instance in self.host.file_config.instances:
            body = bodies.get(instance.id, {"name": instance.name, "element": {"key": instance.element_key},
                                            "tags": list(instance.tags)})
            views.append(instance_view(numbers[instance.id], body, instance_id=instance.id, token=None,
                                       created_ms=None, updated_ms=None, enabled=instance.enabled,
                                       events_enabled=instance.enabled,
                                       read_only=f"file:{self.host.file_config.source}"))
        views += [self._view(row) for row in store.api_instances(deleted=False)]
        return sorted(views, key=lambda v: v["id"])

    def _view(self, row: ApiInstance, warnings: tuple[str, ...] = ()) -> dict[str, Any]:
        configuration = row.body.get("configuration", {})
        enabled_in_body = configuration.get("event.notification.enabled") in (True, "true", "True", "TRUE")
        # the token is the inbound webhook token (DESIGN §11): the body's own when it sets one
        configured = configuration.get(WEBHOOK_TOKEN)
        token = configured if isinstance(configured, str) and configured else row.token
        clash = self._clash(row)
        view = instance_view(row.number, row.body, instance_id=row.instance_id, token=token,
                             created_ms=row.created_ms, updated_ms=row.updated_ms, enabled=row.enabled,
                             events_enabled=row.enabled and enabled_in_body and clash is None, read_only=None)
        if clash is not None:
            view["notLoaded"] = clash
        if warnings:
            view["warnings"] = list(warnings)
        return view

    def _clash(self, row: ApiInstance) -> str | None:
        """Why the instance does not run, when the configuration file took its id (see apibody.merge)."""
        if any(i.id == row.instance_id for i in self.host.file_config.instances):
            return (f"{self.host.file_config.source} has an instance with id {row.instance_id!r}, so this one "
                    f"is not loaded: delete it, or give the file's instance another id")
        return None

    def get(self, number: int) -> dict[str, Any]:
        row = self._api_row(number, changing=False)
        if row is None:
            return next(v for v in self.list() if v["id"] == number)
        return self._view(row)

    def _api_row(self, number: int, *, changing: bool) -> ApiInstance | None:
        """The API instance with this number; None for a file instance (409 when ``changing``)."""
        row = self.host.store.api_instance(number)
        if row is not None and row.deleted_ms is None:
            return row
        if row is None:
            numbers = self.host.store.instance_numbers([i.id for i in self.host.file_config.instances])
            for instance_id, n in numbers.items():
                if n == number and any(i.id == instance_id for i in self.host.file_config.instances):
                    if changing:
                        raise ApiError(409, f"instance {number} ({instance_id}) is defined in "
                                            f"{self.host.file_config.source}: change it there and reload (SIGHUP)")
                    return None
        raise ApiError(404, f"no instance {number}")

    def instance_id(self, number: int) -> str:
        """The id notifications carry (the number's text for API instances)."""
        row = self._api_row(number, changing=False)
        if row is not None:
            return row.instance_id
        return next(v["instanceId"] for v in self.list() if v["id"] == number)

    # -- changing ---------------------------------------------------------------------------------

    def _check(self, body: dict, number: int = 0, token: str = "x") -> tuple[str, ...]:
        """The body's warnings (unknown keys, ...); ApiError 400 when it is invalid."""
        masks = masks_in(body)
        if masks:  # (a body copied from a GET answer: the secret itself was never shown)
            message = f"is {MASK}, how this API shows a secret: give the secret itself"
            raise ApiError(400, f"invalid instance body: {masks[0]} {message}",
                           tuple((path, message) for path in masks))
        try:
            _, warnings = build_api_instance(ApiBody(number, body, token), self.host.config.engine)
        except ConfigLoadError as exc:
            raise _invalid(exc) from None
        return tuple(w.removeprefix("body: ") for w in warnings)

    def _warn(self, number: int, warnings: tuple[str, ...]) -> None:
        for warning in warnings:
            log.warning("api.config_warning", extra={"instance": number, "warning": warning})

    def create(self, raw: bytes) -> dict[str, Any]:
        try:
            body = parse_body(raw)
        except ConfigLoadError as exc:
            raise _invalid(exc) from None
        warnings = self._check(body)
        token = self.token()
        row = self.host.store.create_api_instance(lambda number: (body, token),
                                                  file_ids=[i.id for i in self.host.file_config.instances],
                                                  now_ms=self.host.now_ms())
        self._warn(row.number, warnings)
        self.host.api_changed()
        return self._view(row, warnings)

    def patch(self, number: int, raw: bytes, *, configuration_only: bool = False) -> dict[str, Any]:
        row = self._loaded_row(number)
        try:
            change = parse_body(raw, "an object of the configuration keys to change" if configuration_only
                                else "an object of the keys to change")
        except ConfigLoadError as exc:
            raise _invalid(exc) from None
        if configuration_only:
            change = {"configuration": change}
        unknown = [k for k in change if k not in PATCHABLE]
        if unknown:
            raise ApiError(400, f"cannot change {unknown[0]!r}: a PATCH changes {', '.join(PATCHABLE)}",
                           tuple((k, f"cannot be changed (a PATCH changes {', '.join(PATCHABLE)})") for k in unknown))
        body = dict(row.body)
        for key, value in change.items():
            if key in ("configuration", "api") and isinstance(value, dict) and isinstance(body.get(key, {}), dict):
                # only the keys given change (api.headers too, header by header); null removes one;
                # ******** where a secret is kept keeps it (an instance sent back as GET showed it)
                body[key] = _merged(body.get(key) or {}, value)
            elif key == "configuration":
                raise ApiError(400, "configuration: expected an object of the keys to change",
                               (("configuration", "expected an object of the keys to change"),))
            elif value is None:
                body.pop(key, None)
            else:
                body[key] = value
        warnings = self._check(body, row.number, row.token)
        updated = self.host.store.update_api_instance(number, now_ms=self.host.now_ms(), body=body)
        self._warn(number, warnings)
        self.host.api_changed()
        return self._view(updated, warnings)

    def _loaded_row(self, number: int) -> ApiInstance:
        """The API instance to change (409 when the file holds it, or took its id)."""
        row = self._api_row(number, changing=True)
        assert row is not None
        clash = self._clash(row)
        if clash is not None:
            raise ApiError(409, f"instance {number}: {clash}")
        return row

    def delete(self, number: int) -> dict[str, Any]:
        row = self._api_row(number, changing=True)
        assert row is not None
        self.host.store.update_api_instance(number, now_ms=self.host.now_ms(), deleted=True)
        self.host.api_changed()  # stopped; its pending notifications are still delivered
        return {"id": number, "deleted": True}

    def set_enabled(self, number: int, enabled: bool) -> dict[str, Any]:
        self._loaded_row(number)
        updated = self.host.store.update_api_instance(number, now_ms=self.host.now_ms(), enabled=enabled)
        self.host.api_changed()
        return self._view(updated)

    # -- events -----------------------------------------------------------------------------------

    def events(self, number: int, *, limit: tuple[str, str] | None, next_page: str | None,
               status: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the instance's notifications; ``limit``: (the query parameter's name, its value)."""
        instance_id = self.instance_id(number)
        size = DEFAULT_PAGE_SIZE
        if limit is not None:
            name, value = limit
            if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_PAGE_SIZE:
                raise ApiError(400, f"{name} must be a whole number from 1 to {MAX_PAGE_SIZE}",
                               ((name, f"expected 1 to {MAX_PAGE_SIZE}, got {value[:40]!r}"),))
            size = int(value)
        if status is not None and status not in ("pending", "delivered", "dead"):
            raise ApiError(400, "status must be pending, delivered or dead", (("status", "unknown status"),))
        after = None
        if next_page:
            after = read_page_token(next_page)
            if after is None:
                raise ApiError(400, "nextPage is not a page token of this API", (("nextPage", "unknown token"),))
        entries = self.host.store.notifications(status, size + 1, newest_first=True, instance_id=instance_id,
                                                after=after)
        more = len(entries) > size
        entries = entries[:size]
        return [event_view(e) for e in entries], page_token(entries[-1]) if more and entries else None

    def event(self, number: int, event_id: str) -> dict[str, Any]:
        instance_id = self.instance_id(number)
        entry = self.host.store.notification(event_id)
        if entry is None or entry.notification.instance_id != instance_id:
            raise ApiError(404, f"instance {number} has no event {event_id[:80]!r}")
        return event_view(entry, with_body=True)

    def replay(self, number: int, raw: bytes) -> dict[str, Any]:
        instance_id = self.instance_id(number)
        ids: list[str] = []
        if raw.strip():
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, dict) or not isinstance(value.get("ids", []), list) \
                    or not all(isinstance(i, str) for i in value.get("ids", [])):
                raise ApiError(400, 'expected {"ids": ["<event id>", ...]} or no body (every dead letter)',
                               (("ids", "expected a list of event ids"),))
            ids = value.get("ids", [])
        for event_id in ids:
            entry = self.host.store.notification(event_id)
            if entry is None or entry.notification.instance_id != instance_id:
                raise ApiError(404, f"instance {number} has no event {event_id[:80]!r}")
        try:
            replayed = self.host.store.replay(ids, dead=not ids, now_ms=self.host.now_ms(), instance_id=instance_id)
        except StateError as exc:
            raise ApiError(503, f"the state file cannot be written now: {exc}") from None
        self.host.api_changed()
        return {"replayed": replayed}


def _merged(old: dict, change: dict) -> dict:
    """``old`` with the keys of ``change``: null removes a key, ``********`` keeps a kept secret,
    and ``headers`` (of ``api``) are merged the same way, header by header, their names in any case."""
    out = dict(old)
    for name, new in change.items():
        if new is None:
            out.pop(name, None)
        elif name == "headers" and isinstance(new, dict) and isinstance(old.get(name), dict):
            out[name] = _merged_headers(old[name], new)
        else:
            out[name] = unmasked(name, new, old.get(name))
    return out


def _merged_headers(old: dict, change: dict) -> dict:
    out = dict(old)
    for name, new in change.items():
        same = [k for k in out if isinstance(k, str) and k.lower() == name.lower()]  # Authorization, authorization
        kept = out.get(same[0]) if same else None
        for k in same:
            del out[k]
        if new is not None:
            out[name] = unmasked(name, new, kept, header=True)
    return out
