"""Instance bodies that come through the management API (DESIGN §11), checked by the same code as
the configuration file's, and merged with the file's instances into one :class:`Config`.

An API instance's id is its number as text ("12"); its token (given back when it was created)
is also its inbound webhook token unless the body sets ``event.webhook.token``. Pure: the caller
reads the bodies from the state file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from poller.config.instance import build_instance
from poller.config.load import ConfigLoadError
from poller.config.types import Config, EngineConfig, InstanceConfig, SecretStr
from poller.config.values import Context, decode_json, json_error, kind

__all__ = ["ApiBody", "build_api_instance", "merge", "parse_body"]

SOURCE = "body"
ENV_REFUSED = ("environment variables are read only in the configuration file; "
               "an instance created through the API gives its values as they are")


@dataclasses.dataclass(frozen=True, slots=True)
class ApiBody:
    """What the state file keeps of an API instance, as the loader needs it."""

    number: int
    body: Mapping[str, Any]
    token: str
    enabled: bool = True
    deleted: bool = False


INSTANCE_BODY = "an instance body ({\"element\": ..., \"configuration\": ...})"


def parse_body(raw: bytes, expected: str = INSTANCE_BODY) -> dict:
    """The request body as a JSON object; ConfigLoadError (path "", as ``poller check`` says it) if not."""
    try:
        value = decode_json(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigLoadError([f"{SOURCE}: not UTF-8 text: {exc.reason} at byte {exc.start}"],
                              details=[("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigLoadError([f"{SOURCE}: {json_error(exc)}"], details=[("", json_error(exc))]) from None
    if not isinstance(value, dict):
        message = f"expected {expected}, got {kind(value)}"
        raise ConfigLoadError([f"{SOURCE}: {message}"], details=[("", message)])
    return value


def build_api_instance(api: ApiBody, engine: EngineConfig) -> tuple[InstanceConfig, tuple[str, ...]]:
    """The instance, with its warnings; ConfigLoadError (with ``details``) when the body is invalid.

    ``${env:...}`` is refused: the daemon's environment holds the operator's secrets, and an API
    client could otherwise send any of them to a callback URL of its choosing."""
    ctx = Context(SOURCE, {}, env_refused=ENV_REFUSED)
    body = {k: v for k, v in api.body.items() if k != "id"}  # the id is the number, whatever the body says
    body["id"] = str(api.number)
    body.setdefault("name", f"instance {api.number}")
    instance = build_instance(ctx, body, (), engine.server_time_zone)
    ctx.finish()
    if ctx.errors or instance is None:
        raise ConfigLoadError(ctx.errors or [f"{SOURCE}: not an instance body"], ctx.warnings, ctx.details)
    if instance.webhook is not None and instance.webhook.token is None:
        instance = dataclasses.replace(instance, webhook=dataclasses.replace(instance.webhook,
                                                                             token=SecretStr(api.token)))
    if not api.enabled or api.deleted:
        instance = dataclasses.replace(instance, enabled=False)
    return instance, tuple(ctx.warnings)


def merge(config: Config, bodies: Iterable[ApiBody]) -> tuple[Config, dict[int, str]]:
    """The file's instances and the API's, in one configuration. An API body that no longer loads
    (one kept by an older version that used ``${env:...}``, say) or whose id a file instance took is left out: the
    returned problems say why, by number; the rest runs."""
    file_ids = {i.id for i in config.instances}
    instances = list(config.instances)
    problems: dict[int, str] = {}
    for api in bodies:
        if str(api.number) in file_ids:
            problems[api.number] = (f"{config.source}: an instance with id {str(api.number)!r} is in the file; the "
                                    f"instance created through the API with that number is not loaded")
            continue
        try:
            instance, _ = build_api_instance(api, config.engine)
        except ConfigLoadError as exc:
            problems[api.number] = "; ".join(exc.problems)
            continue
        instances.append(instance)
    return dataclasses.replace(config, instances=tuple(instances)), problems
