"""Builders of configuration bodies for the tests, and the real-world corpus."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import DATA

CALLBACK = "https://hooks.example.com/poller"
BASE_URL = "https://api.example.com/v1"
DROP = object()  # a value that removes the key
ISO = "yyyy-MM-dd'T'HH:mm:ssXXX"


def _apply(body: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def resource(**overrides: Any) -> dict:
    body = {
        "url": "/contacts?since=${gmtDate:yyyy-MM-dd'T'HH:mm:ssXXX}",
        "idField": "id",
        "datesConfiguration": {
            "updatedDateField": "updated_at",
            "updatedDateFormat": ISO,
            "createdDateField": "created_at",
            "createdDateFormat": ISO,
        },
    }
    return _apply(body, overrides)


def instance(resources: dict | None = None, *, configuration: dict | None = None, **overrides: Any) -> dict:
    conf = {
        "event.notification.enabled": "true",
        "event.vendor.type": "polling",
        "event.notification.callback.url": CALLBACK,
        "event.poller.refresh_interval": "15",
        "event.poller.configuration": {"contacts": resource()} if resources is None else resources,
    }
    body = {"name": "demo", "element": {"key": "demo"}, "api": {"baseUrl": BASE_URL}, "configuration": conf}
    _apply(conf, configuration or {})
    return _apply(body, overrides)


def engine_file(*instances: dict, engine: dict | None = None) -> dict:
    body: dict = {"instances": list(instances) or [instance()]}
    if engine is not None:
        body["engine"] = engine
    return body


def corpus() -> list[dict]:
    return json.loads((DATA / "ce-poller-configs.json").read_text(encoding="utf-8"))


def corpus_resource(entry: dict) -> dict:
    body: dict = {"url": entry["url"], "idField": entry["idField"]}
    if entry["datesConfiguration"] is not None:
        body["datesConfiguration"] = copy.deepcopy(entry["datesConfiguration"])
    body.update(copy.deepcopy(entry["otherKeys"] or {}))
    return body


def wrap_corpus(entry: dict, *, as_string: bool = False) -> dict:
    """A corpus entry as Cloud Elements would have it, in an instance with api.baseUrl and a callback."""
    resources = {entry["resource"]: corpus_resource(entry)}
    return {
        "name": "corpus",
        "element": {"key": entry["elementKey"]},
        "api": {"baseUrl": BASE_URL},
        "configuration": {
            "event.notification.enabled": "true",
            "event.vendor.type": "polling",
            "event.notification.callback.url": CALLBACK,
            "event.poller.refresh_interval": "15",
            "event.poller.configuration": json.dumps(resources) if as_string else resources,
        },
    }


LOCAL_ISO_MS = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"


def local_config(base_url: str, *, callback: str, resource: dict | None = None, engine: dict | None = None,
                 name: str = "contacts") -> dict:
    """One instance ("crm") with one resource polling the fake provider at ``base_url``: the
    shape the end-to-end tests and the benchmarks run (``resource`` and ``engine`` add keys)."""
    res = {
        "url": "/contacts?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}",
        "idField": "id",
        "datesConfiguration": {
            "updatedDateField": "updated", "updatedDateFormat": LOCAL_ISO_MS,
            "createdDateField": "created", "createdDateFormat": LOCAL_ISO_MS,
        },
    }
    res.update(resource or {})
    return {
        "engine": {"lookbackSeconds": 60, **(engine or {})},
        "instances": [{
            "id": "crm", "name": "Test CRM", "element": {"key": "fakecrm"},
            "api": {"baseUrl": base_url},
            "configuration": {
                "event.notification.enabled": True,
                "event.notification.callback.url": callback,
                "event.poller.refresh_interval": 1,
                "event.poller.configuration": {name: res},
            },
        }],
    }
