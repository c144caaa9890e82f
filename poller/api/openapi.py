"""The OpenAPI 3.1 document of the management API, built from :data:`ROUTES`, the table the
aiohttp routes are registered from (so a route cannot be served without being documented)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from poller import __version__

__all__ = ["BASE", "ROUTES", "Route", "document"]

BASE = "/elements/api-v2"

_ERROR = {"type": "object", "required": ["message"], "properties": {
    "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "required": ["path", "message"],
                                          "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}}}}
_DATE = {"type": ["string", "null"], "format": "date-time"}
_INSTANCE = {"type": "object", "required": ["id", "name", "token", "element", "configuration", "tags", "createdDate",
                                            "eventsEnabled"],
             "properties": {
                 "id": {"type": "integer"},
                 "instanceId": {"type": "string", "description": "The id notifications carry (instanceId)."},
                 "name": {"type": "string"},
                 "token": {"type": ["string", "null"], "description": "Also the inbound webhook token; null for "
                                                                      "the configuration file's instances."},
                 "element": {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}},
                 "configuration": {"type": "object", "description": "Secret values shown as ********."},
                 "tags": {"type": "array", "items": {"type": "string"}},
                 "createdDate": _DATE, "updatedDate": _DATE,
                 "disabled": {"type": "boolean"},
                 "eventsEnabled": {"type": "boolean"},
                 "readOnly": {"type": "boolean", "description": "An instance of the configuration file."},
                 "source": {"type": "string"},
                 "api": {"type": "object", "description": "Header values shown as ********."},
                 "warnings": {"type": "array", "items": {"type": "string"},
                              "description": "In the answer to POST and PATCH: what poller check would warn about "
                                             "(unknown keys, ...)."},
                 "notLoaded": {"type": "string", "description": "Why this API instance does not run: the "
                                                                "configuration file took its id."},
             }}
_BODY = {"type": "object", "description": "A Cloud Elements instance body, as in the element docs; checked as "
                                          "`poller check` checks the configuration file.",
         "required": ["configuration"],
         "properties": {"element": {"type": "object", "properties": {"key": {"type": "string"}}},
                        "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                        "configuration": {"type": "object"}, "api": {"type": "object"},
                        "providerData": {"type": "object"}}}
_PATCH = {"type": "object", "description": "The keys to change: name, tags, api keys and configuration keys "
                                           "(null removes one; ******** keeps the secret there).",
          "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                         "configuration": {"type": "object"}, "api": {"type": "object"}}}
_EVENT = {"type": "object", "required": ["id", "status", "attempts", "createdDate", "events"], "properties": {
    "id": {"type": "string"}, "resource": {"type": "string"},
    "status": {"enum": ["pending", "delivered", "dead"]}, "attempts": {"type": "integer"},
    "createdDate": {"type": "string", "format": "date-time"}, "deliveredDate": _DATE, "nextAttemptDate": _DATE,
    "lastError": {"type": ["string", "null"]}, "events": {"type": "array", "items": {"type": "object"}},
    "notification": {"type": "object", "description": "The notification as delivered (GET of one event)."}}}
SCHEMAS: dict[str, Any] = {"Error": _ERROR, "Instance": _INSTANCE, "InstanceBody": _BODY, "InstancePatch": _PATCH,
                           "Event": _EVENT}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below BASE, aiohttp style ({id})
    handler: str  # the name of the routes' method
    summary: str
    request: dict[str, Any] | None = None
    response: dict[str, Any] = field(default_factory=lambda: _ref("Instance"))
    errors: tuple[int, ...] = (401, 404)
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    headers: dict[str, Any] = field(default_factory=dict)


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
ROUTES: tuple[Route, ...] = (
    Route("POST", "/instances", "create", "Create an instance from a Cloud Elements body; it starts at once.",
          request=_ref("InstanceBody"), errors=(400, 401, 413)),
    Route("GET", "/instances", "list", "Every instance, the configuration file's too (readOnly).",
          response={"type": "array", "items": _ref("Instance")}, errors=(401,)),
    Route("GET", "/instances/{id}", "get", "One instance."),
    Route("PATCH", "/instances/{id}", "patch", "Change name, tags, api or configuration keys; at once, state kept.",
          request=_ref("InstancePatch"), errors=(400, 401, 404, 409, 413)),
    Route("PATCH", "/instances/{id}/configuration", "patch_configuration",
          "Change configuration keys (null removes one); at once, state kept.",
          request={"type": "object"}, errors=(400, 401, 404, 409, 413)),
    Route("DELETE", "/instances/{id}", "delete", "Stop and remove an instance; its pending notifications are "
                                                 "still delivered.",
          response={"type": "object", "required": ["id", "deleted"],
                    "properties": {"id": {"type": "integer"}, "deleted": {"type": "boolean"}}},
          errors=(401, 404, 409)),
    Route("PUT", "/instances/{id}/enabled", "enable", "Resume: polls where it stopped, webhooks accepted.",
          errors=(401, 404, 409)),
    Route("DELETE", "/instances/{id}/enabled", "disable", "Pause without losing the cursor or seen versions.",
          errors=(401, 404, 409)),
    Route("GET", "/instances/{id}/events", "events", "Notifications and their events, newest first.",
          response={"type": "array", "items": _ref("Event")}, errors=(400, 401, 404),
          query=(("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                 ("pageSize", {"type": "integer", "minimum": 1, "maximum": 500}),
                 ("nextPage", {"type": "string"}),
                 ("status", {"enum": ["pending", "delivered", "dead"]})),
          headers={"elements-next-page-token": {"description": "Present when more pages follow: send it as "
                                                               "nextPage.", "schema": {"type": "string"}}}),
    Route("GET", "/instances/{id}/events/{eventId}", "event", "One notification, with its body.",
          response=_ref("Event")),
    Route("POST", "/instances/{id}/events/replay", "replay", "Dead letters (or the given ids) back to pending.",
          request={"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}}},
          response={"type": "object", "required": ["replayed"],
                    "properties": {"replayed": {"type": "array", "items": {"type": "string"}}}},
          errors=(400, 401, 404, 503)),
)

_REASONS = {400: "Invalid: errors[] names each problem with its JSON path, as poller check does.",
            401: "Missing or wrong Authorization: User <userSecret>, Organization <organizationSecret>.",
            404: "No such instance or event.",
            409: "An instance of the configuration file (change it there), or one whose id the file took.",
            413: "The body is too large.", 503: "The state file cannot be written now."}


def _operation(route: Route) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    if "{id}" in route.path:
        parameters.append(_ID)
    if "{eventId}" in route.path:
        parameters.append({"name": "eventId", "in": "path", "required": True, "schema": {"type": "string"}})
    parameters += [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in route.query]
    ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": route.response}}}
    if route.headers:
        ok["headers"] = route.headers
    operation: dict[str, Any] = {
        "operationId": route.handler, "summary": route.summary, "parameters": parameters,
        "responses": {"200": ok, **{str(code): {"description": _REASONS[code], "content": {
            "application/json": {"schema": _ref("Error")}}} for code in route.errors}},
    }
    if route.request is not None:
        operation["requestBody"] = {"required": route.method == "POST" and route.handler == "create",
                                    "content": {"application/json": {"schema": route.request}}}
    return operation


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "poller management API (Cloud Elements /instances)", "version": __version__},
        "servers": [{"url": BASE}],
        "security": [{"elements": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"elements": {"type": "apiKey", "in": "header", "name": "Authorization",
                                             "description": "User <userSecret>, Organization <organizationSecret>"}},
        },
    }
