"""Load a configuration file into frozen objects, or explain every problem in it.

    >>> result = load_config_text('{"name": "demo", "configuration": {}}', "demo.json", {})
    >>> result.config.instances[0].polled
    False

A file is JSON in one of three shapes (DESIGN.md §2): one Cloud Elements instance body
(``{"element": ..., "configuration": ...}``), a list of them, or
``{"engine": {...}, "instances": [...]}``. Values may be strings or JSON natives (``"15"``
and ``15``); ``${env:NAME}`` and ``${env:NAME:-default}`` are resolved in the strings that
poller reads, from the ``environ`` mapping passed in (never from the process environment).

Every problem is gathered before :class:`ConfigLoadError` is raised; each message is
``FILE: JSON.PATH: message``. Warnings (unknown keys, ignored Cloud Elements keys, path
parameters left in URLs...) come back in :attr:`LoadResult.warnings`, in the same form.

This module is pure: no clock, no network, no database; it reads one file when asked to.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path as FilePath

from poller.config.instance import build_instance
from poller.config.types import (
    Config,
    DeliveryConfig,
    EngineConfig,
    InstanceConfig,
    LoadResult,
    LogConfig,
    ManagementApiConfig,
    RetentionConfig,
    SecretStr,
    WebhooksEngineConfig,
)
from poller.config.values import MAX_LOOKBACK, Context, Path, decode_json, describe, json_error, kind
from poller.errors import ConfigError
from poller.gcpause import collector_paused

__all__ = ["ConfigLoadError", "load_config", "load_config_text"]  # the package's other names: poller.config

TOP_KEYS = ("engine", "instances", "$schema")
ENGINE_KEYS = ("statePath", "lookbackSeconds", "serverTimeZone", "maxConcurrentPolls",
               "shutdownTimeoutSeconds", "listen", "maxResponseBytes", "maxClockSkewSeconds", "delivery", "log",
               "retention", "webhooks", "api")
WEBHOOKS_KEYS = ("listen", "publicUrl", "maxBodyBytes", "dedupeHours")
MANAGEMENT_API_KEYS = ("userSecret", "organizationSecret")
MIN_API_SECRET_LENGTH = 16
RETENTION_KEYS = ("deliveredDays", "deadDays", "inboundDays", "removedDays")
DELIVERY_KEYS = ("batchSize", "timeoutSeconds", "concurrencyPerEndpoint", "retrySchedule", "standardWebhooks")
LOG_KEYS = ("format", "level")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigLoadError(ConfigError):
    """A configuration is invalid: ``problems`` are the errors, ``warnings`` what else was noticed."""

    def __init__(self, problems: list[str], warnings: list[str] | tuple[str, ...] = (),
                 details: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(problems)
        self.warnings = tuple(warnings)
        self.details = tuple(details)  # (JSON path, message) of each problem, when known


def load_config(path: str | FilePath, environ: Mapping[str, str]) -> LoadResult:
    """Read and load the file at ``path``; raises :class:`ConfigLoadError`."""
    source = str(path)
    try:
        data = FilePath(path).read_bytes()
    except OSError as exc:
        raise ConfigLoadError([f"{source}: cannot read the file: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigLoadError([f"{source}: not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    return load_config_text(text, source, environ)


def load_config_text(text: str, source_name: str = "config.json",
                     environ: Mapping[str, str] | None = None) -> LoadResult:
    """Load configuration text; ``source_name`` starts every message. Raises :class:`ConfigLoadError`."""
    # millions of objects and not one cycle among them (tests/test_config.py holds it): full
    # collections walking them again and again were a fifth of the time at 100,000 resources
    with collector_paused():
        return _load(text, source_name, environ)


def _load(text: str, source_name: str, environ: Mapping[str, str] | None) -> LoadResult:
    ctx = Context(source_name, environ if environ is not None else {})
    if not text.strip():
        raise ConfigLoadError([f"{source_name}: the file is empty"])
    try:
        data = decode_json(text.lstrip("\ufeff"))
    except (ValueError, RecursionError) as exc:
        raise ConfigLoadError([f"{source_name}: {json_error(exc)}"]) from None
    engine_value, instance_values = _shape(ctx, data)
    engine = _engine(ctx, engine_value, ("engine",)) if engine_value is not None else EngineConfig()
    instances: list[InstanceConfig] = []
    first_seen: dict[str, Path] = {}
    for value, path in instance_values:
        instance = build_instance(ctx, value, path, engine.server_time_zone)
        if instance is None:
            continue
        if instance.id in first_seen:
            ctx.error(path, f"instance id {instance.id!r} is already used by {ctx.where(first_seen[instance.id])}")
            continue
        first_seen[instance.id] = path
        instances.append(instance)
    if engine.listen is None and engine.webhooks.listen is None:
        for instance, path in ((i, first_seen[i.id]) for i in instances if i.receives_webhooks):
            ctx.warn(path, "a webhook instance, but neither engine.listen nor engine.webhooks.listen is set: "
                           "nothing receives its webhooks")
    if engine.listen is not None and engine.listen == engine.webhooks.listen and engine.listen[1] != 0:
        ctx.error(("engine", "webhooks", "listen"), "is the same address as engine.listen: leave it out to serve "
                                                    "the webhooks there")
    ctx.finish()
    if ctx.errors:
        raise ConfigLoadError(ctx.errors, ctx.warnings)
    return LoadResult(Config(source_name, engine, tuple(instances)), tuple(ctx.warnings))


def _shape(ctx: Context, data: object) -> tuple[object | None, list[tuple[object, Path]]]:
    """(engine value or None, [(instance value, its path)]) for the three file shapes."""
    if isinstance(data, list):
        if not data:
            ctx.warn((), "the list of instances is empty: nothing to poll")
        return None, [(value, (i,)) for i, value in enumerate(data)]
    if isinstance(data, dict) and ("instances" in data or "engine" in data):
        ctx.check_keys(data, (), known=TOP_KEYS, required=("instances",))
        values = data.get("instances", [])
        if not isinstance(values, list):
            ctx.error(("instances",), f"expected a list of instance bodies, got {kind(values)}")
            values = []
        elif not values:
            ctx.warn(("instances",), "is empty: nothing to poll")
        return data.get("engine"), [(value, ("instances", i)) for i, value in enumerate(values)]
    if isinstance(data, dict) and any(key in data for key in ("configuration", "element", "id", "name", "api")):
        return None, [(data, ())]
    ctx.error((), f"expected an instance body ({{\"element\": ..., \"configuration\": ...}}), a list of "
                  f"them, or {{\"engine\": ..., \"instances\": [...]}}; got {kind(data)}"
                  + (" without any of those keys" if isinstance(data, dict) else ""))
    return None, []


def _engine(ctx: Context, value: object, path: Path) -> EngineConfig:
    obj = ctx.obj(value, path)
    if obj is None:
        return EngineConfig()
    ctx.check_keys(obj, path, known=ENGINE_KEYS)
    out: dict[str, object] = {}
    if "statePath" in obj:
        state = ctx.text(obj["statePath"], path + ("statePath",))
        if state is not None and not state.strip():
            ctx.error(path + ("statePath",), "is empty")
        out["state_path"] = state
    numbers = (("lookbackSeconds", "lookback_seconds", False), ("shutdownTimeoutSeconds",
               "shutdown_timeout_seconds", True), ("maxClockSkewSeconds", "max_clock_skew_seconds", True))
    for key, name, positive in numbers:
        if key in obj:
            out[name] = ctx.number(obj[key], path + (key,), "a number of seconds", positive=positive,
                                   at_most=MAX_LOOKBACK if key == "lookbackSeconds" else None)
    for key, name in (("maxConcurrentPolls", "max_concurrent_polls"), ("maxResponseBytes", "max_response_bytes")):
        if key in obj:
            out[name] = ctx.integer(obj[key], path + (key,))
    if "serverTimeZone" in obj:
        out["server_time_zone"] = ctx.zone(obj["serverTimeZone"], path + ("serverTimeZone",))
    if "listen" in obj:
        out["listen"] = _listen(ctx, obj["listen"], path + ("listen",))
    if "delivery" in obj:
        out["delivery"] = _delivery(ctx, obj["delivery"], path + ("delivery",))
    if "log" in obj:
        out["log"] = _log(ctx, obj["log"], path + ("log",))
    if "retention" in obj:
        out["retention"] = _retention(ctx, obj["retention"], path + ("retention",))
    if "webhooks" in obj:
        out["webhooks"] = _webhooks(ctx, obj["webhooks"], path + ("webhooks",))
    if "api" in obj:
        out["api"] = _management_api(ctx, obj["api"], path + ("api",))
        if out["api"] is not None and "listen" not in obj:
            ctx.warn(path + ("api",), "is set but engine.listen is not: the management API is served on engine.listen")
    return EngineConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]


def _listen(ctx: Context, value: object, path: Path) -> tuple[str, int] | None:
    text = ctx.text(value, path, "\"HOST:PORT\"")
    if text is None:
        return None
    host, colon, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    # port 0: any free port (the daemon logs the one it got)
    if not colon or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        ctx.error(path, f"expected \"HOST:PORT\" such as \"127.0.0.1:9100\", got {describe(text)}")
        return None
    return host, int(port)


def _delivery(ctx: Context, value: object, path: Path) -> DeliveryConfig | None:
    obj = ctx.obj(value, path)
    if obj is None:
        return None
    ctx.check_keys(obj, path, known=DELIVERY_KEYS)
    out: dict[str, object] = {}
    for key, name in (("batchSize", "batch_size"), ("concurrencyPerEndpoint", "concurrency_per_endpoint")):
        if key in obj:
            out[name] = ctx.integer(obj[key], path + (key,))
    if "timeoutSeconds" in obj:
        out["timeout_seconds"] = ctx.number(obj["timeoutSeconds"], path + ("timeoutSeconds",),
                                            "a number of seconds", positive=True)
    if "standardWebhooks" in obj:
        out["standard_webhooks"] = ctx.boolean(obj["standardWebhooks"], path + ("standardWebhooks",))
    if "retrySchedule" in obj:
        out["retry_schedule"] = _schedule(ctx, obj["retrySchedule"], path + ("retrySchedule",))
    return DeliveryConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]


def _retention(ctx: Context, value: object, path: Path) -> RetentionConfig | None:
    obj = ctx.obj(value, path)
    if obj is None:
        return None
    ctx.check_keys(obj, path, known=RETENTION_KEYS)
    out = {}
    for key in RETENTION_KEYS:  # deliveredDays -> delivered_days
        if key in obj:
            out[key[:-len("Days")] + "_days"] = ctx.number(obj[key], path + (key,), "a number of days", positive=True)
    return RetentionConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]


def _webhooks(ctx: Context, value: object, path: Path) -> WebhooksEngineConfig | None:
    obj = ctx.obj(value, path)
    if obj is None:
        return None
    ctx.check_keys(obj, path, known=WEBHOOKS_KEYS)
    out: dict[str, object] = {}
    if "listen" in obj:
        out["listen"] = _listen(ctx, obj["listen"], path + ("listen",))
    if "publicUrl" in obj:
        text = ctx.text(obj["publicUrl"], path + ("publicUrl",), "an http:// or https:// URL")
        if text is not None and ctx.check_http_url(text, path + ("publicUrl",)):
            if "?" in text or "#" in text:
                ctx.error(path + ("publicUrl",), "cannot have a query or a fragment: /webhooks/... is appended to it")
            else:
                out["public_url"] = text.rstrip("/")
    if "maxBodyBytes" in obj:
        out["max_body_bytes"] = ctx.integer(obj["maxBodyBytes"], path + ("maxBodyBytes",), positive=True)
    if "dedupeHours" in obj:
        out["dedupe_hours"] = ctx.number(obj["dedupeHours"], path + ("dedupeHours",), "a number of hours",
                                         positive=True)
    return WebhooksEngineConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]


def _management_api(ctx: Context, value: object, path: Path) -> ManagementApiConfig | None:
    obj = ctx.obj(value, path)
    if obj is None:
        return None
    if not ctx.check_keys(obj, path, known=MANAGEMENT_API_KEYS, required=MANAGEMENT_API_KEYS):
        return None
    secrets: list[SecretStr] = []
    for key in MANAGEMENT_API_KEYS:
        text = ctx.text(obj[key], path + (key,))
        if text is None:
            return None
        if len(text) < MIN_API_SECRET_LENGTH:
            ctx.error(path + (key,), f"is {len(text)} characters long: a secret of fewer than "
                                     f"{MIN_API_SECRET_LENGTH} is easy to guess (use ${{env:...}})")
            return None
        secrets.append(SecretStr(text))
    return ManagementApiConfig(*secrets)


def _schedule(ctx: Context, value: object, path: Path) -> tuple[float, ...] | None:
    if not isinstance(value, list) or not value:
        ctx.error(path, f"expected a non-empty list of waits in seconds, got {kind(value)}")
        return None
    waits = [ctx.number(v, path + (i,), "a number of seconds", positive=True) for i, v in enumerate(value)]
    return None if any(w is None for w in waits) else tuple(w for w in waits if w is not None)


def _log(ctx: Context, value: object, path: Path) -> LogConfig | None:
    obj = ctx.obj(value, path)
    if obj is None:
        return None
    ctx.check_keys(obj, path, known=LOG_KEYS)
    fmt, level = "text", "INFO"
    if "format" in obj:
        text = ctx.text(obj["format"], path + ("format",))
        if text is not None and text.strip().lower() not in LOG_FORMATS:
            ctx.error(path + ("format",), f"expected text or json, got {describe(text)}")
        fmt = (text or "text").strip().lower()
    if "level" in obj:
        text = ctx.text(obj["level"], path + ("level",))
        if text is not None and text.strip().upper() not in LOG_LEVELS:
            ctx.error(path + ("level",), f"expected one of {', '.join(LOG_LEVELS)}, got {describe(text)}")
        level = (text or "INFO").strip().upper()
    return LogConfig(format=fmt, level=level)
