"""``poller demo``: the real engine between a sample provider and a receiver, all on 127.0.0.1.

The sample provider serves ``/contacts`` (a JSON array, filtered by ``updatedSince``) and
changes a record every couple of seconds; a sample Mailchimp posts a subscribe webhook (a form
body, as Mailchimp sends it) to poller's inbound route every few seconds; the receiver checks
both signatures of every notification it gets and prints it. poller polls, receives and
delivers as it would in production, with a state file and a configuration written to a
temporary directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

__all__ = ["run_demo"]

NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Tim"]


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SampleProvider:
    """A tiny CRM: records with ids, names and updated/created dates, changed by :meth:`tick`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        now = datetime.now(timezone.utc)
        self.records = [{"id": str(i), "name": NAMES[i], "created": _iso(now - timedelta(days=30 - i)),
                         "updated": _iso(now - timedelta(days=30 - i))} for i in range(5)]
        self.rng = random.Random()

    def tick(self) -> str:
        """Create a record or rename one; returns what happened."""
        now = _iso(datetime.now(timezone.utc))
        with self.lock:
            if len(self.records) < len(NAMES) and self.rng.random() < 0.5:
                rid = str(len(self.records))
                self.records.append({"id": rid, "name": NAMES[int(rid)], "created": now, "updated": now})
                return f"provider: created contact {rid} ({NAMES[int(rid)]})"
            record = self.rng.choice(self.records)
            record["name"] = record["name"].split(" ")[0] + f" #{self.rng.randrange(1000)}"
            record["updated"] = now
            return f"provider: updated contact {record['id']} -> {record['name']}"

    def visible(self, since: str | None) -> list[dict]:
        with self.lock:
            if not since:
                return list(self.records)
            return [r for r in self.records if r["updated"] >= since]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        body = json.dumps(self.server.provider.visible((query.get("updatedSince") or [None])[0])).encode()
        self._answer(200, body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.on_post(body, {k.lower(): v for k, v in self.headers.items()})
        self._answer(200, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    provider: SampleProvider
    on_post: Callable[[bytes, dict[str, str]], None]


def verify(body: bytes, headers: dict[str, str], key: str) -> tuple[bool, bool]:
    """(Cloud Elements signature ok, Standard Webhooks signature ok), checked as a receiver would."""
    elements = "sha256=" + base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    standard = "v1," + base64.b64encode(
        hmac.new(key.encode(), f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
    return (hmac.compare_digest(headers.get("elements-webhook-signature", ""), elements),
            fresh and hmac.compare_digest(headers.get("webhook-signature", ""), standard))


def _free_port() -> int:
    with socket.socket() as sock:  # (another process could take it before poller does: a demo's risk)
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mailchimp_subscribe(n: int, now: datetime) -> bytes:
    """A Mailchimp ``subscribe`` webhook body, as Mailchimp posts it (form-encoded, bracketed keys)."""
    name = NAMES[n % len(NAMES)]
    return urlencode({"type": "subscribe", "fired_at": now.strftime("%Y-%m-%d %H:%M:%S"),
                      "data[id]": f"{n:010x}", "data[list_id]": "a6b5da1054", "data[email]": f"{name.lower()}{n}@example.com",
                      "data[email_type]": "html", "data[merges][EMAIL]": f"{name.lower()}{n}@example.com",
                      "data[merges][FNAME]": name, "data[merges][LNAME]": "", "data[ip_opt]": "10.20.10.30"}).encode()


def _post_webhooks(url: str, stop: threading.Event, out: TextIO, lock: threading.Lock) -> None:
    """The sample Mailchimp: its URL check (a GET), then a subscribe every 4 s."""
    n = 0
    with httpx.Client(timeout=10) as client:
        while not stop.wait(4.0 if n else 1.0):
            try:
                if n == 0:
                    client.get(url).raise_for_status()  # Mailchimp checks a URL before using it
                n += 1
                answer = client.post(url, content=mailchimp_subscribe(n, datetime.now(timezone.utc)),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
                with lock:
                    print(f"mailchimp: POST subscribe {NAMES[n % len(NAMES)].lower()}{n}@example.com -> "
                          f"{answer.status_code} {answer.text.strip()}", file=out)
                    out.flush()
            except httpx.HTTPError:
                continue  # poller is still starting


def _serve(server: _Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return thread


def run_demo(seconds: float | None, out: TextIO, run_engine: Callable[[Path, Path, threading.Event], int]) -> int:
    """Start the provider, the sample Mailchimp and the receiver, write a config, and hand over to
    ``run_engine`` (config path, state path, stop event). Exit 0 when verified notifications
    arrived, polled and from webhooks, and none failed verification."""
    key = secrets.token_hex(16)
    provider = SampleProvider()
    received: list[tuple[str, bool, bool]] = []  # (instance, signatures verified)
    lock = threading.Lock()

    def on_post(body: bytes, headers: dict[str, str]) -> None:
        ok = verify(body, headers, key)
        message = json.loads(body)["message"]
        with lock:
            received.append((message["instanceId"], *ok))
            print(f"receiver: notification {headers.get('webhook-id')} from {message['instanceId']} "
                  f"(Elements-Webhook-Signature {'verified' if ok[0] else 'WRONG'}, "
                  f"webhook-signature {'verified' if ok[1] else 'WRONG'})", file=out)
            for event in message["events"]:
                print(f"  {event['eventType']:<7} {event['objectType']} {event['objectId']} at {event['date']} "
                      f"(event {event['id']})", file=out)
            out.flush()

    api = _Server(("127.0.0.1", 0), _Handler)
    api.provider = provider
    receiver = _Server(("127.0.0.1", 0), _Handler)
    receiver.on_post = on_post
    threads = [_serve(api), _serve(receiver)]
    stop = threading.Event()
    inbound_port, token = _free_port(), secrets.token_urlsafe(16)
    hook_url = f"http://127.0.0.1:{inbound_port}/webhooks/demo-mailchimp/{token}"
    with tempfile.TemporaryDirectory(prefix="poller-demo-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps(_config(api.server_address[1], receiver.server_address[1], key,
                                             inbound_port, token), indent=2))
        print(f"demo: provider http://127.0.0.1:{api.server_address[1]}/contacts, receiver "
              f"http://127.0.0.1:{receiver.server_address[1]}/events, config {config}", file=out)
        print("demo: polling every 3 s; the provider changes a record every 2 s; a sample Mailchimp posts a "
              "subscribe to poller's webhook URL every 4 s. Ctrl-C stops.", file=out)
        out.flush()
        threads.append(threading.Thread(target=_post_webhooks, args=(hook_url, stop, out, lock), daemon=True))
        threads[-1].start()

        def change() -> None:
            while not stop.wait(2.0):
                print(provider.tick(), file=out)
                out.flush()

        threads.append(threading.Thread(target=change, daemon=True))
        threads[-1].start()
        if seconds is not None:
            timer = threading.Timer(seconds, stop.set)
            timer.daemon = True  # Ctrl-C must not wait for it
            timer.start()
        try:
            code = run_engine(config, Path(tmp) / "poller.db", stop)
        except KeyboardInterrupt:
            code = 0
        finally:
            stop.set()
            for server in (api, receiver):
                server.shutdown()
                server.server_close()
    verified = [instance for instance, *ok in received if all(ok)]
    polled, pushed = verified.count("demo-crm"), verified.count("demo-mailchimp")
    print(f"demo: {len(received)} notifications received, {len(verified)} with both signatures verified "
          f"({polled} polled, {pushed} from webhooks)", file=out)
    if code == 0 and (not polled or not pushed or len(verified) != len(received)):
        return 1
    return code


def _config(api_port: int, receiver_port: int, key: str, inbound_port: int, token: str) -> dict:
    return {
        "engine": {"lookbackSeconds": 10, "log": {"level": "WARNING"}, "webhooks": {"listen": f"127.0.0.1:{inbound_port}"}},
        "instances": [{
            "id": "demo-mailchimp", "name": "Demo Mailchimp", "element": {"key": "mailchimpv3"},
            "configuration": {
                "event.notification.enabled": True,
                "event.notification.callback.url": f"http://127.0.0.1:{receiver_port}/events",
                "event.notification.signature.key": key,
                "event.webhook.token": token,
            },
        }, {
            "id": "demo-crm", "name": "Demo CRM", "element": {"key": "democrm"},
            "api": {"baseUrl": f"http://127.0.0.1:{api_port}"},
            "configuration": {
                "event.notification.enabled": True,
                "event.notification.callback.url": f"http://127.0.0.1:{receiver_port}/events",
                "event.notification.signature.key": key,
                "event.poller.refresh_interval": 0.05,
                "event.poller.configuration": {
                    "contacts": {
                        "url": "/contacts?updatedSince=${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}",
                        "idField": "id",
                        "datesConfiguration": {
                            "updatedDateField": "updated", "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
                            "createdDateField": "created", "createdDateFormat": "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
                        },
                    },
                },
            },
        }],
    }
