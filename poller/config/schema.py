"""The JSON Schema (draft 2020-12) of the configuration file, built from the loader's own key lists.

The schema accepts what :mod:`poller.config` accepts, and no less: unknown keys are allowed
(the loader only warns about them), values may be strings or JSON natives, and any string
may be an ``${env:...}`` reference. It cannot check date patterns, zones or placeholders;
``poller check`` does that.
"""

from __future__ import annotations

from poller.config.instance import (
    API_KEYS,
    CALLBACK_URL,
    CE_INSTANCE_KEYS,
    CONFIGURATION_KEYS,
    ENABLED,
    INSTANCE_KEYS,
    POLLER_CONFIGURATION,
    REFRESH_INTERVAL,
    SIGNATURE_KEY,
    VENDOR_TYPE,
    VENDOR_TYPES,
)
from poller.config.load import (
    DELIVERY_KEYS,
    ENGINE_KEYS,
    LOG_FORMATS,
    LOG_KEYS,
    LOG_LEVELS,
    RETENTION_KEYS,
    TOP_KEYS,
    WEBHOOKS_KEYS,
    MANAGEMENT_API_KEYS,
)
from poller.config.webhook import EVENTS, EVENTS_KEYS, LIST_IDS, TIME_ZONE, TOKEN, VERIFY, VERIFY_KEYS, VERIFY_TYPES
from poller.config.resource import DATES_KEYS, PAGINATION_COMMON, PAGINATION_TYPES, RESOURCE_KEYS, TIME_ZONE_KEYS

__all__ = ["SCHEMA"]

ENV = r"\$\{env:"


def _ci(word: str) -> str:
    """A case-insensitive ECMA-262 regex for ``word`` (JSON Schema has no inline flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else ("\\" + c if c in ".$^*+?()[]{}|\\" else c)
                   for c in word)


def _words(*words: str) -> dict:
    """One of ``words`` (any case, surrounding spaces allowed), or an env reference."""
    alternatives = "|".join(_ci(w) for w in words)
    return {"type": "string", "pattern": rf"^\s*(?:{alternatives})\s*$|{ENV}"}


def _boolean(description: str) -> dict:
    return {"description": description, "anyOf": [{"type": "boolean"}, _words("true", "false")]}


def _number(description: str, *, positive: bool = False, integer: bool = False) -> dict:
    native: dict = {"type": "integer" if integer else "number"}
    native["exclusiveMinimum" if positive else "minimum"] = 0
    text = r"^\s*\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$|" + ENV
    return {"description": description, "anyOf": [native, {"type": "string", "pattern": text}]}


def _string(description: str) -> dict:
    return {"description": description, "type": "string"}


def _url(description: str) -> dict:
    return {"description": description, "type": "string", "pattern": rf"^\s*[hH][tT][tT][pP][sS]?://|{ENV}"}


_TZ = {_ci(key): _string("A time zone id: IANA, GMT/UTC, a Java short id (PST) or an offset (-8:00). "
                          "The key is matched case-insensitively.") for key in TIME_ZONE_KEYS}

DATES = {
    "description": "How to read a record's updated and created dates.",
    "type": ["object", "null"],
    "properties": {
        "updatedDateField": _string("JSON path of the updated date (a.b, ['Field Name'])."),
        "updatedDateFormat": _string("A Java SimpleDateFormat pattern, or 'milliseconds' (epoch ms)."),
        "createdDateField": _string("JSON path of the created date."),
        "createdDateFormat": _string("A Java SimpleDateFormat pattern, or 'milliseconds'. Default: updatedDateFormat."),
        "createdCheckTolerance": _number("Seconds within which updated = created means CREATED (default 10)."),
    },
    "patternProperties": {f"^{k}$": v for k, v in _TZ.items()},
}

_PAGINATION_PROPS = {
    "type": {"description": "How the next page is found.", **_words(*PAGINATION_TYPES)},
    "maxPages": _number("Stop after this many pages (default 1000).", positive=True, integer=True),
    "pageSizeParam": _string("Query parameter that carries pageSize (default 'pageSize')."),
    "param": _string("Query parameter that carries the page number, offset, token or cursor."),
    "header": _string("nextPageToken: the response header with the token (default elements-next-page-token)."),
    "path": _string("cursor, nextUrl: JSON path of the next cursor (or the next page's URL) in the body."),
    "start": _number("page: first page number (default 1); offset: first offset (default 0).", integer=True),
    "morePath": _string("page, offset: JSON path of a value saying more pages follow (false, null, missing "
                        "or empty: the last page)."),
}
PAGINATION = {
    "type": "object",
    "properties": _PAGINATION_PROPS,
    "required": ["type"],
    "if": {"properties": {"type": _words("cursor", "nextUrl")}},
    "then": {"required": ["path"]},
}

RESOURCE = {
    "description": "One polled resource; its name is the events' objectType.",
    "type": "object",
    "properties": {
        "url": _string("Absolute http(s) URL, or a path appended to api.baseUrl; may hold ${...} placeholders."),
        "idField": _string("JSON path of the record's id."),
        "datesConfiguration": DATES,
        "pageSize": _number("Records per page.", positive=True, integer=True),
        "pollDelay": _number("Seconds to look back before the last poll (default 0)."),
        "filterByUpdatedDate": _boolean("false: compare the created date instead of the updated one (default true)."),
        "filterByUpdateDate": _boolean("Older spelling of filterByUpdatedDate."),
        "filterByCurrentDate": _boolean("Drop records stamped after the poll started (default false)."),
        "createdCheckTolerance": _number("Seconds within which updated = created means CREATED (default 10)."),
        "recordsPath": _string("JSON path of the record array in the response (default: the body)."),
        "pagination": PAGINATION,
        "initialCursor": {"description": "Backfill from this instant (ISO-8601 with offset, or epoch ms).",
                          "type": ["string", "integer"]},
    },
    "patternProperties": {f"^{k}$": v for k, v in _TZ.items()},
    "required": ["url", "idField"],
}

WEBHOOK_EVENTS = {
    "description": "Generic element: how a pushed JSON body becomes events.",
    "type": "object",
    "properties": {
        "path": _string("JSON path of the array of events (default: the body, or [body])."),
        "idField": _string("JSON path of the object id in an event."),
        "typeField": _string("JSON path of the provider's event type."),
        "types": {"description": "Provider type -> CREATED, UPDATED or DELETED (others: UNKNOWN).",
                  "type": "object", "additionalProperties": _words("CREATED", "UPDATED", "DELETED")},
        "objectType": _string("The events' objectType (default 'events')."),
        "objectTypeField": _string("JSON path of the objectType in an event."),
        "dateField": _string("JSON path of the event's date (default: the time it was received)."),
        "dateFormat": _string("A Java SimpleDateFormat pattern, or 'milliseconds' (default: ISO-8601)."),
    },
}
WEBHOOK_VERIFY = {
    "description": "Generic element: how a request proves where it comes from (default: its token only).",
    "type": "object",
    "properties": {
        "type": _words(*VERIFY_TYPES),
        "header": _string("hmac: the header carrying the signature."),
        "algorithm": _words("sha1", "sha256", "sha512"),
        "encoding": _words("hex", "base64"),
        "prefix": _string("hmac: text before the signature, such as 'sha256='."),
        "secret": _string("hmac, standardwebhooks: the shared secret (whsec_... for Standard Webhooks)."),
        "timestampHeader": _string("hmac: sign '{timestamp}.{body}' with the timestamp from this header."),
        "toleranceSeconds": _number("How old a signed timestamp may be (default 300).", positive=True),
        "username": _string("basic: the user name."),
        "password": _string("basic: the password."),
    },
    "required": ["type"],
}

_ENABLED_TRUE = {"anyOf": [{"const": True}, _words("true")]}
CONFIGURATION = {
    "description": "The Cloud Elements instance configuration; element-specific keys are allowed.",
    "type": "object",
    "properties": {
        ENABLED: _boolean("Poll this instance (default false)."),
        VENDOR_TYPE: {"description": "polling (default); webhook instances are not polled.",
                      **_words(*VENDOR_TYPES)},
        CALLBACK_URL: _url("Where notifications are POSTed (http or https)."),
        SIGNATURE_KEY: _string("Key of the notifications' HMAC-SHA256 signatures."),
        REFRESH_INTERVAL: _number("Minutes between polls (default 15; fractions allowed).", positive=True),
        POLLER_CONFIGURATION: {
            "description": "Resources by name, as an object or as a JSON string of one.",
            "anyOf": [{"type": "object", "additionalProperties": {"$ref": "#/$defs/resource"}},
                      {"type": "string"}],
        },
        TOKEN: _string("Webhook instances: the secret last part of the inbound URL (default: generated once)."),
        TIME_ZONE: _string("Webhook instances: the zone of dates without one (default UTC)."),
        EVENTS: WEBHOOK_EVENTS,
        VERIFY: WEBHOOK_VERIFY,
        LIST_IDS: {"description": "Campaign Monitor (and Mailchimp registration): comma-separated list ids.",
                   "type": ["string", "array"]},
    },
    # an enabled instance needs a callback URL; without event.poller.configuration it is a webhook instance
    "if": {"properties": {ENABLED: _ENABLED_TRUE}, "required": [ENABLED]},
    "then": {"required": [CALLBACK_URL]},
}

API = {
    "description": "How to call the provider's API.",
    "type": "object",
    "properties": {
        "baseUrl": _url("Relative resource urls are appended to this."),
        "headers": {"description": "Request headers (values are secrets).", "type": "object",
                    "additionalProperties": {"type": ["string", "number"]}},
        "timeoutSeconds": _number("Request timeout (default 30).", positive=True),
        "verifyTls": _boolean("Check TLS certificates (default true)."),
    },
}

INSTANCE = {
    "description": "A Cloud Elements instance body, plus poller's own id, name and api keys.",
    "type": "object",
    "properties": {
        "id": {"description": "Instance id (default: name).", "type": ["string", "number"]},
        "name": {"description": "Instance name.", "type": ["string", "number"]},
        "api": {"$ref": "#/$defs/api"},
        "configuration": {"$ref": "#/$defs/configuration"},
        "element": {"description": "{\"key\": \"<elementKey>\"}", "type": ["object", "string"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "providerData": {}, "externalAuthentication": {}, "description": {}, "$schema": {},
    },
    "required": ["configuration"],
}

ENGINE = {
    "type": "object",
    "properties": {
        "statePath": _string("The SQLite state file."),
        "lookbackSeconds": _number("Overlap of each poll with the previous one (default 60)."),
        "serverTimeZone": _string("Zone of ${date:FORMAT} (default UTC)."),
        "maxConcurrentPolls": _number("Default 16.", positive=True, integer=True),
        "shutdownTimeoutSeconds": _number("Default 10.", positive=True),
        "listen": _string("HOST:PORT of /metrics and /healthz (default: off)."),
        "maxResponseBytes": _number("Largest response body read (default 64 MiB).", positive=True, integer=True),
        "maxClockSkewSeconds": _number("A provider Date further from our clock is ignored; the cursor never runs "
                                       "further ahead of our clock (default 3600).", positive=True),
        "retention": {
            "type": "object",
            "properties": {
                "deliveredDays": _number("Delivered notifications are deleted after (default 7).", positive=True),
                "deadDays": _number("Dead letters are deleted after (default 30).", positive=True),
                "inboundDays": _number("Inbound webhook requests are deleted after (default 7).", positive=True),
                "removedDays": _number("A disabled or removed resource's cursor is kept for (default 30).",
                                       positive=True),
            },
        },
        "delivery": {
            "type": "object",
            "properties": {
                "batchSize": _number("Events per notification (default 10).", positive=True, integer=True),
                "timeoutSeconds": _number("Default 15.", positive=True),
                "concurrencyPerEndpoint": _number("Default 4.", positive=True, integer=True),
                "retrySchedule": {"type": "array", "minItems": 1,
                                  "items": _number("Seconds.", positive=True)},
                "standardWebhooks": _boolean("Send Standard Webhooks headers (default true)."),
            },
        },
        "log": {
            "type": "object",
            "properties": {"format": _words(*LOG_FORMATS), "level": _words(*LOG_LEVELS)},
        },
        "webhooks": {
            "type": "object",
            "properties": {
                "listen": _string("HOST:PORT serving only the inbound webhook routes (default: engine.listen)."),
                "publicUrl": _url("The base of the webhook URLs that `poller webhooks` prints."),
                "maxBodyBytes": _number("Largest inbound body (default 4 MiB).", positive=True, integer=True),
                "dedupeHours": _number("A repeated inbound event is dropped within (default 24).", positive=True),
            },
        },
        "api": {
            "type": "object",
            "description": "The management API (Cloud Elements /instances) on engine.listen, served when set.",
            "required": ["userSecret", "organizationSecret"],
            "properties": {
                "userSecret": _string("Authorization: User <userSecret>, ... (at least 16 characters; ${env:...})."),
                "organizationSecret": _string("..., Organization <organizationSecret> (at least 16 characters)."),
            },
        },
    },
}

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:poller:config",
    "title": "poller configuration",
    "description": "One Cloud Elements instance body, a list of them, or {\"engine\": ..., \"instances\": [...]}.",
    "anyOf": [
        {"type": "object", "required": ["instances"],
         "properties": {"engine": {"$ref": "#/$defs/engine"}, "$schema": {"type": "string"},
                        "instances": {"type": "array", "items": {"$ref": "#/$defs/instance"}}}},
        {"type": "array", "items": {"$ref": "#/$defs/instance"}},
        {"$ref": "#/$defs/instance"},
    ],
    "$defs": {
        "engine": ENGINE,
        "instance": INSTANCE,
        "configuration": CONFIGURATION,
        "api": API,
        "resource": RESOURCE,
    },
}

# Kept in step with the loader: tests/test_config.py compares these with the schema.
KEY_LISTS = {
    "top": TOP_KEYS, "engine": ENGINE_KEYS, "delivery": DELIVERY_KEYS, "log": LOG_KEYS, "retention": RETENTION_KEYS,
    "instance": INSTANCE_KEYS + CE_INSTANCE_KEYS, "configuration": CONFIGURATION_KEYS + (LIST_IDS,), "api": API_KEYS,
    "resource": RESOURCE_KEYS, "dates": DATES_KEYS, "webhooks": WEBHOOKS_KEYS, "managementApi": MANAGEMENT_API_KEYS,
    "webhookEvents": EVENTS_KEYS,
    "webhookVerify": ("type",) + tuple(dict.fromkeys(k for keys in VERIFY_KEYS.values() for k in keys)),
    "pagination": PAGINATION_COMMON + tuple(k for keys in PAGINATION_TYPES.values() for k in keys),
}
