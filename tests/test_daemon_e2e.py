"""`poller run` end to end: the daemon as a real subprocess, between a real provider and a real
receiver on 127.0.0.1, with a real SQLite state file.

Intervals are fractions of a minute (``INTERVAL_MIN``: 1.5 s), so every test sees several polls in
a few seconds. Time is real and nothing sleeps for a fixed long time: each step polls a condition
(the receiver's requests, the state file read beside the daemon, the daemon's log lines) until a
deadline, and the failure message carries the daemon's log. Every daemon is stopped by the test
that started it (``with DaemonProcess(...)``: SIGTERM, then SIGKILL as a last resort).

The receiver (tests/receiver.py) verifies both signatures of every request; every test that
delivers ends with ``assert_all_verified``. Set DAEMON_KILL_SEED to replay the SIGKILL test.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from state import ResourceState, StateError, open_store
from tests.conftest import ROOT, NotifySocket
from tests.fakeprovider import FakeProvider, parse_time
from tests.receiver import Receiver
from tests.test_once_e2e import once, record, run_poller, write_config

pytestmark = pytest.mark.slow

INTERVAL_MIN = 0.025  # event.poller.refresh_interval in minutes: 1.5 s
INTERVAL_S = INTERVAL_MIN * 60
KEY = "crm/contacts"
SIGNING_KEY = "MySecretEventSignatureKey"
WAIT_S = 20.0  # the longest any single condition may take (a few intervals, on a slow CI machine)
T = TypeVar("T")


# -- the daemon as a subprocess ----------------------------------------------------------------

class DaemonProcess:
    """``poller run`` in ``tmp_path``, its stdout and stderr in a log file that can be read while it
    runs. A context manager: leaving it stops the daemon (SIGTERM, then SIGKILL after 10 s)."""

    count = 0

    def __init__(self, tmp_path: Path, config: Path, *, state: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        DaemonProcess.count += 1
        self.log_path = tmp_path / f"daemon-{DaemonProcess.count}.log"
        args = [sys.executable, "-m", "poller", "run", "-c", str(config), "--log-level", "info"]
        if state is not None:
            args += ["--state", str(state)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop/__exit__)
        try:
            self.proc = subprocess.Popen(args, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=self._log,
                                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})})
        except BaseException:
            self._log.close()
            raise

    # reading
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def lines(self, event: str) -> list[str]:
        """The log lines of one event name (the third field of a text log line)."""
        return [line for line in self.log().splitlines() if line.split(" ")[2:3] == [event]]

    def wait_log(self, event: str, count: int = 1, timeout: float = WAIT_S) -> list[str]:
        return wait_until(lambda: (found := self.lines(event)) and len(found) >= count and found,
                          timeout, f"{count} {event!r} log line(s)", self)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    # stopping
    def signal(self, sig: int) -> None:
        assert self.running, f"the daemon already exited ({self.proc.returncode})\n{self.log()}"
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait: the exit status (SIGKILL and an AssertionError when it hangs)."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the daemon did not stop within {timeout} s of SIGTERM\n{self.log()}") from None

    def kill(self) -> None:
        if self.running:
            self.proc.kill()
        self.proc.wait()
        self._log.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.running:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self.kill()


def wait_until(condition: Callable[[], T | None], timeout: float, what: str,
               daemon: DaemonProcess | None = None) -> T:
    """Poll ``condition`` every few milliseconds until it returns something truthy (returned);
    AssertionError after ``timeout`` s, or as soon as ``daemon`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and not daemon.running:
            raise AssertionError(f"the daemon exited ({daemon.proc.returncode}) while waiting for {what}\n"
                                 f"{daemon.log()}")
        if time.monotonic() > deadline:
            log = f"\n{daemon.log()}" if daemon is not None else ""
            raise AssertionError(f"no {what} within {timeout} s{log}")
        time.sleep(0.02)


# -- configuration, state, receiver ------------------------------------------------------------

def daemon_config(tmp_path: Path, provider: FakeProvider, receiver: Receiver, *,
                  resources: Iterable[str] = ("contacts",), engine: dict | None = None,
                  path: Path | None = None) -> Path:
    """write_config's resource for each name in ``resources`` (polling ``/<name>``; give each but
    ``contacts`` a ``provider.add_collection``), every INTERVAL_MIN, signed, to the receiver. The file
    is replaced atomically, so a daemon reloading it never reads half of it."""
    template = json.loads(write_config(tmp_path, provider, engine=engine).read_text(encoding="utf-8"))
    conf = template["instances"][0]["configuration"]
    conf["event.poller.refresh_interval"] = INTERVAL_MIN
    conf["event.notification.callback.url"] = receiver.url("/hook")
    conf["event.notification.signature.key"] = SIGNING_KEY
    base = conf["event.poller.configuration"]["contacts"]
    conf["event.poller.configuration"] = {
        name: {**base, "url": base["url"].replace("/contacts?", f"/{name}?", 1)} for name in resources}
    return write_json(path or tmp_path / "config.json", template)


def write_json(path: Path, data: Any) -> Path:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_state(db: Path, key: str = KEY) -> ResourceState | None:
    """The resource's state as a reader beside the daemon sees it (None before the file exists)."""
    try:
        with open_store(db, writer=False) as store:
            state = store.resource_state(key)
    except StateError:
        return None
    return state if state.polls or state.last_poll_ms is not None else None


def wait_polls(db: Path, daemon: DaemonProcess, count: int = 1, key: str = KEY,
               after: ResourceState | None = None) -> ResourceState:
    """The state once ``count`` polls of ``key`` succeeded (beyond ``after``'s, when given)."""
    base = after.polls if after is not None else 0

    def done() -> ResourceState | None:
        state = read_state(db, key)
        ok = state is not None and state.polls >= base + count and state.last_success_ms is not None
        return state if ok else None

    return wait_until(done, WAIT_S, f"{count} successful poll(s) of {key}", daemon)


def delivered_events(receiver: Receiver) -> list[dict]:
    """Every event of every notification the receiver answered with a 2xx, in arrival order."""
    return [{**event, "notification": r.notification_id} for r in receiver.delivered()
            for event in r.json["message"]["events"]]


def wait_delivered(receiver: Receiver, daemon: DaemonProcess, want: set[tuple[str, str]]) -> list[dict]:
    """Delivered events once every (objectId, eventType) of ``want`` is among them."""
    def arrived() -> list[dict] | None:
        events = delivered_events(receiver)
        return events if want <= {(e["objectId"], e["eventType"]) for e in events} else None

    return wait_until(arrived, WAIT_S, f"delivery of {sorted(want)}", daemon)


def outbox_events(db: Path) -> list[dict]:
    with open_store(db, writer=False) as store:
        return [e for entry in store.notifications()
                for e in json.loads(entry.notification.body)["message"]["events"]]


def add_records(provider: FakeProvider, *records: dict, path: str | None = None) -> None:
    with provider.lock:
        (provider.collection(path) if path else provider.default).records.extend(records)


def update_record(provider: FakeProvider, rid: str, updated: datetime, created: datetime,
                  path: str | None = None) -> None:
    with provider.lock:
        records = (provider.collection(path) if path else provider.default).records
        index = next(i for i, r in enumerate(records) if r["id"] == rid)
        records[index] = record(rid, updated, created=created)


@pytest.fixture
def provider(make_fake_provider: Callable[..., FakeProvider]) -> FakeProvider:
    return make_fake_provider()


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver(SIGNING_KEY)


# -- 1. changes flow end to end ----------------------------------------------------------------

def test_changes_flow_from_provider_to_receiver(tmp_path: Path, provider: FakeProvider, receiver: Receiver) -> None:
    long_ago = provider.now() - timedelta(days=3)
    add_records(provider, record("1", provider.now() - timedelta(seconds=20), created=long_ago))
    config = daemon_config(tmp_path, provider, receiver)
    db = tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        daemon.wait_log("daemon.started")
        baseline = wait_polls(db, daemon)
        assert baseline.cursor_ms is not None
        assert receiver.snapshot() == []  # the baseline remembers what exists, it announces nothing

        now = provider.now()
        update_record(provider, "1", now, long_ago)
        add_records(provider, record("2", now))
        wait_delivered(receiver, daemon, {("1", "UPDATED"), ("2", "CREATED")})
        after = wait_polls(db, daemon, after=baseline)  # and one more poll finds nothing new
        assert after.cursor_ms is not None and after.cursor_ms >= baseline.cursor_ms
        assert daemon.stop() == 0
    receiver.assert_all_verified()

    requests = receiver.snapshot()
    assert all(r.headers["elements-webhook-signature"].startswith("sha256=") for r in requests)
    assert all(r.headers["webhook-signature"].startswith("v1,") for r in requests)
    events = delivered_events(receiver)
    assert sorted((e["objectId"], e["eventType"]) for e in events) == [("1", "UPDATED"), ("2", "CREATED")]
    assert {r.json["message"]["raw"]["objectType"] for r in requests} == {"contacts"}
    with open_store(db, writer=False) as store:
        entries = store.notifications()
    assert {e.notification.id for e in entries} == {r.notification_id for r in requests}
    assert {e.status for e in entries} == {"delivered"}
    log = daemon.log()
    assert "crm/contacts: ok baseline" in log
    assert "delivery.delivered" in log and "daemon.stopped" in log
    assert " ERROR " not in log and "Traceback" not in log, log


# -- 2. SIGHUP adds a resource and removes another ----------------------------------------------

def test_sighup_adds_and_removes_resources_and_keeps_state(tmp_path: Path, provider: FakeProvider,
                                                           receiver: Receiver) -> None:
    provider.add_collection("/leads")
    provider.add_collection("/accounts")
    config = daemon_config(tmp_path, provider, receiver, resources=("contacts", "leads"))
    db = tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        wait_polls(db, daemon, key="crm/leads")
        contacts = wait_polls(db, daemon)
        add_records(provider, record("c1", provider.now()))
        wait_delivered(receiver, daemon, {("c1", "CREATED")})
        before = wait_polls(db, daemon, after=contacts)

        add_records(provider, record("a0", provider.now() - timedelta(seconds=5)), path="/accounts")  # not news
        daemon_config(tmp_path, provider, receiver, resources=("contacts", "accounts"))
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_log("config.reloaded")[0]
        assert "crm/accounts" in reloaded and "crm/leads" in reloaded and "kept=1" in reloaded
        requests_at_reload = len(provider.requests)

        wait_polls(db, daemon, key="crm/accounts")  # its baseline
        now = provider.now()
        add_records(provider, record("a1", now), path="/accounts")
        add_records(provider, record("l1", now), path="/leads")
        add_records(provider, record("c2", now))
        wait_delivered(receiver, daemon, {("a1", "CREATED"), ("c2", "CREATED")})
        kept = wait_polls(db, daemon, after=read_state(db))  # one more full poll of contacts after that
        leads = read_state(db, "crm/leads")
        assert daemon.stop() == 0
    receiver.assert_all_verified()

    got = Counter((e["objectId"], e["eventType"]) for e in delivered_events(receiver))
    assert got == {("c1", "CREATED"): 1, ("c2", "CREATED"): 1, ("a1", "CREATED"): 1}  # no l1, no a0
    assert not [r for r in provider.requests[requests_at_reload:] if r.path == "/leads"]
    # the kept resource kept its state: no second baseline, its cursor and counters went on
    assert len([line for line in daemon.lines("poll.done") if "crm/contacts: ok baseline" in line]) == 1
    assert before.cursor_ms is not None and kept.cursor_ms is not None and kept.cursor_ms >= before.cursor_ms
    assert kept.polls > before.polls and kept.events == 2
    assert leads is not None and leads.events == 0  # never polled again: nothing announced


# -- 3. an invalid reload is refused, polling goes on -------------------------------------------

def test_an_invalid_config_on_sighup_is_refused_and_polling_continues(tmp_path: Path, provider: FakeProvider,
                                                                      receiver: Receiver) -> None:
    config = daemon_config(tmp_path, provider, receiver)
    good = json.loads(config.read_text(encoding="utf-8"))
    db = tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        baseline = wait_polls(db, daemon)

        config.write_text('{"instances": [', encoding="utf-8")  # not JSON at all
        daemon.signal(signal.SIGHUP)
        first = daemon.wait_log("config.reload_rejected")[0]
        assert str(config) in first and "JSON" in first, first

        bad = json.loads(json.dumps(good))
        conf = bad["instances"][0]["configuration"]
        conf["event.notification.callback.url"] = "ftp://example.com/hook"
        conf["event.poller.configuration"]["contacts"]["datesConfiguration"]["updatedDateFormat"] = "yyyy-bb"
        write_json(config, bad)
        daemon.signal(signal.SIGHUP)
        second = daemon.wait_log("config.reload_rejected", count=2)[1]
        assert "must be an http:// or https:// URL" in second, second  # every problem is listed
        assert "unknown pattern letter 'b'" in second, second
        assert daemon.lines("config.reloaded") == []

        after = wait_polls(db, daemon, after=baseline)  # still polling on the old configuration
        add_records(provider, record("late", provider.now()))
        wait_delivered(receiver, daemon, {("late", "CREATED")})
        assert daemon.running
        assert daemon.stop() == 0
    receiver.assert_all_verified()
    assert after.last_error is None and after.consecutive_failures == 0


# -- 4. SIGTERM in the middle of a poll ----------------------------------------------------------

SHUTDOWN_TIMEOUT_S = 3.0
PAGE_DELAY_S = 0.25


@pytest.mark.parametrize("pages", [30, 4], ids=["poll-longer-than-the-timeout", "poll-that-can-finish"])
def test_sigterm_in_the_middle_of_a_poll_exits_0_in_time_with_a_consistent_database(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], receiver: Receiver, pages: int) -> None:
    """30 pages take 7.5 s: the poll is cancelled at the timeout, its committed pages stay and its
    cursor does not move. 4 pages take 1 s: the poll is let finish, and its cursor moves."""
    provider = make_fake_provider(style="page", page_size=10)
    config = daemon_config(tmp_path, provider, receiver, engine={"shutdownTimeoutSeconds": SHUTDOWN_TIMEOUT_S})
    data = json.loads(config.read_text(encoding="utf-8"))
    data["instances"][0]["configuration"]["event.poller.configuration"]["contacts"].update(
        {"pageSize": 10, "pagination": {"type": "page"}})
    write_json(config, data)
    db = tmp_path / "poller.db"
    total = pages * 10
    finishes = pages * PAGE_DELAY_S < SHUTDOWN_TIMEOUT_S / 2
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        baseline = wait_polls(db, daemon)
        now = provider.now()
        with provider.lock:
            provider.fail(None, delay_s=PAGE_DELAY_S, times=None)
            provider.records.extend(record(f"r{i}", now - timedelta(milliseconds=i)) for i in range(total))

        def committed() -> int:
            with open_store(db, writer=False) as store:
                return len(store.notifications())

        wait_until(lambda: committed() >= 1, WAIT_S, "a committed page of the slow poll", daemon)
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        asked = max(r.page for r in provider.requests)
        assert asked < pages, "the poll was not in its middle"
        rc = daemon.stop(timeout=SHUTDOWN_TIMEOUT_S + 10)
        elapsed = time.monotonic() - started
        log = daemon.log()
    assert rc == 0, log
    assert elapsed <= SHUTDOWN_TIMEOUT_S, f"stopped {elapsed:.2f} s after SIGTERM\n{log}"
    assert ("daemon.polls_cancelled" in log) == (not finishes), log
    assert "daemon.stopped" in log, log
    assert " ERROR " not in log and "Traceback" not in log, log  # a stop is not a crash

    with open_store(db, writer=False) as store:
        assert store.integrity_check() == "ok"
        state = store.resource_state(KEY)
        partial = len(store.notifications())
    assert state.cursor_ms is not None and baseline.cursor_ms is not None
    if finishes:
        assert state.cursor_ms > baseline.cursor_ms
        assert partial == pages
    else:
        assert state.cursor_ms == baseline.cursor_ms  # not moved past the unfinished poll
        assert 1 <= partial < pages

    with provider.lock:
        provider.faults.clear()
    once(tmp_path, config)  # finishes the job (and delivers what is pending)
    counts = Counter(e["objectId"] for e in outbox_events(db))
    assert set(counts) == {f"r{i}" for i in range(total)}
    assert set(counts.values()) == {1}, [k for k, v in counts.items() if v != 1][:5]  # announced exactly once
    with open_store(db, writer=False) as store:
        assert {e.status for e in store.notifications()} == {"delivered"}
        assert store.resource_state(KEY).cursor_ms > baseline.cursor_ms
    assert {e["objectId"] for e in delivered_events(receiver)} == set(counts)
    receiver.assert_all_verified()


# -- 5. SIGKILL at random moments ---------------------------------------------------------------

MIN_KILLS = 6
ORIGINALS = 40  # records present at the baseline; each round updates a few of them once


def test_sigkill_at_random_moments_and_restart_delivers_everything_with_stable_ids(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], receiver: Receiver) -> None:
    seed = int(os.environ.get("DAEMON_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    provider = make_fake_provider(style="page", page_size=20)
    provider.fail(None, delay_s=0.02, times=None)  # a page takes 20 ms: kills land inside polls
    receiver.respond(None, delay_s=0.03, times=None)  # and inside deliveries
    config = daemon_config(tmp_path, provider, receiver, engine={"delivery": {"batchSize": 5}})
    data = json.loads(config.read_text(encoding="utf-8"))
    data["instances"][0]["configuration"]["event.poller.configuration"]["contacts"].update(
        {"pageSize": 20, "pagination": {"type": "page"}})
    write_json(config, data)
    db = tmp_path / "poller.db"
    long_ago = provider.now() - timedelta(days=3)
    add_records(provider, *(record(f"o{i}", provider.now() - timedelta(seconds=30), created=long_ago)
                            for i in range(ORIGINALS)))
    originals = [f"o{i}" for i in range(ORIGINALS)]
    rng.shuffle(originals)
    expected: set[tuple[str, datetime]] = set()  # (objectId, stamp) of every version to announce

    def version(rec: dict) -> tuple[str, datetime]:
        stamp = parse_time(rec["updated"])
        assert stamp is not None
        return rec["id"], stamp

    def change(round_no: int, part: int) -> None:
        """New records, and new versions of two originals (each updated once: the provider keeps
        only the latest version, and one it never served cannot be announced)."""
        now = provider.now()
        new = [record(f"n{round_no}-{part}-{i}", now - timedelta(milliseconds=i)) for i in range(rng.randrange(5, 30))]
        add_records(provider, *new)
        expected.update(version(r) for r in new)
        for _ in range(min(len(originals), 2)):
            rid = originals.pop()
            update_record(provider, rid, now, long_ago)
            expected.add(version(record(rid, now)))

    kills = 0
    daemon = DaemonProcess(tmp_path, config, state=db)
    try:
        wait_polls(db, daemon)  # changes before the first baseline would be (rightly) never announced
        for round_no in range(MIN_KILLS):
            if round_no:
                daemon = DaemonProcess(tmp_path, config, state=db)
            change(round_no, 0)
            life = rng.uniform(0.2, 3.0)  # from start-up to a few polls and deliveries
            change_at = rng.uniform(0, life)
            time.sleep(change_at)  # random moments, not waits for a condition
            change(round_no, 1)
            time.sleep(life - change_at)
            assert daemon.running, f"seed {seed}: the daemon exited ({daemon.proc.returncode})\n{daemon.log()}"
            daemon.kill()
            kills += 1
            with open_store(db, writer=False) as store:
                assert store.integrity_check() == "ok", f"seed {seed}, round {round_no}"

        daemon = DaemonProcess(tmp_path, config, state=db)  # the last one runs to the end
        daemon.wait_log("daemon.started")  # (before its signal handlers, SIGTERM would kill it: -15)

        def everything() -> list[dict] | None:
            events = delivered_events(receiver)
            got = {(e["objectId"], parse_time(e["date"])) for e in events}
            return events if expected <= got else None

        try:
            events = wait_until(everything, 2 * WAIT_S, "every change delivered", daemon)
        except AssertionError as exc:
            got = {(e["objectId"], parse_time(e["date"])) for e in delivered_events(receiver)}
            raise AssertionError(f"seed {seed}: missing {sorted(expected - got)[:5]}") from exc
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert kills >= 5
    receiver.assert_all_verified()

    ids_of_version: dict[tuple[str, str], set[str]] = defaultdict(set)
    versions_of_id: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for e in events:
        ids_of_version[(e["objectId"], e["date"])].add(e["id"])
        versions_of_id[e["id"]].add((e["objectId"], e["date"], e["eventType"]))
    unstable = {v: ids for v, ids in ids_of_version.items() if len(ids) != 1}
    assert not unstable, f"seed {seed}: versions announced under several ids: {list(unstable.items())[:3]}"
    assert all(len(v) == 1 for v in versions_of_id.values()), f"seed {seed}"
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for r in receiver.delivered():
        bodies[r.notification_id or ""].add(r.body)
    assert all(len(b) == 1 for b in bodies.values()), f"seed {seed}: a repeated notification changed"
    # detection itself announced every version exactly once, however often delivery repeated it
    counts = Counter((e["objectId"], e["date"]) for e in outbox_events(db))
    assert set(counts.values()) == {1}, f"seed {seed}: {[k for k, v in counts.items() if v != 1][:5]}"
    assert {(o, parse_time(d)) for o, d in counts} == expected, f"seed {seed}"
    types = {e["objectId"]: e["eventType"] for e in events}
    assert all(types[o] == ("UPDATED" if o.startswith("o") else "CREATED") for o, _ in expected), f"seed {seed}"


# -- 6. systemd notifications --------------------------------------------------------------------

def test_notify_socket_gets_ready_watchdog_status_and_stopping(tmp_path: Path, provider: FakeProvider,
                                                               receiver: Receiver,
                                                               notify_socket: NotifySocket) -> None:
    config = daemon_config(tmp_path, provider, receiver)
    db = tmp_path / "poller.db"
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"}
    with DaemonProcess(tmp_path, config, state=db, env=env) as daemon:
        ready = notify_socket.wait_for("READY=1", timeout=WAIT_S)
        status = dict(line.split("=", 1) for line in ready.split("\n"))["STATUS"]
        assert re.fullmatch(r"1 resources? \(0 failing\).*; 0 notifications pending, 0 dead", status), status
        notify_socket.wait_for("WATCHDOG=1", timeout=5)
        wait_until(lambda: notify_socket.messages().count("WATCHDOG=1") >= 3, 5, "three WATCHDOG=1 (every 0.5 s)",
                   daemon)
        wait_polls(db, daemon)
        polled = wait_until(lambda: [m for m in notify_socket.messages()
                                     if m.startswith("STATUS=") and "last poll crm/contacts ok" in m],
                            5, "a STATUS= line after the first poll", daemon)
        assert "1 resource" in polled[0] and "notifications pending" in polled[0], polled
        assert daemon.stop() == 0
    messages = notify_socket.messages()
    assert "STOPPING=1" in messages, messages
    assert messages.index(ready) < messages.index("STOPPING=1")
    assert "WATCHDOG=1" not in messages[messages.index("STOPPING=1"):], messages  # no pings while stopping
    assert all(re.fullmatch(r"[A-Z_]+=.*", line) for m in messages for line in m.split("\n")), messages


# -- 7. /metrics and /healthz --------------------------------------------------------------------

def test_listen_serves_metrics_and_healthz(tmp_path: Path, provider: FakeProvider, receiver: Receiver) -> None:
    config = daemon_config(tmp_path, provider, receiver, engine={"listen": "127.0.0.1:0"})
    db = tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        line = daemon.wait_log("daemon.listening")[0]
        address = re.search(r"address=(127\.0\.0\.1):(\d+)", line)
        assert address is not None and int(address[2]) > 0, line
        base = f"http://{address[1]}:{address[2]}"
        wait_polls(db, daemon)

        def polls() -> float | None:
            response = httpx.get(f"{base}/metrics", timeout=5)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            total = sum(s.value for family in text_string_to_metric_families(response.text)
                        for s in family.samples if s.name == "poller_polls_total"
                        and s.labels.get("instance") == "crm" and s.labels.get("resource") == "contacts")
            return total if total >= 1 else None

        assert wait_until(polls, 5, "poller_polls_total for crm/contacts", daemon) >= 1
        health = httpx.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200 and health.text.strip() == "ok", health.text
        assert httpx.get(f"{base}/nothing", timeout=5).status_code == 404
        assert daemon.stop() == 0


# -- 8. poller status beside the daemon ----------------------------------------------------------

def test_status_reads_the_state_while_the_daemon_runs(tmp_path: Path, provider: FakeProvider,
                                                      receiver: Receiver) -> None:
    db = tmp_path / "state" / "poller.db"
    config = daemon_config(tmp_path, provider, receiver, engine={"statePath": str(db)})
    with DaemonProcess(tmp_path, config) as daemon:  # the state file comes from the config
        baseline = wait_polls(db, daemon)
        receiver.respond(410, times=1)  # the first notification becomes a dead letter
        add_records(provider, record("gone", provider.now()))
        wait_until(lambda: receiver.snapshot(), WAIT_S, "the notification that gets a 410", daemon)
        add_records(provider, record("kept", provider.now()))
        wait_delivered(receiver, daemon, {("kept", "CREATED")})

        started = time.monotonic()
        proc = run_poller(tmp_path, "status", "--json", "-c", str(config))
        took = time.monotonic() - started
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rows = json.loads(proc.stdout)
        current = read_state(db)
        text = run_poller(tmp_path, "status", "-c", str(config))
        assert text.returncode == 0 and "crm/contacts" in text.stdout and "CURSOR" in text.stdout, text

        add_records(provider, record("after", provider.now()))  # the daemon was not disturbed
        wait_delivered(receiver, daemon, {("after", "CREATED")})
        assert daemon.stop() == 0
    receiver.assert_all_verified()

    assert took < 10
    assert [(r["instance"], r["resource"]) for r in rows] == [("crm", "contacts")]
    row = rows[0]
    assert current is not None and baseline.cursor_ms is not None and current.cursor_ms is not None
    cursor = parse_time(row["cursor"])
    assert cursor is not None
    assert baseline.cursor_ms <= cursor.timestamp() * 1000 <= current.cursor_ms
    assert row["lastPoll"] and row["lastSuccess"] and row["nextDue"]
    assert parse_time(row["nextDue"]) > parse_time(row["lastPoll"])
    assert row["consecutiveFailures"] == 0 and row["lastError"] is None
    assert (row["pending"], row["dead"]) == (0, 1)


def _signal_mask(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


def test_signals_while_starting_are_answered_once_the_daemon_runs(tmp_path: Path, provider: FakeProvider,
                                                                   receiver: Receiver) -> None:
    """A SIGHUP in the first ~0.3 s killed `poller run`, and a reload asked for then was lost; a
    SIGTERM then ended it by the signal instead of exit 0. The handlers now come first of all:
    the reload happens once the daemon runs, the stop is a clean stop."""
    config = daemon_config(tmp_path, provider, receiver)
    hup, term = 1 << (signal.SIGHUP - 1), 1 << (signal.SIGTERM - 1)
    with DaemonProcess(tmp_path, config, state=tmp_path / "a.db") as daemon:
        # as soon as SIGHUP stops being fatal: before the configuration is even loaded
        wait_until(lambda: not daemon.running or (_signal_mask(daemon.proc.pid, "SigCgt")
                                                  | _signal_mask(daemon.proc.pid, "SigIgn")) & hup, WAIT_S,
                   "SIGHUP handled", daemon)
        assert not daemon.lines("daemon.started")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("daemon.started")
        daemon.wait_log("config.reloaded")  # asked for while starting, done once running
        assert daemon.stop() == 0
    with DaemonProcess(tmp_path, config, state=tmp_path / "b.db") as daemon:
        wait_until(lambda: not daemon.running or _signal_mask(daemon.proc.pid, "SigCgt") & term, WAIT_S,
                   "SIGTERM handled", daemon)
        daemon.signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0, daemon.log()


def test_disabling_an_instance_and_enabling_it_again_resumes_and_announces_the_change_made_between(
        tmp_path: Path, provider: FakeProvider, receiver: Receiver) -> None:
    """It came back as a baseline, and the change made while it was disabled was never announced."""
    config = daemon_config(tmp_path, provider, receiver)
    db = tmp_path / "poller.db"
    with DaemonProcess(tmp_path, config, state=db) as daemon:
        baseline = wait_polls(db, daemon)
        data = json.loads(config.read_text(encoding="utf-8"))
        data["instances"][0]["configuration"]["event.notification.enabled"] = False
        write_json(config, data)
        daemon.signal(signal.SIGHUP)
        assert "removed=['crm/contacts']" in daemon.wait_log("config.reloaded")[0]
        paused = read_state(db)
        assert paused is not None and paused.removed_ms is not None and paused.cursor_ms == baseline.cursor_ms
        add_records(provider, record("while-paused", provider.now()))  # changed while nobody polls
        time.sleep(2 * INTERVAL_MIN * 60)  # (a poll would have happened by now)
        assert read_state(db).polls == paused.polls  # paused indeed
        data["instances"][0]["configuration"]["event.notification.enabled"] = True
        write_json(config, data)
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("config.reloaded", count=2)
        wait_delivered(receiver, daemon, {("while-paused", "CREATED")})
        assert read_state(db).removed_ms is None
        assert daemon.stop() == 0
