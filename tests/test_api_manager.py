"""The management API's rules (poller.api.manager) over a real state file, without a daemon: what
a GET shows of secrets, what sending it back changes, what PATCH merges, what warnings say, and
how an id the configuration file took is answered. (tests/test_api_e2e.py drives `poller run`.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poller.api.manager import ApiError, Manager
from poller.config import load_config_text
from poller.config.types import Config
from state import Store, open_store

FILE = {"engine": {"api": {"userSecret": "u" * 24, "organizationSecret": "o" * 24}}, "instances": []}


class Host:
    """What the manager needs of the daemon: the store, the configurations, a clock."""

    def __init__(self, store: Store, file_instances: list[dict]) -> None:
        self.store = store
        self.file_config: Config = load_config_text(json.dumps(dict(FILE, instances=file_instances)),
                                                    "config.json", {}).config
        self.config = self.file_config
        self.changes = 0

    def now_ms(self) -> int:
        return 1_700_000_000_000

    def api_changed(self) -> None:
        self.changes += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "poller.db") as opened:
        yield opened


def manager(store: Store, file_instances: list[dict] | None = None) -> Manager:
    return Manager(Host(store, file_instances or []), token=lambda: "t" * 32)  # type: ignore[arg-type]


def generic_body(**configuration: Any) -> dict:
    return {"element": {"key": "myelement"}, "name": "hooks", "api": {
        "baseUrl": "http://127.0.0.1:9/api", "headers": {"X-Key": "provider-credential"}}, "configuration": {
        "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb",
        "event.notification.signature.key": "signing-key-0123456789",
        "event.webhook.verify": {"type": "hmac", "header": "X-Sig", "secret": "VERIFYSECRET789"}, **configuration}}


def send(m: Manager, body: dict) -> dict:
    return m.create(json.dumps(body).encode())


def test_nested_secrets_are_masked_and_a_body_sent_back_as_shown_keeps_every_secret(store: Store) -> None:
    """(The verify secret and a basic password came back verbatim; PATCHing the GET answer back
    stored ******** as the signing key, the verify secret and the provider's header.)"""
    m = manager(store)
    created = send(m, generic_body())
    shown = m.get(created["id"])
    assert shown["configuration"]["event.webhook.verify"] == {"type": "hmac", "header": "X-Sig", "secret": "********"}
    assert shown["configuration"]["event.notification.signature.key"] == "********"
    assert shown["api"]["headers"] == {"X-Key": "********"}
    assert "VERIFYSECRET789" not in json.dumps(m.list())
    basic = send(m, generic_body(**{"event.webhook.verify": {"type": "basic", "username": "u", "password": "pw1"}}))
    assert m.get(basic["id"])["configuration"]["event.webhook.verify"] == {
        "type": "basic", "username": "u", "password": "********"}

    m.patch(created["id"], json.dumps({k: shown[k] for k in ("name", "tags", "configuration", "api")}).encode())
    body = store.api_instance(created["id"]).body  # type: ignore[union-attr]
    assert body["configuration"]["event.notification.signature.key"] == "signing-key-0123456789"
    assert body["configuration"]["event.webhook.verify"]["secret"] == "VERIFYSECRET789"
    assert body["api"]["headers"] == {"X-Key": "provider-credential"}


def test_a_new_instance_cannot_take_the_mask_as_its_secret(store: Store) -> None:
    m = manager(store)
    body = generic_body(**{"event.notification.signature.key": "********"})
    body["api"]["headers"]["X-Key"] = "********"
    with pytest.raises(ApiError) as refused:
        send(m, body)
    assert refused.value.status == 400
    assert refused.value.errors == (
        ('configuration."event.notification.signature.key"', "is ********, how this API shows a secret: give "
                                                             "the secret itself"),
        ("api.headers.X-Key", "is ********, how this API shows a secret: give the secret itself"))
    assert store.api_instances() == []
    # nor a new key of an existing instance: there is no secret there to keep
    number = send(m, generic_body())["id"]
    with pytest.raises(ApiError) as new_key:
        m.patch(number, json.dumps({"configuration": {"oauth.api.secret": "********"}}).encode())
    assert new_key.value.errors[0][0] == 'configuration."oauth.api.secret"'


def test_patching_api_changes_only_the_keys_given(store: Store) -> None:
    """(A PATCH of api.baseUrl dropped api.headers: the provider got no credentials.)"""
    m = manager(store)
    number = send(m, generic_body())["id"]
    m.patch(number, b'{"api": {"baseUrl": "http://127.0.0.1:9/v2"}}')
    assert store.api_instance(number).body["api"] == {  # type: ignore[union-attr]
        "baseUrl": "http://127.0.0.1:9/v2", "headers": {"X-Key": "provider-credential"}}
    m.patch(number, b'{"api": {"headers": {"X-Key": null, "X-Other": "v"}}}')
    assert store.api_instance(number).body["api"]["headers"] == {"X-Other": "v"}  # type: ignore[union-attr]


def test_unknown_keys_are_warned_about_in_the_answer_and_the_log(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """(They were dropped without a word, where `poller check` warns, with a did-you-mean.)"""
    caplog.set_level(logging.WARNING, "poller.api.manager")
    m = manager(store)
    body = generic_body()
    body["bogusTop"] = 1
    created = send(m, body)
    assert created["warnings"] and "bogusTop" in created["warnings"][0]
    patched = m.patch(created["id"], b'{"configuration": {"event.pollr.refresh_interval": 5}}')
    assert any("event.pollr.refresh_interval" in w for w in patched["warnings"])
    logged = [r.warning for r in caplog.records if r.getMessage() == "api.config_warning"]  # type: ignore[attr-defined]
    assert len(logged) == len(created["warnings"]) + len(patched["warnings"])
    assert "warnings" not in m.get(created["id"])  # (said when the body was sent)


def test_a_file_instance_that_takes_an_api_instances_id_keeps_its_own_number(store: Store) -> None:
    """(Both were listed as id 2, and PATCH /instances/2 answered 200 for an instance that never ran.)"""
    before = manager(store)
    first, second = send(before, generic_body())["id"], send(before, generic_body())["id"]
    assert (first, second) == (1, 2)
    file_instance = {"id": "2", "name": "clash", "element": {"key": "crm"}, "configuration": {
        "event.notification.enabled": False, "event.notification.callback.url": "http://127.0.0.1:9/cb"}}
    m = manager(store, [file_instance])
    listed = {(v["id"], v["instanceId"], v["readOnly"]) for v in m.list()}
    [file_number] = [n for n, instance_id, read_only in listed if read_only]
    assert file_number not in (1, 2) and listed == {(1, "1", False), (2, "2", False), (file_number, "2", True)}
    assert m.get(file_number)["name"] == "clash"
    clashed = m.get(2)
    assert "has an instance with id '2'" in clashed["notLoaded"] and clashed["eventsEnabled"] is False
    for change in (lambda: m.patch(2, b'{"name": "x"}'), lambda: m.set_enabled(2, False)):
        with pytest.raises(ApiError) as refused:
            change()
        assert refused.value.status == 409 and "not loaded" in refused.value.message
    assert m.delete(2) == {"id": 2, "deleted": True}  # and it can be cleaned up


def test_an_element_given_as_its_key_is_shown_as_its_key(store: Store) -> None:
    m = manager(store)
    body = generic_body()
    body["element"] = "myelement"
    assert send(m, body)["element"] == {"key": "myelement"}


def test_a_header_changed_in_another_case_replaces_the_old_one(store: Store) -> None:
    """(PATCH {"authorization": "Bearer NEW"} kept "Authorization: Bearer OLD" beside it, and
    httpx sent the provider both.)"""
    m = manager(store)
    number = send(m, generic_body())["id"]
    m.patch(number, b'{"api": {"headers": {"x-key": "rotated"}}}')
    assert store.api_instance(number).body["api"]["headers"] == {"x-key": "rotated"}  # type: ignore[union-attr]
    m.patch(number, b'{"api": {"headers": {"X-KEY": "********", "Other": "1"}}}')  # the mask keeps it, in any case
    assert store.api_instance(number).body["api"]["headers"] == {  # type: ignore[union-attr]
        "X-KEY": "rotated", "Other": "1"}
    m.patch(number, b'{"api": {"headers": {"x-Key": null}}}')
    assert store.api_instance(number).body["api"]["headers"] == {"Other": "1"}  # type: ignore[union-attr]


def test_the_mask_is_a_value_like_any_other_where_no_secret_is_shown(store: Store) -> None:
    """(A ******** sent for any key that had a value kept the old value.)"""
    m = manager(store)
    number = send(m, generic_body(**{"event.webhook.events": {"objectType": "contacts"}}))["id"]
    m.patch(number, b'{"name": "********", "configuration": {"event.webhook.events": {"objectType": "********"}}}')
    body = store.api_instance(number).body  # type: ignore[union-attr]
    assert body["name"] == "********"
    assert body["configuration"]["event.webhook.events"] == {"objectType": "********"}
