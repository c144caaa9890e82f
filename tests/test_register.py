"""`poller webhooks register` against fake Campaign Monitor and Mailchimp APIs on 127.0.0.1 that
implement the endpoints of ../shared/reference/webhooks.md (list, create, delete), with their
error shapes and their auth."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from poller.config import load_config_text
from poller.inbound.register import RegisterError, register
from tests.loopback import LoopbackHandler, LoopbackServer, LoopbackService
from tests.test_daemon_e2e import write_json
from tests.test_once_e2e import run_poller

CM_AUTH = "Basic Y20ta2V5Ong="  # the API key as user name, as Campaign Monitor wants it
MC_AUTH = "Basic YW55c3RyaW5nOm1jLWtleS11czY="
PUBLIC = "https://hooks.example.com"


class FakeApi(LoopbackService):
    """Both providers' webhook endpoints: ``/cm/lists/{id}/webhooks.json`` and ``/mc/lists/{id}/webhooks``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hooks: dict[tuple[str, str], list[dict]] = {}  # (provider, list) -> webhooks
        self.calls: list[tuple[str, str]] = []
        self.next_id = 0
        self.fail_create: tuple[int, dict] | None = None

    def _attach(self, server: LoopbackServer) -> None:
        server.api = self  # type: ignore[attr-defined]

    def add(self, provider: str, list_id: str, url: str) -> None:
        with self.lock:
            self.next_id += 1
            self.hooks.setdefault((provider, list_id), []).append({"id": f"w{self.next_id}", "url": url})

    def urls(self, provider: str, list_id: str) -> list[str]:
        with self.lock:
            return [h["url"] for h in self.hooks.get((provider, list_id), [])]


class _Handler(LoopbackHandler):
    def _answer(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode() if value is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        api: FakeApi = self.server.api  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api.calls.append((self.command, self.path))
        cm = re.fullmatch(r"/cm/lists/([^/]+)/webhooks(?:/([^/]+))?\.json", self.path)
        mc = re.fullmatch(r"/mc/lists/([^/]+)/webhooks(?:/([^/]+))?", self.path)
        if cm is None and mc is None:
            return self._answer(404, {"title": "Resource Not Found", "detail": self.path})
        provider, match = ("cm", cm) if cm else ("mc", mc)
        assert match is not None
        if self.headers.get("Authorization") != (CM_AUTH if cm else MC_AUTH):
            return self._answer(401, {"Code": 50, "Message": "Must supply a valid HTTP Basic Authorization header"}
                                if cm else {"title": "API Key Invalid", "detail": "Your API key may be invalid."})
        list_id, hook_id = unquote(match[1]), match[2] and unquote(match[2])
        hooks = api.hooks.setdefault((provider, list_id), [])
        if self.command == "GET" and hook_id is None:
            if cm:
                return self._answer(200, [{"WebhookID": h["id"], "Events": ["Subscribe"], "Url": h["url"],
                                           "Status": "Active", "PayloadFormat": "Json"} for h in hooks])
            return self._answer(200, {"webhooks": [{"id": h["id"], "url": h["url"], "list_id": list_id}
                                                   for h in hooks]})
        if self.command == "POST" and hook_id is None:
            if api.fail_create is not None:
                return self._answer(*api.fail_create)
            sent = json.loads(body)
            url = sent["Url"] if cm else sent["url"]
            if cm:
                assert sent["Events"] == ["Subscribe", "Update", "Deactivate"] and sent["PayloadFormat"] == "json"
            else:
                assert all(sent["events"].values()) and set(sent["sources"]) == {"user", "admin", "api"}
            api.add(provider, list_id, url)
            new = api.hooks[(provider, list_id)][-1]["id"]
            return self._answer(201 if cm else 200, new if cm else {"id": new, "url": url})
        if self.command == "DELETE" and hook_id is not None:
            before = len(hooks)
            hooks[:] = [h for h in hooks if h["id"] != hook_id]
            return self._answer(200 if len(hooks) < before else 404, None)
        return self._answer(405, {"title": "Method Not Allowed", "detail": self.command})

    do_GET = do_POST = do_DELETE = _handle


FakeApi.handler_class = _Handler


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


def write_config(tmp_path: Path, api: FakeApi, *, cm_auth: str = CM_AUTH, mc_base: bool = True) -> Path:
    def instance(ident: str, element: str, base: str | None, auth: str, **conf: object) -> dict:
        body = {"id": ident, "element": {"key": element}, "name": ident, "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb",
            "event.webhook.token": f"token-of-{ident}-0123456789", **conf}, "api": {"headers": {"Authorization": auth}}}
        if base:
            body["api"]["baseUrl"] = base
        return body
    return write_json(tmp_path / "config.json", {"engine": {"webhooks": {"publicUrl": PUBLIC}}, "instances": [
        instance("news", "campaignmonitor", api.base_url + "/cm", cm_auth, **{"events.list.ids": "L1,L 2"}),
        instance("audience", "mailchimpv3", api.base_url + "/mc" if mc_base else None, MC_AUTH,
                 **{"events.list.ids": "a6b5da1054"}),
        instance("shop", "shopify", None, "x"),
    ]})


def cli(tmp_path: Path, *args: str) -> Any:
    return run_poller(tmp_path, "webhooks", "register", "-c", str(tmp_path / "config.json"),
                      "--state", str(tmp_path / "poller.db"), *args)


def test_register_creates_once_and_remove_deletes_only_ours(tmp_path: Path, fake_api: FakeApi) -> None:
    write_config(tmp_path, fake_api)
    fake_api.add("cm", "L1", "https://someone-else.example/hook")
    first = cli(tmp_path)
    assert first.returncode == 0, first.stderr
    news, audience = f"{PUBLIC}/webhooks/news/token-of-news-0123456789", f"{PUBLIC}/webhooks/audience/" \
                                                                         "token-of-audience-0123456789"
    assert fake_api.urls("cm", "L1") == ["https://someone-else.example/hook", news]
    assert fake_api.urls("cm", "L 2") == [news]  # a list id that needs quoting
    assert fake_api.urls("mc", "a6b5da1054") == [audience]
    assert re.findall(r"^(\S+)  list (.+): (\w+)", first.stdout, re.M) == [
        ("news", "L1", "created"), ("news", "L 2", "created"), ("audience", "a6b5da1054", "created")]
    again = cli(tmp_path)  # listed first: nothing created twice
    assert again.returncode == 0 and again.stdout.count(": exists") == 3
    assert fake_api.urls("cm", "L1") == ["https://someone-else.example/hook", news]
    removed = cli(tmp_path, "--remove")
    assert removed.returncode == 0 and removed.stdout.count(": removed") == 3
    assert fake_api.urls("cm", "L1") == ["https://someone-else.example/hook"]
    assert fake_api.urls("mc", "a6b5da1054") == []
    assert cli(tmp_path, "--remove").stdout.count(": absent") == 3
    only = cli(tmp_path, "audience")
    assert only.returncode == 0 and fake_api.urls("mc", "a6b5da1054") == [audience] and fake_api.urls("cm", "L1") == [
        "https://someone-else.example/hook"]


def test_the_providers_own_error_is_shown_without_the_credentials(tmp_path: Path, fake_api: FakeApi) -> None:
    write_config(tmp_path, fake_api, cm_auth="Basic d3Jvbmc6")
    proc = cli(tmp_path, "news")
    assert proc.returncode == 1
    assert "news: list L1: GET /lists/L1/webhooks.json: HTTP 401: Must supply a valid HTTP Basic " \
           "Authorization header (code 50)" in proc.stderr
    assert "d3Jvbmc6" not in proc.stderr + proc.stdout
    write_config(tmp_path, fake_api)
    fake_api.fail_create = (400, {"Code": 605, "Message": "Invalid URL"})
    proc = cli(tmp_path, "news")
    assert proc.returncode == 1 and "POST /lists/L1/webhooks.json: HTTP 400: Invalid URL (code 605)" in proc.stderr


def test_what_cannot_be_registered_says_what_to_set(tmp_path: Path, fake_api: FakeApi) -> None:
    write_config(tmp_path, fake_api, mc_base=False)
    mailchimp = cli(tmp_path, "audience")
    assert mailchimp.returncode == 1 and "set api.baseUrl to https://<dc>.api.mailchimp.com/3.0" in mailchimp.stderr
    generic = cli(tmp_path, "shop")
    assert generic.returncode == 1 and "the generic element has no registration API" in generic.stderr
    unknown = cli(tmp_path, "nobody")
    assert unknown.returncode == 2 and "'nobody' is not a webhook instance" in unknown.stderr


def test_no_list_ids_and_an_unreachable_provider() -> None:
    body = {"element": {"key": "campaignmonitor"}, "name": "cm", "api": {"baseUrl": "http://127.0.0.1:9/x"},
            "configuration": {"event.notification.enabled": True, "event.notification.callback.url": "http://x.example/"}}
    [instance] = load_config_text(json.dumps(body), "c.json", {}).config.instances
    with pytest.raises(RegisterError, match="set events.list.ids"):
        register(instance, "https://h.example/webhooks/cm/t")
    body["configuration"]["events.list.ids"] = "L1"
    [instance] = load_config_text(json.dumps(body), "c.json", {}).config.instances
    with pytest.raises(RegisterError, match=r"cm: list L1: GET /lists/L1/webhooks.json: cannot reach 127.0.0.1:9"):
        register(instance, "https://h.example/webhooks/cm/t")
