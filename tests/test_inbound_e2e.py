"""Inbound webhooks end to end: `poller run` as a subprocess, a real HTTP client posting what
Campaign Monitor and Mailchimp send (tests/data/webhooks/), and the receiver verifying both
signatures of every notification that comes out. Set INBOUND_KILL_SEED to replay the SIGKILL test."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from state import open_store
from tests.receiver import Receiver
from tests.test_daemon_e2e import SIGNING_KEY, WAIT_S, DaemonProcess, wait_until, write_json
from tests.test_once_e2e import run_poller

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data" / "webhooks"
CM_LIST = "96c0bbdaa54760c8d9e62a2b7ffa2e13"  # the reference bodies' ListID


def hooks_config(tmp_path: Path, receiver: Receiver, *, lists: str = CM_LIST, engine: dict | None = None) -> Path:
    def instance(ident: str, element: str, **conf: object) -> dict:
        return {"id": ident, "element": {"key": element}, "name": ident.upper(), "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": receiver.url("/hook"),
            "event.notification.signature.key": SIGNING_KEY, **conf}}
    return write_json(tmp_path / "config.json", {
        "engine": {"listen": "127.0.0.1:0", **(engine or {})},
        "instances": [instance("cm", "campaignmonitor", **{"events.list.ids": lists}),
                      instance("mc", "mailchimpv3")]})


def listening(daemon: DaemonProcess, key: str = "engine.listen") -> str:
    def found() -> str | None:
        for line in daemon.lines("daemon.listening"):
            if f"key={key}" in line:
                address = re.search(r"address=(127\.0\.0\.1:\d+)", line)
                assert address is not None, line
                return f"http://{address[1]}"
        return None
    return wait_until(found, WAIT_S, f"the {key} listener", daemon)


def paths(tmp_path: Path, config: Path) -> dict[str, str]:
    proc = run_poller(tmp_path, "webhooks", "-c", str(config), "--state", str(tmp_path / "poller.db"), "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["instance"]: row["path"] for row in json.loads(proc.stdout)}


def events_of(receiver: Receiver) -> list[dict]:
    return [e for r in receiver.delivered() for e in r.json["message"]["events"]]


def metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_provider_bodies_become_signed_notifications(tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(SIGNING_KEY)
    config = hooks_config(tmp_path, receiver)
    urls = paths(tmp_path, config)  # before the daemon starts: the URL it will accept
    with DaemonProcess(tmp_path, config, state=tmp_path / "poller.db") as daemon:
        base = listening(daemon)
        with httpx.Client(base_url=base, timeout=10) as client:
            json_body = (DATA / "cm_subscribe.json").read_bytes()
            assert client.post(urls["cm"], content=json_body,
                               headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 200
            update = client.post(urls["cm"], content=(DATA / "cm_update.json").read_bytes(),
                                 headers={"Content-Type": "application/json"})
            assert update.status_code == 200, update.text
            assert client.get(urls["mc"]).status_code == 200  # Mailchimp's validator
            form = client.post(urls["mc"], content=(DATA / "mc_unsubscribe.form").read_bytes(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert form.status_code == 200, form.text
            # what is not ours: 404, nothing stored
            assert client.post(urls["cm"][:-1] + "x", content=json_body).status_code == 404
            assert client.post("/webhooks/nobody/abcdefabcdefabcdefabcdef", content=json_body).status_code == 404
            # the provider retries (it did not see our 200): nothing new is announced
            again = client.post(urls["cm"], content=json_body, headers={"Content-Type": "application/json"})
            assert (again.status_code, again.text) == (200, "duplicate\n")
        wait_until(lambda: len(events_of(receiver)) >= 3, WAIT_S, "3 delivered events", daemon)
        by_type = {(e["objectType"], e["eventType"], e["objectId"]) for e in events_of(receiver)}
        assert by_type == {("contacts", "CREATED", "test@example.org"), ("contacts", "UPDATED", "test@example.org"),
                           ("contacts", "UPDATED", "8a25ff1d98")}
        [first] = [r for r in receiver.delivered() if r.json["message"]["raw"] == json.loads(json_body)]
        assert first.json["message"]["events"][0]["date"] == "2010-12-14T11:32:00Z"
        assert {(e["objectId"], e["hubKey"]) for e in events_of(receiver)} == {  # the element key (DESIGN §9)
            ("test@example.org", "campaignmonitor"), ("8a25ff1d98", "mailchimpv3")}
        receiver.assert_all_verified()
        assert metric(base, "poller_inbound_requests_total", instance="cm", outcome="accepted") == 2
        assert metric(base, "poller_inbound_requests_total", instance="cm", outcome="duplicate") == 1
        assert metric(base, "poller_inbound_requests_total", instance="", outcome="not_found") == 2
        assert metric(base, "poller_inbound_events_total", instance="mc", type="UPDATED") == 1
        log = daemon.log()
        assert all(token.rsplit("/", 1)[1] not in log for token in urls.values())  # tokens are never logged
        assert daemon.stop() == 0
    kept = json.loads(run_poller(tmp_path, "webhooks", "requests", "--state", str(tmp_path / "poller.db"),
                                 "--json").stdout)
    assert [r["outcome"] for r in kept] == ["duplicate", "accepted", "accepted", "accepted"]
    assert len(receiver.delivered()) == 3  # no notification for the handshake or the duplicate


def test_a_rejected_request_is_kept_and_replayed_after_the_config_is_fixed(
        tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(SIGNING_KEY)
    config = hooks_config(tmp_path, receiver, lists="some-other-list")
    urls = paths(tmp_path, config)
    db = tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        base = listening(daemon)
        refused = httpx.post(base + urls["cm"], content=(DATA / "cm_subscribe.json").read_bytes(),
                             headers={"Content-Type": "application/json"}, timeout=10)
        assert refused.status_code == 400 and CM_LIST in refused.text
        listed = run_poller(tmp_path, "webhooks", "requests", "--rejected", "--state", str(db))
        assert listed.returncode == 0 and f'ListID "{CM_LIST}" is not one of events.list.ids' in listed.stdout
        request_id = listed.stdout.split()[0]
        hooks_config(tmp_path, receiver, lists=f"some-other-list,{CM_LIST}")  # the fix
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("config.reloaded")
        replayed = run_poller(tmp_path, "webhooks", "replay", request_id, "-c", str(config), "--state", str(db))
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"{request_id}: accepted (200), 1 new events, 1 notifications" in replayed.stdout
        # the running daemon delivers what the replay committed beside it (it reads the outbox again)
        wait_until(lambda: events_of(receiver), WAIT_S, "the replayed event delivered", daemon)
        assert [e["objectId"] for e in events_of(receiver)] == ["test@example.org"]
        receiver.assert_all_verified()
        again = run_poller(tmp_path, "webhooks", "replay", request_id, "-c", str(config), "--state", str(db))
        assert "duplicate (200)" in again.stdout  # replaying twice announces nothing more
        assert daemon.stop() == 0


def test_a_listener_of_its_own_serves_only_the_inbound_route(tmp_path: Path,
                                                              make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(SIGNING_KEY)
    config = hooks_config(tmp_path, receiver, engine={"webhooks": {"listen": "127.0.0.1:0"}})
    urls = paths(tmp_path, config)
    with DaemonProcess(tmp_path, config, state=tmp_path / "poller.db") as daemon:
        private, public = listening(daemon), listening(daemon, "engine.webhooks.listen")
        assert private != public
        body = (DATA / "mc_subscribe.form").read_bytes()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert httpx.post(private + urls["mc"], content=body, headers=form, timeout=10).status_code == 404
        assert httpx.get(public + "/metrics", timeout=10).status_code == 404
        assert httpx.get(public + "/healthz", timeout=10).status_code == 404
        assert httpx.post(public + urls["mc"], content=body, headers=form, timeout=10).status_code == 200
        assert httpx.get(private + "/healthz", timeout=10).status_code == 200
        wait_until(lambda: events_of(receiver), WAIT_S, "the event delivered", daemon)
        assert daemon.stop() == 0


def test_sigkill_at_random_moments_loses_no_request_that_got_a_200(tmp_path: Path,
                                                                    make_receiver: Callable[..., Receiver]) -> None:
    seed = int(os.environ.get("INBOUND_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    receiver = make_receiver(SIGNING_KEY)
    config = hooks_config(tmp_path, receiver, engine={"listen": "127.0.0.1:0"})
    urls = paths(tmp_path, config)
    db = tmp_path / "poller.db"
    acknowledged: set[str] = set()  # email addresses of every event in a request answered 200
    sent = 0
    for round_no in range(4):
        with DaemonProcess(tmp_path, config, state=db) as daemon:
            base = listening(daemon)
            stop = threading.Event()

            def post_until_killed() -> None:
                nonlocal sent
                with httpx.Client(base_url=base, timeout=5) as client:
                    while not stop.is_set():
                        sent += 1
                        emails = [f"r{round_no}-{sent}-{i}@x" for i in range(rng.randrange(1, 40))]
                        body = json.dumps({"ListID": CM_LIST, "Events": [
                            {"Type": "Subscribe", "EmailAddress": e, "Date": "2024-01-02 03:04:05"} for e in emails]})
                        try:
                            answer = client.post(urls["cm"], content=body, headers={"Content-Type": "application/json"})
                        except httpx.HTTPError:
                            return  # killed under this request: it got no 200, so it may be lost
                        if answer.status_code == 200:
                            acknowledged.update(emails)

            poster = threading.Thread(target=post_until_killed)
            poster.start()
            wait_until(lambda: len(acknowledged) > 50 * (round_no + 1), WAIT_S, "some acknowledged requests", daemon)
            threading.Event().wait(rng.uniform(0, 0.3))
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait()
            stop.set()
            poster.join(10)
    with DaemonProcess(tmp_path, config, state=db) as daemon:  # a last start delivers what is left
        with open_store(db, writer=False) as store:
            announced = {e["objectId"] for n in store.notifications()
                         for e in json.loads(n.notification.body)["message"]["events"]}
        missing = acknowledged - announced
        assert not missing, f"seed {seed}: {len(missing)} acknowledged events not in the outbox, e.g. {sorted(missing)[:3]}"
        wait_until(lambda: acknowledged <= {e["objectId"] for e in events_of(receiver)}, 60,
                   f"every acknowledged event delivered (seed {seed})", daemon)
        receiver.assert_all_verified()
        assert daemon.stop() == 0
