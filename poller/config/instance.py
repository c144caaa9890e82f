"""One instance: a Cloud Elements instance body plus our own ``id``, ``name`` and ``api`` keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from poller.config import templates
from poller.config.resource import build_resource
from poller.config.types import ApiConfig, InstanceConfig, ResourceConfig, SecretStr
from poller.config.urls import unsendable_problem
from poller.config.values import Context, Path, close_match, decode_json, describe, json_error, kind
from poller.config.webhook import LIST_IDS, WEBHOOK_KEYS, build_webhook, whsec_problem

__all__ = ["element_key", "API_KEYS", "CE_INSTANCE_KEYS", "CONFIGURATION_IGNORED", "CONFIGURATION_KEYS", "INSTANCE_KEYS",
           "build_instance", "normalise_resource_name"]

ENABLED = "event.notification.enabled"
VENDOR_TYPE = "event.vendor.type"
CALLBACK_URL = "event.notification.callback.url"
SIGNATURE_KEY = "event.notification.signature.key"
REFRESH_INTERVAL = "event.poller.refresh_interval"
POLLER_CONFIGURATION = "event.poller.configuration"
CONFIGURATION_KEYS = (ENABLED, VENDOR_TYPE, CALLBACK_URL, SIGNATURE_KEY, REFRESH_INTERVAL, POLLER_CONFIGURATION,
                      *WEBHOOK_KEYS)
# Cloud Elements event keys that poller does not implement: a warning says they are ignored.
CONFIGURATION_IGNORED = (
    "event.poller.urls", "event.objects", "event.metadata", "event.notification.instance.finder",
    "event.notification.callback.headers", "event.notification.basic.username",
    "event.notification.basic.password", "event.notification.subscription.id", "event.helper.key",
    "event.raw.enabled", "event.notification.type", "hooks",
)
INSTANCE_KEYS = ("id", "name", "api", "configuration")
# Keys of a Cloud Elements instance body that we accept silently (element and tags are read).
CE_INSTANCE_KEYS = ("element", "tags", "providerData", "externalAuthentication", "description", "$schema")
API_KEYS = ("baseUrl", "headers", "timeoutSeconds", "verifyTls")
VENDOR_TYPES = ("polling", "webhook", "webhooks")
DEFAULT_ELEMENT_KEY = "poller"
BACK_TO_BACK_MINUTES = 1 / 60  # below a second, a resource is polled again the moment its poll ends
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def normalise_resource_name(name: str) -> str:
    """Resource names are compared ignoring case, surrounding white space and slashes."""
    return name.strip().strip("/").strip().casefold()


def build_instance(ctx: Context, value: object, path: Path, server_zone: str) -> InstanceConfig | None:
    obj = ctx.obj(value, path, "an object (an instance body with a \"configuration\")")
    if obj is None:
        return None
    errors_before = len(ctx.errors)
    ctx.check_keys(obj, path, known=INSTANCE_KEYS + CE_INSTANCE_KEYS, required=("configuration",),
                   ignored=("hooks",))
    element_key = _element_key(ctx, obj, path)
    instance_id, name = _identity(ctx, obj, path, element_key)
    tags = _tags(ctx, obj, path)
    api, base = _api(ctx, obj["api"], path + ("api",)) if "api" in obj else (ApiConfig(), None)
    conf_path = path + ("configuration",)
    conf = ctx.obj(obj["configuration"], conf_path) if "configuration" in obj else None
    if conf is None:
        return None
    enabled = ctx.boolean(conf[ENABLED], conf_path + (ENABLED,)) if ENABLED in conf else False
    vendor = _vendor_type(ctx, conf, conf_path)
    # DESIGN §10: without an event.poller.configuration there is nothing to poll, so the events can
    # only be pushed: a webhook instance (unless the key is only misspelt: then it is missing)
    misspelt = POLLER_CONFIGURATION not in conf and close_match(
        POLLER_CONFIGURATION, [k for k in conf if k not in CONFIGURATION_KEYS], cutoff=0.75) is not None
    webhooks = vendor in ("webhook", "webhooks") or (POLLER_CONFIGURATION not in conf and not misspelt)
    polled = bool(enabled) and vendor == "polling" and not webhooks
    required = (CALLBACK_URL, POLLER_CONFIGURATION) if polled else (CALLBACK_URL,) if enabled and webhooks else ()
    ctx.check_keys(conf, conf_path, known=CONFIGURATION_KEYS + (LIST_IDS,), required=required,
                   ignored=CONFIGURATION_IGNORED, accept=lambda key: not key.startswith("event."))
    webhook = build_webhook(ctx, conf, conf_path, element_key) if webhooks else None
    for key in () if webhooks else [k for k in WEBHOOK_KEYS if k in conf]:
        ctx.warn(conf_path + (key,), "is only read for webhook instances (event.vendor.type webhook, or no "
                                     "event.poller.configuration); ignored")
    callback, callback_secrets = _callback(ctx, conf, conf_path)
    signature = _signature_key(ctx, conf, conf_path)
    interval = 15.0
    if REFRESH_INTERVAL in conf:
        interval = ctx.number(conf[REFRESH_INTERVAL], conf_path + (REFRESH_INTERVAL,), "a number of minutes",
                              positive=True) or 15.0
        if polled and interval < BACK_TO_BACK_MINUTES:
            # allowed (tests and demos poll fast), but a real provider gets hammered: often a unit slip
            ctx.warn(conf_path + (REFRESH_INTERVAL,), f"is {interval * 60:g} seconds (the value is in minutes): "
                                                      "the provider is asked more than once a second for each resource")
    resources = _resources(ctx, conf, conf_path, base, server_zone, polled)
    if len(ctx.errors) > errors_before or instance_id is None:
        return None
    return InstanceConfig(
        id=instance_id, name=name or instance_id, element_key=element_key, tags=tags, enabled=bool(enabled),
        vendor_type=vendor or "polling", callback_url=callback, callback_secrets=callback_secrets,
        signature_key=signature,
        refresh_interval_minutes=interval, api=api, resources=resources, webhook=webhook)


def element_key(body: Mapping[str, Any]) -> str:
    """An instance body's element key: ``{"key": ...}``, or the key itself; else the default."""
    element = body.get("element")
    if isinstance(element, dict):
        element = element.get("key")
    return element.strip() if isinstance(element, str) and element.strip() else DEFAULT_ELEMENT_KEY


def _element_key(ctx: Context, obj: dict, path: Path) -> str:
    element = obj.get("element")
    if element is not None and not isinstance(element, (dict, str)):
        ctx.error(path + ("element",), f"expected an object such as {{\"key\": \"hubspot\"}}, got {kind(element)}")
    return element_key(obj)


def _identity(ctx: Context, obj: dict, path: Path, element_key: str) -> tuple[str | None, str | None]:
    values: dict[str, str | None] = {}
    for key in ("id", "name"):
        if key in obj:
            text = ctx.text(obj[key], path + (key,), "a string or a number")
            if text is not None and not text.strip():
                ctx.error(path + (key,), "is empty")
                text = None
            values[key] = text.strip() if text is not None else None
    if "id" in obj or "name" in obj:
        instance_id = values.get("id", values.get("name"))
        if instance_id is not None and "/" in instance_id:
            # the state file keys resources as "<instance id>/<resource name>"
            where = "id" if "id" in obj else "name"
            ctx.error(path + (where,), f"{instance_id!r}: an instance id cannot contain '/' "
                                       "(set an \"id\" without one)" if where == "name" else
                      f"{instance_id!r}: an instance id cannot contain '/'")
            instance_id = None
        return instance_id, values.get("name")
    if element_key != DEFAULT_ELEMENT_KEY:
        return element_key, element_key
    ctx.error(path, "the instance needs an \"id\" or a \"name\" (it identifies the instance in "
                    "notifications and in the state file)")
    return None, None


def _tags(ctx: Context, obj: dict, path: Path) -> tuple[str, ...]:
    if "tags" not in obj:
        return ()
    tags = obj["tags"]
    if not isinstance(tags, list):
        ctx.error(path + ("tags",), f"expected a list of strings, got {kind(tags)}")
        return ()
    out = [ctx.text(tag, path + ("tags", i)) for i, tag in enumerate(tags)]
    return tuple(t for t in out if t is not None)


def _vendor_type(ctx: Context, conf: dict, conf_path: Path) -> str | None:
    if VENDOR_TYPE not in conf:
        return "polling"
    text = ctx.text(conf[VENDOR_TYPE], conf_path + (VENDOR_TYPE,))
    if text is None:
        return None
    if text.strip().lower() not in VENDOR_TYPES:
        ctx.error(conf_path + (VENDOR_TYPE,), f"expected polling, webhook or webhooks, got {describe(text)}")
        return None
    return text.strip().lower()


def _signature_key(ctx: Context, conf: dict, conf_path: Path) -> SecretStr | None:
    if SIGNATURE_KEY not in conf:
        return None
    where = conf_path + (SIGNATURE_KEY,)
    key = ctx.text(conf[SIGNATURE_KEY], where)
    if key is None:
        return None
    if not key:
        ctx.warn(where, "is empty: notifications will not be signed")
        return None
    problem = whsec_problem(key, "webhook-signature would be made with an empty key, which anyone can forge")
    if problem is not None:
        ctx.error(where, problem)
        return None
    return SecretStr(key)


def _api(ctx: Context, value: object, path: Path) -> tuple[ApiConfig, templates.Template | None]:
    obj = ctx.obj(value, path)
    if obj is None:
        return ApiConfig(), None
    ctx.check_keys(obj, path, known=API_KEYS)
    base_url, base = _base_url(ctx, obj["baseUrl"], path + ("baseUrl",)) if "baseUrl" in obj else (None, None)
    headers: list[tuple[str, str]] = []
    if "headers" in obj:
        raw = ctx.obj(obj["headers"], path + ("headers",), "an object of header names and values")
        for name in getattr(raw, "duplicates", ()):
            ctx.error(path + ("headers", name), "this header is given more than once")
        spelled: dict[str, str] = {}  # (HTTP header names are case-insensitive: both would be sent)
        for name, header in (raw or {}).items():
            where = path + ("headers", name)
            if spelled.setdefault(name.lower(), name) != name:
                ctx.error(where, f"this header is given more than once (also as {spelled[name.lower()]!r})")
                continue
            if not _HEADER_NAME.fullmatch(name):
                ctx.error(where, f"not a valid HTTP header name: {describe(name)}")
                continue
            text = ctx.text(header, where, "a string or a number")
            problem = _header_value_problem(text) if text is not None else None
            if problem is not None:
                ctx.error(where, problem)
            elif text:  # an empty value (e.g. an unset ${env:NAME:-}) means: do not send the header
                headers.append((name, SecretStr(text)))
    timeout = ctx.number(obj["timeoutSeconds"], path + ("timeoutSeconds",), "a number of seconds",
                         positive=True) if "timeoutSeconds" in obj else 30.0
    verify = ctx.boolean(obj["verifyTls"], path + ("verifyTls",)) if "verifyTls" in obj else True
    if verify is False:
        ctx.warn(path + ("verifyTls",), "is false: TLS certificates are not checked")
    api = ApiConfig(base_url=base_url, headers=tuple(headers), timeout_seconds=timeout or 30.0,
                    verify_tls=verify is not False)
    return api, base


def _callback(ctx: Context, conf: dict, path: Path) -> tuple[str | None, tuple[str, ...]]:
    """The callback URL, and the parts of it that came from ``${env:...}``: they are masked
    wherever the URL is shown (a token in its path or in a query parameter with any name)."""
    if CALLBACK_URL not in conf:
        return None, ()
    where = path + (CALLBACK_URL,)
    resolved = ctx.spanned(conf[CALLBACK_URL], where, "an http:// or https:// URL")
    if resolved is None:
        return None, ()
    text, spans = resolved
    url = SecretStr(text) if spans else text  # a message about it must not show it
    if not ctx.check_http_url(url, where):
        return None, ()
    problem = unsendable_problem(text, secret=bool(spans))
    if problem is not None:
        ctx.error(where, problem)
        return None, ()
    return url, tuple(dict.fromkeys(text[a:b] for a, b in spans if b > a))


def _header_value_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as a header value (httpx encodes them as ASCII; a control
    character would split or corrupt the request), naming the position, never the value: it may
    be a secret."""
    for i, char in enumerate(text):
        if char in "\r\n":
            return "a header value cannot contain a line break"
        if not char.isascii():
            return f"a header value must be ASCII: character {i + 1} is U+{ord(char):04X}"
        if (char < " " and char != "\t") or char == "\x7f":
            return f"a header value cannot contain control characters: character {i + 1} is U+{ord(char):04X}"
    return None


def _base_url(ctx: Context, value: object, where: Path) -> tuple[str | None, templates.Template | None]:
    resolved = ctx.spanned(value, where, "an http:// or https:// URL")
    if resolved is None:
        return None, None
    text, spans = resolved
    if not ctx.check_http_url(text, where):
        return None, None
    if "?" in text or "#" in text:  # (the value is not shown: a query often holds a key)
        ctx.error(where, "has a query string or fragment: a relative url is appended to api.baseUrl (DESIGN §9), "
                         "so it would end up inside the path; put query parameters in each resource's url, "
                         "or a key in api.headers")
        return None, None
    try:
        base = templates.parse(text, opaque=spans)
    except templates.TemplateError as exc:
        for problem in exc.problems:
            ctx.error(where, problem)
        return None, None
    if base.placeholders:
        ctx.error(where, "cannot contain ${...} placeholders (put them in the resource's url)")
        return None, None
    for param in base.path_parameters:
        ctx.warn(where, f"unsubstituted path parameter {{{param}}}: replace it with a real value")
    return (SecretStr(text) if spans else text), base


def _resources(ctx: Context, conf: dict, conf_path: Path, base: templates.Template | None,
               server_zone: str, polled: bool) -> tuple[ResourceConfig, ...]:
    if POLLER_CONFIGURATION not in conf:
        return ()
    where = conf_path + (POLLER_CONFIGURATION,)
    value = conf[POLLER_CONFIGURATION]
    if isinstance(value, str):
        try:
            value = decode_json(value)
        except (ValueError, RecursionError) as exc:
            ctx.error(where, _string_json_problem(exc))
            return ()
    resources = ctx.obj(value, where, "an object keyed by resource name (or a JSON string of one)")
    if resources is None:
        return ()
    for key in getattr(resources, "duplicates", ()):
        ctx.error(where + (key,), "this resource is given more than once")
    if not resources and polled:
        ctx.warn(where, "has no resources: nothing will be polled")
    seen: dict[str, str] = {}
    out = []
    for name, body in resources.items():
        norm = normalise_resource_name(name)
        if not norm:
            ctx.error(where + (name,), "a resource name cannot be empty")
            continue
        if norm in seen:
            ctx.error(where + (name,), f"duplicate resource name: {name!r} and {seen[norm]!r} are the same "
                                       "resource (names are compared ignoring case, white space and slashes)")
            continue
        seen[norm] = name
        resource = build_resource(ctx, name, body, where + (name,), base=base, server_zone=server_zone)
        if resource is not None:
            out.append(resource)
    return tuple(out)


def _string_json_problem(exc: Exception) -> str:
    message = json_error(exc)
    if message.startswith("line "):
        location, _, rest = message.partition(": not valid JSON: ")
        return f"is a string that is not valid JSON: {rest} (at {location} of the string)"
    return f"is a string that is {message}"
