"""A webhook instance's keys (DESIGN §10): ``event.webhook.*`` and Campaign Monitor's ``events.list.ids``.

Which instance is a webhook instance is decided in :mod:`poller.config.instance`; this module
reads what such an instance receives and how it is verified, into a frozen
:class:`~poller.config.types.WebhookConfig`.
"""

from __future__ import annotations

import base64
import re

from poller import javadate, jsonpath
from poller.config.types import SecretStr, VerifyConfig, WebhookConfig, WebhookEventsConfig
from poller.config.values import Context, Path, describe
from poller.errors import DateFormatError
from poller.javadate.zone import ZoneError

__all__ = ["WEBHOOK_KEYS", "EVENTS_KEYS", "VERIFY_KEYS", "VERIFY_TYPES", "LIST_IDS", "build_webhook",
           "webhook_kind"]

TOKEN = "event.webhook.token"
TIME_ZONE = "event.webhook.timeZone"
EVENTS = "event.webhook.events"
VERIFY = "event.webhook.verify"
LIST_IDS = "events.list.ids"  # Campaign Monitor's (and, for registration, Mailchimp's) list ids
WEBHOOK_KEYS = (TOKEN, TIME_ZONE, EVENTS, VERIFY)
EVENTS_KEYS = ("path", "idField", "typeField", "types", "objectType", "objectTypeField", "dateField", "dateFormat")
VERIFY_TYPES = ("hmac", "standardwebhooks", "basic", "none")
VERIFY_KEYS: dict[str, tuple[str, ...]] = {
    "hmac": ("header", "algorithm", "encoding", "prefix", "secret", "timestampHeader", "toleranceSeconds"),
    "standardwebhooks": ("secret", "toleranceSeconds"),
    "basic": ("username", "password"),
    "none": (),
}
EVENT_TYPES = ("CREATED", "UPDATED", "DELETED")
KINDS = {"campaignmonitor": "campaignmonitor", "mailchimpv3": "mailchimp", "mailchimp": "mailchimp"}
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
MIN_TOKEN_LENGTH = 16
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def whsec_problem(secret: str, empty_means: str) -> str | None:
    """What is wrong with a Standard Webhooks secret (``whsec_`` + the base64 of its bytes), or
    None; ``empty_means``: what an empty key would allow, for the message."""
    if not secret.startswith("whsec_"):
        return None
    try:
        decoded = base64.b64decode(secret[len("whsec_"):], validate=True)
    except ValueError:  # (binascii.Error is one)
        return ("starts with whsec_ but the rest is not base64 (a Standard Webhooks secret is whsec_ followed "
                "by the base64 of its bytes)")
    return None if decoded else f"is whsec_ with nothing after it: {empty_means}"


def webhook_kind(element_key: str) -> str:
    """campaignmonitor, mailchimp, or generic (any other element)."""
    return KINDS.get(element_key.strip().lower(), "generic")


def build_webhook(ctx: Context, conf: dict, conf_path: Path, element_key: str) -> WebhookConfig:
    kind = webhook_kind(element_key)
    # DESIGN §9: the segment after /hubs/ of the URL, else the element key; a webhook has no URL
    out: dict[str, object] = {"kind": kind, "hub_key": element_key}
    if TOKEN in conf:
        out["token"] = _token(ctx, conf[TOKEN], conf_path + (TOKEN,))
    if TIME_ZONE in conf:
        out["time_zone"] = ctx.zone(conf[TIME_ZONE], conf_path + (TIME_ZONE,)) or "UTC"
    if LIST_IDS in conf:
        out["list_ids"] = _list_ids(ctx, conf[LIST_IDS], conf_path + (LIST_IDS,))
    zone = str(out.get("time_zone", "UTC"))
    if EVENTS in conf:
        where = conf_path + (EVENTS,)
        if kind != "generic":
            ctx.warn(where, f"is for the generic element: {element_key} events are read as DESIGN §10 says; ignored")
        else:
            events = _events(ctx, conf[EVENTS], where, zone)
            if events is not None:
                out["events"] = events
    if VERIFY in conf:
        where = conf_path + (VERIFY,)
        if kind != "generic":
            ctx.warn(where, f"{element_key} signs nothing: its token (and the list ids) protect it; ignored")
        else:
            verify = _verify(ctx, conf[VERIFY], where)
            if verify is not None:
                out["verify"] = verify
    return WebhookConfig(**out)  # type: ignore[arg-type]


def _token(ctx: Context, value: object, where: Path) -> SecretStr | None:
    text = ctx.text(value, where)
    if text is None:
        return None
    if not text:
        ctx.warn(where, "is empty: a random token is generated and kept in the state file")
        return None
    if not _TOKEN_CHARS.fullmatch(text):
        # never show the value: it is a secret
        ctx.error(where, "may only contain letters, digits and . _ ~ - (it is a part of the webhook URL)")
        return None
    if len(text) < MIN_TOKEN_LENGTH:
        ctx.warn(where, f"is {len(text)} characters long: a token of fewer than {MIN_TOKEN_LENGTH} is easy to guess")
    return SecretStr(text)


def _list_ids(ctx: Context, value: object, where: Path) -> tuple[str, ...]:
    if isinstance(value, list):
        items = [ctx.text(v, where + (i,), "a list id") for i, v in enumerate(value)]
        ids = [i.strip() for i in items if i is not None and i.strip()]
    else:
        text = ctx.text(value, where, "comma-separated list ids")
        ids = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not ids:
        ctx.warn(where, "is empty: events of every list are accepted")
    return tuple(dict.fromkeys(ids))


def _paths(ctx: Context, obj: dict, key: str, where: Path) -> tuple[tuple, ...] | None:
    if key not in obj:
        return None
    text = ctx.text(obj[key], where + (key,))
    if text is None:
        return None
    try:
        return (jsonpath.parse(text),)
    except jsonpath.PathError as exc:
        ctx.error(where + (key,), f"{exc.reason} at position {exc.position} of the JSON path {describe(text)}")
        return None


def _events(ctx: Context, value: object, where: Path, zone: str) -> WebhookEventsConfig | None:
    obj = ctx.obj(value, where)
    if obj is None:
        return None
    errors = len(ctx.errors)
    ctx.check_keys(obj, where, known=EVENTS_KEYS)
    out: dict[str, object] = {}
    for key, name in (("idField", "id_path"), ("typeField", "type_path"), ("dateField", "date_path")):
        paths = _paths(ctx, obj, key, where)
        if paths is not None:
            out[name] = paths
    path = _paths(ctx, obj, "path", where)
    if path is not None:
        out["path"] = path[0] or None
    kind_path = _paths(ctx, obj, "objectTypeField", where)
    if kind_path is not None:
        out["object_type_path"] = kind_path[0]
    if "objectType" in obj:
        text = ctx.text(obj["objectType"], where + ("objectType",))
        if text is not None and not text.strip():
            ctx.error(where + ("objectType",), "is empty")
        elif text is not None:
            out["object_type"] = text.strip()
            out.setdefault("object_type_path", None)
    if "types" in obj:
        types = ctx.obj(obj["types"], where + ("types",), "an object of provider values and CREATED, UPDATED or DELETED")
        pairs = []
        for provider_value, ours in (types or {}).items():
            text = ctx.text(ours, where + ("types", provider_value))
            if text is None:
                continue
            if text.strip().upper() not in EVENT_TYPES:
                ctx.error(where + ("types", provider_value), f"expected CREATED, UPDATED or DELETED, got {describe(text)}")
                continue
            pairs.append((provider_value, text.strip().upper()))
        out["types"] = tuple(pairs)
    if "dateFormat" in obj:
        text = ctx.text(obj["dateFormat"], where + ("dateFormat",))
        if text is not None:
            pattern = javadate.MILLISECONDS if text.strip().lower() == javadate.MILLISECONDS else text
            try:
                out["date_format"] = javadate.compile(pattern, zone)
            except DateFormatError as exc:
                ctx.error(where + ("dateFormat",), f"{exc.reason} at position {exc.position}")
            except ZoneError as exc:  # (the zone was checked already)
                ctx.error(where + ("dateFormat",), str(exc))
    if len(ctx.errors) > errors:
        return None
    return WebhookEventsConfig(**out)  # type: ignore[arg-type]


def _verify(ctx: Context, value: object, where: Path) -> VerifyConfig | None:
    obj = ctx.obj(value, where)
    if obj is None:
        return None
    if "type" not in obj:
        ctx.error(where, f"type is missing (one of {', '.join(VERIFY_TYPES)})")
        return None
    kind_text = ctx.text(obj["type"], where + ("type",))
    if kind_text is None:
        return None
    kind = kind_text.strip().lower().replace("-", "").replace("_", "")
    if kind not in VERIFY_TYPES:
        ctx.error(where + ("type",), f"expected one of {', '.join(VERIFY_TYPES)}, got {describe(kind_text)}")
        return None
    errors = len(ctx.errors)
    required = {"hmac": ("header", "secret"), "standardwebhooks": ("secret",),
                "basic": ("username", "password")}.get(kind, ())
    ctx.check_keys(obj, where, known=("type",) + VERIFY_KEYS[kind], required=required)
    out: dict[str, object] = {"type": kind}
    for key in ("header", "timestampHeader"):
        if key in obj:
            text = ctx.text(obj[key], where + (key,))
            if text is not None and not _HEADER_NAME.fullmatch(text.strip()):
                ctx.error(where + (key,), f"not a valid HTTP header name: {describe(text)}")
            elif text is not None:
                out["header" if key == "header" else "timestamp_header"] = text.strip().lower()
    for key, choices in (("algorithm", ("sha1", "sha256", "sha512")), ("encoding", ("hex", "base64"))):
        if key in obj:
            text = ctx.text(obj[key], where + (key,))
            if text is not None and text.strip().lower().replace("-", "") not in choices:
                ctx.error(where + (key,), f"expected one of {', '.join(choices)}, got {describe(text)}")
            elif text is not None:
                out[key] = text.strip().lower().replace("-", "")
    if "prefix" in obj:
        out["prefix"] = ctx.text(obj["prefix"], where + ("prefix",)) or ""
    if "toleranceSeconds" in obj:
        out["tolerance_seconds"] = ctx.number(obj["toleranceSeconds"], where + ("toleranceSeconds",),
                                              "a number of seconds", positive=True) or 300.0
    for key in ("secret", "username", "password"):
        if key in obj:
            text = ctx.text(obj[key], where + (key,))
            if text is not None and not text and key != "username":
                ctx.error(where + (key,), "is empty")
            elif text is not None:
                out[key] = SecretStr(text)
    secret = out.get("secret")
    if kind == "standardwebhooks" and isinstance(secret, str):
        problem = whsec_problem(secret, "requests signed with an empty key, which anyone can make, would be accepted")
        if problem is not None:
            ctx.error(where + ("secret",), problem)
    if len(ctx.errors) > errors:
        return None
    return VerifyConfig(**out)  # type: ignore[arg-type]
