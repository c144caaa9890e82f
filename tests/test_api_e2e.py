"""The management API (DESIGN §11) end to end: `poller run` as a subprocess, the seeds' bodies
POSTed as Cloud Elements' users did, the fake provider polled, the receiver verifying every
notification, and the state file surviving restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakeprovider import FakeProvider
from tests.receiver import Receiver
from tests.test_daemon_e2e import SIGNING_KEY, WAIT_S, DaemonProcess, wait_until, write_json
from tests.test_inbound_e2e import DATA, listening
from tests.test_once_e2e import ROOT, run_poller

pytestmark = pytest.mark.slow

SEEDS = Path(__file__).parent / "data" / "seeds"
USER, ORG = "user-secret-0123456789", "organization-secret-0123456789"
AUTH = {"Authorization": f"User {USER}, Organization {ORG}, Element ignored"}
ENV = {"CE_USER": USER, "CE_ORG": ORG}
FILE_INSTANCE = {"id": "crm", "name": "from the file", "element": {"key": "campaignmonitor"}, "configuration": {
    "event.notification.enabled": False, "event.notification.callback.url": "http://127.0.0.1:9/cb"}}


def api_config(tmp_path: Path) -> Path:
    return write_json(tmp_path / "config.json", {
        "engine": {"listen": "127.0.0.1:0", "api": {"userSecret": "${env:CE_USER}",
                                                     "organizationSecret": "${env:CE_ORG}"}},
        "instances": [FILE_INSTANCE]})


_CLIENTS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


class Api:
    def __init__(self, daemon: DaemonProcess) -> None:
        self.base = listening(daemon)
        self.client = httpx.Client(base_url=self.base + "/elements/api-v2", headers=AUTH, timeout=10)
        _CLIENTS.append(self.client)

    def __getattr__(self, method: str) -> Callable[..., httpx.Response]:
        return getattr(self.client, method)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response.json()


def icontact_body(provider: FakeProvider) -> dict:
    body = json.loads((SEEDS / "004_icontact.json").read_text(encoding="utf-8"))  # as published
    body["api"] = {"baseUrl": provider.url("/icp")}  # its URLs pointed at Cloud Elements' hubs
    return body


def message(rid: str, created: Any) -> dict:
    return {"messageId": rid, "createDate": created.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "subject": f"s{rid}"}


def delivered(receiver: Receiver) -> list[tuple[str, str, str]]:
    return [(r.json["message"]["instanceId"], e["objectId"], e["eventType"]) for r in receiver.delivered()
            for e in r.json["message"]["events"]]


def polls(provider: FakeProvider) -> int:
    return sum(1 for r in provider.requests if r.path.startswith("/icp/hubs/general/contacts"))


def test_the_icontact_seed_is_created_polled_patched_paused_and_survives_restarts(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider],
        make_receiver: Callable[..., Receiver]) -> None:
    provider = make_fake_provider()
    receiver = make_receiver(SIGNING_KEY)
    config, db = api_config(tmp_path), tmp_path / "poller.db"
    old = provider.now() - timedelta(days=2)
    provider.records.extend([message("m1", old)])
    with DaemonProcess(tmp_path, config, state=db, env=ENV) as daemon:
        api = Api(daemon)
        created = api.ok("POST", "/instances", json=icontact_body(provider))
        number, token = created["id"], created["token"]
        assert isinstance(number, int) and len(token) >= 22
        assert created["configuration"]["oauth.api.secret"] == "********"  # secrets masked
        assert (created["element"], created["tags"], created["eventsEnabled"]) == ({"key": "icontact"}, ["Docs"], True)
        wait_until(lambda: polls(provider) >= 1, WAIT_S, "the baseline poll", daemon)
        # the seed's callback is Cloud Elements' own: point it at ours, and poll every 1.5 s
        patched = api.ok("PATCH", f"/instances/{number}/configuration", json={
            "event.notification.callback.url": receiver.url("/hook"), "event.notification.signature.key": SIGNING_KEY,
            "event.poller.refresh_interval": 0.025})
        assert patched["configuration"]["event.poller.refresh_interval"] == 0.025
        not_keys = api.patch(f"/instances/{number}/configuration", json=[1])
        assert (not_keys.status_code, not_keys.json()["errors"]) == (400, [
            {"path": "", "message": "expected an object of the configuration keys to change, got a list"}])
        provider.records.append(message("m2", provider.now()))
        wait_until(lambda: (str(number), "m2", "CREATED") in delivered(receiver), WAIT_S, "m2 delivered", daemon)

        # paused: no polls; a change made meanwhile is announced after the resume
        paused = api.ok("DELETE", f"/instances/{number}/enabled")
        assert paused["disabled"] is True and paused["eventsEnabled"] is False
        seen = polls(provider)
        provider.records.append(message("m3", provider.now()))
        daemon.wait_log("api.applied", 3)
        wait_until(lambda: api.ok("GET", f"/instances/{number}")["disabled"], WAIT_S, "paused")
        assert polls(provider) <= seen + 1  # (a poll already under way may finish)
        api.ok("PUT", f"/instances/{number}/enabled")
        wait_until(lambda: (str(number), "m3", "CREATED") in delivered(receiver), WAIT_S, "m3 after resume", daemon)

        # the events, newest first, paged as Cloud Elements paged lists
        first = api.get(f"/instances/{number}/events", params={"pageSize": 1})
        assert first.status_code == 200 and len(first.json()) == 1
        assert [e["objectId"] for e in first.json()[0]["events"]] == ["m3"]
        second = api.get(f"/instances/{number}/events",
                         params={"limit": 1, "nextPage": first.headers["elements-next-page-token"]})  # (DESIGN's name)
        assert [e["objectId"] for e in second.json()[0]["events"]] == ["m2"]
        assert "elements-next-page-token" not in second.headers
        limited = api.get(f"/instances/{number}/events", params={"limit": 1})
        assert len(limited.json()) == 1 and "elements-next-page-token" in limited.headers  # of the 2 there are
        wrong = api.get(f"/instances/{number}/events", params={"limit": "abc"})
        assert wrong.status_code == 400 and wrong.json()["errors"] == [
            {"path": "limit", "message": "expected 1 to 500, got 'abc'"}]
        one = api.ok("GET", f"/instances/{number}/events/{first.json()[0]['id']}")
        assert one["status"] == "delivered" and one["notification"]["message"]["instanceId"] == str(number)
        assert daemon.stop() == 0

    with DaemonProcess(tmp_path, config, state=db, env=ENV) as daemon:  # a restart keeps everything
        api = Api(daemon)
        again = api.ok("GET", f"/instances/{number}")
        assert (again["token"], again["name"], again["configuration"]["event.poller.refresh_interval"]) == (
            token, "API Instance with Polling", 0.025)
        provider.records.append(message("m4", provider.now()))
        wait_until(lambda: (str(number), "m4", "CREATED") in delivered(receiver), WAIT_S, "m4 after restart", daemon)
        assert [x for x in delivered(receiver) if x[1] == "m1"] == []  # the baseline's record never announced
        listed = api.ok("GET", "/instances")
        assert [(i["instanceId"], i["readOnly"]) for i in listed] == [("crm", True), (str(number), False)]
        assert listed[0]["id"] != number

        # the file's instance is read-only; DELETE stops an API instance
        conflict = api.patch(f"/instances/{listed[0]['id']}", json={"name": "x"})
        assert conflict.status_code == 409 and "config.json" in conflict.json()["message"]
        # a notification still pending when the instance is deleted is delivered all the same
        receiver.status = 503
        provider.records.append(message("m5", provider.now()))
        wait_until(lambda: any("m5" in r.object_ids for r in receiver.snapshot()), WAIT_S, "m5 attempted", daemon)
        assert status_row(tmp_path, db, number)["nextDue"] is not None  # its interval is known from the stored body
        assert api.ok("DELETE", f"/instances/{number}") == {"id": number, "deleted": True}
        assert api.get(f"/instances/{number}").status_code == 404
        seen = polls(provider)
        receiver.status = 200
        wait_until(lambda: (str(number), "m5", "CREATED") in delivered(receiver), WAIT_S, "m5 after DELETE", daemon)
        # the CLI reads the same store
        assert status_row(tmp_path, db, number)["nextDue"] is None  # deleted: nothing polls it any more
        events = run_poller(tmp_path, "events", "--state", str(db), "--json")
        assert {r["instance"] for r in json.loads(events.stdout)} == {str(number)}
        assert daemon.stop() == 0
    assert polls(provider) <= seen + 1
    receiver.assert_all_verified()


def status_row(tmp_path: Path, db: Path, number: int) -> dict:
    status = run_poller(tmp_path, "status", "--state", str(db), "--json")
    assert status.returncode == 0, status.stderr
    [row] = [r for r in json.loads(status.stdout) if (r["instance"], r["resource"]) == (str(number), "contacts")]
    return row


def test_bad_requests_name_the_problem_and_change_nothing(tmp_path: Path) -> None:
    config, db = api_config(tmp_path), tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db, env=ENV) as daemon:
        api = Api(daemon)
        for headers in ({}, {"Authorization": f"User {USER}"}, {"Authorization": f"User {USER}, Organization x"},
                        {"Authorization": f"User {ORG}, Organization {USER}"}):
            response = httpx.get(api.base + "/elements/api-v2/instances", headers=headers, timeout=10)
            assert response.status_code == 401, headers
        body = json.loads((SEEDS / "004_icontact.json").read_text(encoding="utf-8"))  # no api.baseUrl
        body["configuration"]["event.poller.refresh_interval"] = "often"
        refused = api.post("/instances", json=body)
        assert refused.status_code == 400
        assert refused.json()["errors"] == [
            {"path": 'configuration."event.poller.refresh_interval"', "message": "expected a number of minutes, got 'often'"},
            {"path": 'configuration."event.poller.configuration".contacts.url',
             "message": "is relative ('/hubs/general/contacts') and the instance has no api.baseUrl: set api.baseUrl "
                        "(e.g. \"https://api.example.com/v1\") or write an absolute URL"}]
        broken = api.post("/instances", content=(SEEDS / "000_campaignmonitor_curl.txt").read_bytes())
        assert broken.status_code == 400 and broken.json()["errors"][0]["message"].endswith(
            "(is a comma missing at the end of line 11?)")
        # the daemon's environment is the operator's: a body cannot read it, nor learn what is set
        mailchimp = json.loads((SEEDS / "002_mailchimpv3.json").read_text(encoding="utf-8"))
        for name in ("CE_USER", "NOT_SET_ANYWHERE"):
            mailchimp["configuration"]["event.notification.callback.url"] = "http://127.0.0.1:9/${env:%s}" % name
            leak = api.post("/instances", json=mailchimp)
            assert leak.status_code == 400, leak.text
            assert leak.json()["errors"] == [
                {"path": 'configuration."event.notification.callback.url"',
                 "message": f"${{env:{name}}} at position 19: environment variables are read only in the "
                            f"configuration file; an instance created through the API gives its values as they are"}]
        for content, expected in ((b"null", "expected an instance body ({\"element\": ..., \"configuration\": ...}), got null"),
                                  (b"[]", "expected an instance body ({\"element\": ..., \"configuration\": ...}), got a list")):
            assert api.post("/instances", content=content).json()["errors"] == [{"path": "", "message": expected}]
        assert [i["instanceId"] for i in api.ok("GET", "/instances")] == ["crm"]  # nothing created
        assert api.get("/instances/999").status_code == 404
        assert api.get("/instances/abc").status_code == 404
        assert api.get("/instances/1").status_code == 200  # the file's instance
        assert api.get("/instances/\u0661").status_code == 404  # (an Arabic-Indic 1: int() took it for 1)
        assert api.patch("/instances/999", json={"name": "x"}).status_code == 404
        assert api.get("/openapi.json").json()["openapi"] == "3.1.0"
        assert httpx.get(api.base + "/elements/api-v2/openapi.json", timeout=10).status_code == 401  # (every request)
        log = daemon.log()
        assert USER not in log and ORG not in log
        assert daemon.stop() == 0


def test_a_mailchimp_instance_created_by_post_receives_webhooks_with_its_token(
        tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(SIGNING_KEY)
    config = api_config(tmp_path)
    body = json.loads((SEEDS / "002_mailchimpv3.json").read_text(encoding="utf-8"))
    body["configuration"].update({"event.notification.callback.url": receiver.url("/hook"),
                                  "event.notification.signature.key": SIGNING_KEY})
    with DaemonProcess(tmp_path, config, state=tmp_path / "poller.db", env=ENV) as daemon:
        api = Api(daemon)
        created = api.ok("POST", "/instances", json=body)
        url = f"{api.base}/webhooks/{created['id']}/{created['token']}"
        assert httpx.get(url, timeout=10).status_code == 200  # Mailchimp's validator
        posted = httpx.post(url, content=(DATA / "mc_subscribe.form").read_bytes(), timeout=10,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert posted.status_code == 200, posted.text
        assert httpx.post(url + "x", content=b"type=subscribe", timeout=10).status_code == 404
        # a body that sets its own inbound token gets it back as its token: the one its URL takes
        own = json.loads(json.dumps(body))
        own["configuration"]["event.webhook.token"] = "own-token-0123456789abcdef"
        second = api.ok("POST", "/instances", json=own)
        assert second["token"] == "own-token-0123456789abcdef"
        assert api.ok("GET", f"/instances/{second['id']}")["token"] == second["token"]
        assert httpx.get(f"{api.base}/webhooks/{second['id']}/{second['token']}", timeout=10).status_code == 200
        # `poller webhooks` prints every webhook instance's URL: those created through the API too
        paths = webhook_paths(tmp_path, config)
        assert paths[str(created["id"])] == f"/webhooks/{created['id']}/{created['token']}"
        assert paths[str(second["id"])] == f"/webhooks/{second['id']}/{second['token']}"
        assert "crm" in paths
        api.ok("DELETE", f"/instances/{second['id']}")  # its URL answers 404 now: not listed any more
        assert str(second["id"]) not in webhook_paths(tmp_path, config)
        wait_until(lambda: (str(created["id"]), "8a25ff1d98", "CREATED") in delivered(receiver), WAIT_S,
                   "the webhook's event delivered", daemon)
        receiver.assert_all_verified()
        # a notification of an API instance left pending when the daemon stops: `poller deliver` sends it
        receiver.respond(503, times=None)
        form = (DATA / "mc_subscribe.form").read_bytes().replace(b"8a25ff1d98", b"77777777aa")
        assert httpx.post(url, content=form, timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
        wait_until(lambda: any(r.answer == 503 for r in receiver.snapshot()), WAIT_S, "a failed attempt", daemon)
        assert daemon.stop() == 0
    receiver.clear_rules()
    sent = cli(tmp_path, "deliver", "--all", "-c", str(config), "--state", str(tmp_path / "poller.db"))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert (str(created["id"]), "77777777aa", "CREATED") in delivered(receiver)
    receiver.assert_all_verified()


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m poller ARGS`` with the API's secrets in its environment (the configuration reads them)."""
    return subprocess.run([sys.executable, "-m", "poller", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **ENV})


def webhook_paths(tmp_path: Path, config: Path) -> dict[str, str]:
    listed = cli(tmp_path, "webhooks", "-c", str(config), "--state", str(tmp_path / "poller.db"), "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["instance"]: row["path"] for row in json.loads(listed.stdout)}
