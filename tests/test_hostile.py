"""What a hostile or broken world gets (DESIGN.md §12), end to end: `poller once` as a subprocess
against the fake provider on 127.0.0.1, a real state file, the outbox read back.

Each test here failed before the change that made it pass (the commit that added it says so).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from state import open_store
from tests.conftest import ROOT
from tests.fakeprovider import FakeProvider
from tests.test_once_e2e import DEFAULT_CALLBACK, announced, iso, record, write_config

MEASURED = ("import resource, sys\n"
            "from poller.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "print('peak-rss-kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(code)\n")


def measured_once(tmp_path: Path, config: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """`poller once`, and the peak resident memory of the process (bytes)."""
    proc = subprocess.run([sys.executable, "-c", MEASURED, "once", "-c", str(config), "--state",
                           str(tmp_path / "poller.db")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("peak-rss-kb "))
    return proc, int(line.split()[1]) * 1024


def once_proc(tmp_path: Path, config: Path, command: str = "once",
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poller", *command.split(), "-c", str(config), "--state",
                           str(tmp_path / "poller.db")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})})


def zeros_gzip(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join(c.compress(block) for _ in range(size >> 20)) + c.flush()


def two_resources(provider: FakeProvider, engine: dict[str, Any], api: dict[str, Any] | None = None) -> dict:
    """One instance polling /slow and /fast of the provider."""
    res = {"idField": "id", "datesConfiguration": {"updatedDateField": "updated",
                                                    "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"}}
    return {
        "engine": engine,
        "instances": [{
            "id": "crm", "element": {"key": "fakecrm"}, "api": {"baseUrl": provider.base_url, **(api or {})},
            "configuration": {
                "event.notification.enabled": True, "event.notification.callback.url": DEFAULT_CALLBACK,
                "event.poller.configuration": {"slow": {"url": "/slow", **res}, "fast": {"url": "/fast", **res}},
            },
        }],
    }


# -- 1. stacked compression ----------------------------------------------------------------------

def test_a_stacked_compression_bomb_fails_the_poll_within_bounded_memory(tmp_path: Path,
                                                                         fake_provider: FakeProvider) -> None:
    limit = 16 << 20
    now = datetime.now(timezone.utc)
    fake_provider.records.append(record("1", now))
    config = write_config(tmp_path, fake_provider, engine={"maxResponseBytes": limit})
    idle, idle_rss = measured_once(tmp_path, config)  # the same process on a healthy provider
    assert idle.returncode == 0, idle.stderr
    bomb = gzip.compress(zeros_gzip(1 << 30))  # a 1 GiB body in about a kilobyte
    fake_provider.fail(200, body=bomb, headers={"Content-Encoding": "gzip, gzip"}, times=None)
    proc, rss = measured_once(tmp_path, config)
    assert proc.returncode == 1
    assert "larger than the limit of 16777216 bytes once gzip is undone" in proc.stdout, proc.stdout
    assert rss - idle_rss < 3 * limit, (rss, idle_rss)


def test_more_than_two_encodings_are_refused(tmp_path: Path, fake_provider: FakeProvider) -> None:
    body = gzip.compress(gzip.compress(gzip.compress(b"[]")))
    fake_provider.fail(200, body=body, headers={"Content-Encoding": "gzip, gzip, gzip"}, times=None)
    proc = once_proc(tmp_path, write_config(tmp_path, fake_provider))
    assert proc.returncode == 1
    assert "stacks 3 encodings; at most 2 are read" in proc.stdout, proc.stdout


def test_an_ordinary_gzip_body_is_read(tmp_path: Path, fake_provider: FakeProvider) -> None:
    now = datetime.now(timezone.utc)
    body = json.dumps([record("a", now), record("b", now)]).encode()
    fake_provider.fail(200, body=gzip.compress(body), headers={"Content-Encoding": "gzip"}, times=None)
    proc = once_proc(tmp_path, write_config(tmp_path, fake_provider))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "records=2" in proc.stdout


# -- 2. a whole-response deadline ----------------------------------------------------------------

def test_a_provider_trickling_bytes_is_cut_off_at_the_timeout(tmp_path: Path, make_fake_provider: Any) -> None:
    provider: FakeProvider = make_fake_provider()
    now = datetime.now(timezone.utc)
    provider.add_collection("/fast", records=[record("f1", now)])
    provider.add_collection("/slow", records=[record("s1", now)])
    # a valid body, one byte every 0.4 s: each read is quick, the whole takes a minute
    body = json.dumps([record("s1", now)]).encode()
    provider.fail(200, body=body, trickle_s=0.4, times=None, path="/slow")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(two_resources(provider, {"maxConcurrentPolls": 1}, {"timeoutSeconds": 1})))
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {line.split(":", 1)[0]: line for line in proc.stdout.splitlines() if line.startswith("crm/")}
    assert "FAILED" in lines["crm/slow"] and "no complete response within 1 s (api.timeoutSeconds)" in lines["crm/slow"]
    assert "ok" in lines["crm/fast"]


# -- 6. poison records ---------------------------------------------------------------------------

BACKFILL = {"initialCursor": "2020-01-01T00:00:00Z"}  # the first poll announces (no baseline)


def outbox_bodies(tmp_path: Path) -> list[bytes]:
    with open_store(tmp_path / "poller.db", writer=False) as store:
        return [entry.notification.body for entry in store.notifications()]


@pytest.mark.parametrize("levels, tail", [(990, b""), (1100, b""), (100_000, b""), (5000, b"\xff")],
                         ids=["990", "past orjson and json", "100,000", "past them, and not UTF-8"])
def test_a_record_nested_too_deeply_is_skipped_and_the_others_announced(
        tmp_path: Path, fake_provider: FakeProvider, levels: int, tail: bytes) -> None:
    """Until 2026-12-04, past about 1,000 levels (where the decoders stop) the whole page was
    unreadable: the resource failed on every poll and announced nothing while it was served."""
    now = datetime.now(timezone.utc)
    deep = "[" * levels + '"x[{\\"]}"' + "]" * levels  # (a string with brackets and a quote, at the bottom)
    body = ("[" + json.dumps(record("ok1", now)) + ","
            + json.dumps(record("deep", now))[:-1] + ', "tree": ' + deep + "}," + json.dumps(record("ok2", now)) + "]")
    body_bytes = body.encode().replace(b'"x[{', b'"x' + tail + b"[{")
    fake_provider.fail(200, body=body_bytes, times=None)
    config = write_config(tmp_path, fake_provider, resource=BACKFILL)
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "too_deep=1" in proc.stderr, proc.stderr
    assert f"record deep: nested {levels + 1} levels deep (more than 512)" in proc.stderr
    assert sorted(announced(tmp_path)) == [("ok1", "CREATED"), ("ok2", "CREATED")]
    proc = once_proc(tmp_path, config)  # the next poll carries on, and says it again
    assert proc.returncode == 0 and "too_deep=1" in proc.stderr, proc.stdout + proc.stderr


def test_invalid_utf8_neither_stalls_the_resource_nor_reaches_the_logs(tmp_path: Path,
                                                                      fake_provider: FakeProvider) -> None:
    now = datetime.now(timezone.utc)
    good, bad_name, bad_id = record("r1", now), record("r2", now), record("r3", now)
    bad_name["name"] = "SECRETNAME"
    body = json.dumps([good, bad_name, bad_id]).encode()
    body = body.replace(b"SECRETNAME", b"caf\xe9 SECRET").replace(b'"r3"', b'"r\xff3"')
    fake_provider.fail(200, body=body, times=None)
    proc = once_proc(tmp_path, write_config(tmp_path, fake_provider, resource=BACKFILL))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fetch.invalid_utf8" in proc.stderr and "offset=" in proc.stderr
    assert "SECRET" not in proc.stdout + proc.stderr  # no record content in the logs
    assert "no_id=1" in proc.stderr and "not valid Unicode" in proc.stderr  # the id that held a bad byte
    assert sorted(announced(tmp_path)) == [("r1", "CREATED"), ("r2", "CREATED")]
    [sent] = [b for b in outbox_bodies(tmp_path) if b"r2" in b]
    assert b'"caf\\udce9 SECRET"' in sent  # the byte kept, escaped: the receiver can tell what came
    with open_store(tmp_path / "poller.db", writer=False) as store:
        assert store.resource_state("crm/contacts").last_error is None


def strict_json(body: bytes) -> Any:
    """What a strict receiver reads (JavaScript's JSON.parse, say): NaN and Infinity are errors."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(body, parse_constant=refuse)


def test_nan_and_infinity_reach_the_receiver_as_null(tmp_path: Path, fake_provider: FakeProvider) -> None:
    now = datetime.now(timezone.utc)
    # n2 also holds an integer beyond 64 bits: its page takes the standard library's paths
    # (a score no date can hold: "1.5" was also in a stamp like "16:40:31.510Z" once a minute)
    body = json.dumps([record("n1", now, score=1234.5678), record("n2", now, score=1234.5678, big=2 ** 70)])
    body = body.replace("1234.5678", "NaN").replace('"created"', '"hi": Infinity, "lo": -Infinity, "created"')
    fake_provider.fail(200, body=body.encode(), times=None)
    proc = once_proc(tmp_path, write_config(tmp_path, fake_provider, resource=BACKFILL))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sent = [r for b in outbox_bodies(tmp_path) for r in strict_json(b)["message"]["raw"]["contacts"]]
    assert [r["id"] for r in sent] == ["n1", "n2"] and sent[1]["big"] == 2 ** 70
    for r in sent:
        assert (r["score"], r["hi"], r["lo"]) == (None, None, None), r


# -- 3. cursor poisoning: a lying clock ----------------------------------------------------------

def state_of(tmp_path: Path, key: str = "crm/contacts") -> Any:
    with open_store(tmp_path / "poller.db", writer=False) as store:
        return store.resource_state(key)


YEAR_9999 = datetime(9999, 1, 1, tzinfo=timezone.utc)


def test_a_provider_date_of_year_9999_neither_moves_the_cursor_nor_silences_the_resource(
        tmp_path: Path, make_fake_provider: Any) -> None:
    now = datetime.now(timezone.utc)
    provider: FakeProvider = make_fake_provider(clock_offset_s=(YEAR_9999 - now).total_seconds())
    provider.records.append(record("poison", YEAR_9999))
    config = write_config(tmp_path, provider, resource=BACKFILL)
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "poll.clock_skew_ignored" in proc.stderr and "poll.future_stamps" in proc.stderr
    assert announced(tmp_path) == [("poison", "CREATED")]  # announced all the same
    cursor = state_of(tmp_path).cursor_ms
    assert cursor is not None and cursor <= (datetime.now(timezone.utc) + timedelta(hours=1)).timestamp() * 1000
    provider.records.append(record("later", datetime.now(timezone.utc)))  # a real change, after
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("later", "CREATED") in announced(tmp_path)


def test_a_cursor_already_in_the_future_is_set_back_on_load(tmp_path: Path, fake_provider: FakeProvider) -> None:
    """A state file written by a poller that believed year 9999 (or while our clock ran ahead)."""
    config = write_config(tmp_path, fake_provider)
    with open_store(tmp_path / "poller.db") as store:
        store.finish_poll("crm/contacts", "crm", "contacts", cursor_ms=int(YEAR_9999.timestamp() * 1000),
                          now_ms=0, prune_before_ms=None, prune_hash_before_ms=None, events=0)
    fake_provider.records.append(record("r1", datetime.now(timezone.utc)))
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "poll.cursor_clamped" in proc.stderr
    assert announced(tmp_path) == [("r1", "CREATED")]
    assert state_of(tmp_path).cursor_ms < YEAR_9999.timestamp() * 1000


def test_a_baseline_taken_while_our_clock_ran_ahead_does_not_silence_the_resource(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    """Our clock two days ahead at the baseline (the provider's Date is then 'too far' and
    ignored); once the clock is right again, the changes made since are announced."""
    from poller.config import load_config_text
    from poller.poll.runner import poll_all

    config = load_config_text(json.dumps(local_config_for(fake_provider)), "c.json", {}).config
    with open_store(tmp_path / "poller.db") as store:
        ahead = datetime.now(timezone.utc) + timedelta(days=2)
        [baseline] = asyncio.run(poll_all(config, store, ahead))
        assert baseline.ok and baseline.baseline and baseline.clock_skew_ignored_ms is not None
        fake_provider.records.append(record("r1", datetime.now(timezone.utc)))
        [outcome] = asyncio.run(poll_all(config, store, datetime.now(timezone.utc)))
        assert outcome.ok and outcome.events == 1, outcome.summary()


def local_config_for(provider: FakeProvider, **resource: Any) -> dict:
    from tests.configs import local_config

    return local_config(provider.base_url, callback=DEFAULT_CALLBACK, resource=resource or None)


# -- 4. nothing readable, nothing moved ----------------------------------------------------------

def test_a_poll_that_can_read_no_record_fails_and_keeps_the_backfill(tmp_path: Path,
                                                                       fake_provider: FakeProvider) -> None:
    """Datasette's default rows are arrays: every record had no id, the poll said ok and the
    initialCursor backfill was used up."""
    now = datetime.now(timezone.utc)
    fake_provider.records.extend({"pk": str(i), "updated": iso(now), "created": iso(now)} for i in range(5))
    config = write_config(tmp_path, fake_provider, resource=BACKFILL)
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no record could be read, so nothing moves: no_id=5" in proc.stdout
    assert state_of(tmp_path).cursor_ms is None  # the backfill is still to do
    config = write_config(tmp_path, fake_provider, resource={**BACKFILL, "idField": "pk"})  # the fix
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(announced(tmp_path)) == 5


def test_some_unreadable_records_do_not_fail_the_poll(tmp_path: Path, fake_provider: FakeProvider) -> None:
    now = datetime.now(timezone.utc)
    fake_provider.records.extend([record("a", now), {"updated": iso(now)}])
    proc = once_proc(tmp_path, write_config(tmp_path, fake_provider, resource=BACKFILL))
    assert proc.returncode == 0 and "no_id=1" in proc.stderr, proc.stdout + proc.stderr


# -- 5. Retry-After ------------------------------------------------------------------------------

def test_an_absurd_retry_after_is_capped_and_shown_in_status(tmp_path: Path, fake_provider: FakeProvider) -> None:
    fake_provider.fail(429, retry_after="999999999999999", times=None)
    config = write_config(tmp_path, fake_provider)
    proc = once_proc(tmp_path, config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "capped at 3600 s" in proc.stdout and "Traceback" not in proc.stderr
    due = state_of(tmp_path).next_due_ms
    assert due is not None and due <= (datetime.now(timezone.utc) + timedelta(hours=1, seconds=5)).timestamp() * 1000
    status = subprocess.run([sys.executable, "-m", "poller", "status", "--json", "-c", str(config), "--state",
                             str(tmp_path / "poller.db")], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    [row] = json.loads(status.stdout)
    shown = datetime.fromisoformat(row["nextDue"].replace("Z", "+00:00"))
    assert shown <= datetime.now(timezone.utc) + timedelta(hours=1, seconds=5)


def test_status_lists_a_configured_resource_never_polled_and_no_due_time_for_a_disabled_one(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    config = write_config(tmp_path, fake_provider)
    assert once_proc(tmp_path, config).returncode == 0
    data = json.loads(config.read_text(encoding="utf-8"))
    conf = data["instances"][0]["configuration"] if "instances" in data else data["configuration"]
    conf["event.poller.configuration"]["deals"] = dict(conf["event.poller.configuration"]["contacts"])

    def status_rows() -> list[dict]:
        config.write_text(json.dumps(data), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "poller", "status", "--json", "-c", str(config), "--state",
                               str(tmp_path / "poller.db")], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    rows = status_rows()
    assert [(r["resource"], r["lastPoll"] is None, r["nextDue"] is None) for r in rows] == [
        ("contacts", False, False), ("deals", True, True)]  # added to the file: listed, not polled yet
    conf["event.notification.enabled"] = False
    assert [(r["resource"], r["nextDue"]) for r in status_rows()] == [("contacts", None)]  # disabled: not due


def test_a_retry_after_left_in_the_state_by_an_earlier_version_is_capped_in_status(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    config = write_config(tmp_path, fake_provider)
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    with open_store(tmp_path / "poller.db") as store:
        store.fail_poll("crm/contacts", "crm", "contacts", now_ms=now_ms, error="429",
                        next_due_ms=int(YEAR_9999.timestamp() * 1000))
    status = subprocess.run([sys.executable, "-m", "poller", "status", "--json", "-c", str(config), "--state",
                             str(tmp_path / "poller.db")], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    [row] = json.loads(status.stdout)
    assert row["nextDue"] < "2100", row


# -- 7. pagination that cannot end early in silence ------------------------------------------------

def test_a_full_page_without_a_next_link_is_reported(tmp_path: Path, make_fake_provider: Any) -> None:
    """json-server 0.17 sends Link only for requests with _page: without it, one page and 'ok'."""
    provider: FakeProvider = make_fake_provider(style="page", page_size=10)
    now = datetime.now(timezone.utc)
    provider.records.extend(record(str(i), now) for i in range(35))
    proc = once_proc(tmp_path, write_config(tmp_path, provider, resource={
        **BACKFILL, "pageSize": 10, "pagination": {"type": "link"}}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "poll.pagination_incomplete" in proc.stderr and "page=1" in proc.stderr


def test_json_server_1_pages_end_with_more_path(tmp_path: Path, make_fake_provider: Any) -> None:
    """json-server 1.0 answers past-the-end pages with the last page, and says "next": null."""
    provider: FakeProvider = make_fake_provider(style="page", page_size=10, more_field="next",
                                                past_end_repeats_last=True, page_param="_page")
    now = datetime.now(timezone.utc)
    provider.records.extend(record(str(i), now) for i in range(30))  # three full pages
    paging = {"type": "page", "param": "_page"}
    resource = {**BACKFILL, "pageSize": 10, "recordsPath": "data", "pagination": paging}
    proc = once_proc(tmp_path, write_config(tmp_path, provider, resource=resource))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # without morePath: page 4 is page 3 again
    assert "page 4 is the same as page 3" in proc.stdout and "set pagination.morePath" in proc.stdout
    assert len(provider.requests) == 4  # at once, not after maxPages
    resource["pagination"] = {**paging, "morePath": "next"}
    proc = once_proc(tmp_path, write_config(tmp_path, provider, resource=resource))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(announced(tmp_path)) == 30 and len(provider.requests) == 4 + 3


def test_next_url_pagination_follows_datasette_next_url(tmp_path: Path, make_fake_provider: Any) -> None:
    provider: FakeProvider = make_fake_provider(style="nextUrl", page_size=5)
    now = datetime.now(timezone.utc)
    provider.records.extend(record(str(i), now) for i in range(23))
    resource = {**BACKFILL, "recordsPath": "rows", "pagination": {"type": "nextUrl", "path": "next_url"}}
    proc = once_proc(tmp_path, write_config(tmp_path, provider, resource=resource))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(announced(tmp_path)) == 23 and "pages=5" in proc.stdout


def test_a_url_given_as_a_cursor_is_refused_with_the_fix(tmp_path: Path, make_fake_provider: Any) -> None:
    """Datasette's next_url read as a cursor sent the whole URL as the token and got page 1 again."""
    provider: FakeProvider = make_fake_provider(style="nextUrl", page_size=5, link_absolute=True)
    now = datetime.now(timezone.utc)
    provider.records.extend(record(str(i), now) for i in range(12))
    resource = {**BACKFILL, "recordsPath": "rows", "pagination": {"type": "cursor", "path": "next_url"}}
    proc = once_proc(tmp_path, write_config(tmp_path, provider, resource=resource))
    assert proc.returncode == 1
    assert 'is a URL, not a cursor: with {"type": "nextUrl", "path": ...}' in proc.stdout, proc.stdout


def test_a_date_format_that_never_matches_is_said_once(tmp_path: Path, fake_provider: FakeProvider) -> None:
    now = datetime.now(timezone.utc)
    fake_provider.records.extend(record(str(i), now) for i in range(4))  # ISO dates
    wrong = {"updatedDateField": "updated", "updatedDateFormat": "dd/MM/yyyy HH:mm"}
    proc = once_proc(tmp_path, write_config(tmp_path, fake_provider, resource={**BACKFILL,
                                                                              "datesConfiguration": wrong}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.count("poll.date_format_mismatch") == 1 and "dd/MM/yyyy HH:mm" in proc.stderr


# -- 8. header values ------------------------------------------------------------------------------

def test_a_header_value_that_cannot_be_sent_is_refused_by_check(tmp_path: Path, fake_provider: FakeProvider) -> None:
    """It passed check, then every poll crashed with a UnicodeEncodeError naming nothing."""
    body = json.loads(write_config(tmp_path, fake_provider).read_text())
    body["instances"][0]["api"]["headers"] = {"Authorization": "${env:TOKEN}"}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(body))
    proc = subprocess.run([sys.executable, "-m", "poller", "check", "-c", str(config)], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TOKEN": "Bearer s\u00e9cret"})
    assert proc.returncode == 2
    assert ("config.json: instances[0].api.headers.Authorization: a header value must be ASCII: character 9 is "
            "U+00E9") in proc.stderr
    assert "s\u00e9cret" not in proc.stderr  # the value may be a secret


# -- 12. secrets in callback URLs ------------------------------------------------------------------

def test_secrets_in_the_callback_url_are_masked_by_once_and_deliver(tmp_path: Path,
                                                                    fake_provider: FakeProvider) -> None:
    body = json.loads(write_config(tmp_path, fake_provider, resource=BACKFILL).read_text())
    conf = body["instances"][0]["configuration"]
    conf["event.notification.callback.url"] = "http://127.0.0.1:9/hooks/${env:HOOK_PATH}?tenant=${env:TENANT}"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(body))
    fake_provider.records.append(record("r1", datetime.now(timezone.utc)))
    env = {"HOOK_PATH": "PATHSECRET1", "TENANT": "QUERYSECRET2"}
    for command in ("once", "deliver --all"):
        proc = once_proc(tmp_path, config, command, env)
        assert proc.returncode == 1, proc.stdout + proc.stderr  # nothing listens on port 9
        assert "-> http://127.0.0.1:9/hooks/***?tenant=***: FAILED" in proc.stdout, proc.stdout
        assert "SECRET" not in proc.stdout + proc.stderr


# -- 14. read-only state ---------------------------------------------------------------------------

def _in_read_only_mount(folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a private mount namespace where ``folder`` is mounted read-only (nothing
    outside the child sees the mount)."""
    script = f'mount --bind -o ro "{folder}" "{folder}" && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *command], capture_output=True, text=True,
                          timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH": str(ROOT)})


def test_status_and_events_read_a_state_file_on_a_read_only_mount(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    probe = _in_read_only_mount(folder, "touch", str(folder / "x"))
    if "Read-only file system" not in probe.stderr:  # no mount namespaces here: nothing to test with
        import pytest
        pytest.skip(f"cannot mount read-only here: {probe.stderr.strip()[:200]}")
    db = folder / "poller.db"
    with open_store(db) as store:
        store.fail_poll("crm/contacts", "crm", "contacts", now_ms=1_700_000_000_000, error="boom", next_due_ms=None)
    for command, check in (("status", lambda rows: rows[0]["lastError"] == "boom"), ("events", lambda rows: rows == [])):
        proc = _in_read_only_mount(folder, sys.executable, "-m", "poller", command, "--json", "--state", str(db))
        assert proc.returncode == 0, proc.stderr
        assert check(json.loads(proc.stdout)), proc.stdout
        assert "the folder is read-only" in proc.stderr


def test_a_lying_clock_is_warned_about_once_an_hour_per_resource_not_at_every_poll(
        tmp_path: Path, make_fake_provider: Any, caplog: pytest.LogCaptureFixture) -> None:
    """(Every poll of a daemon logged poll.clock_skew_ignored at WARNING: one a minute per resource.)"""
    from poller.config import load_config_text
    from poller.poll import engine
    from poller.poll.runner import poll_all

    provider: FakeProvider = make_fake_provider(clock_offset_s=2 * 86400)
    config = load_config_text(json.dumps(local_config_for(provider)), "c.json", {}).config
    caplog.set_level(logging.DEBUG, "poller.poll.engine")
    engine._SKEW_WARNED.clear()  # (what earlier tests of this process left)
    start = datetime.now(timezone.utc)
    with open_store(tmp_path / "poller.db") as store:
        for minutes in (0, 1, 2, 61):
            [outcome] = asyncio.run(poll_all(config, store, start + timedelta(minutes=minutes)))
            assert outcome.ok and outcome.clock_skew_ignored_ms is not None, outcome.summary()
    said = [r.levelno for r in caplog.records if r.getMessage() == "poll.clock_skew_ignored"]
    assert said == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.WARNING]
    # per resource, and anew once a Date was believed (poll_pages drops the mark then)
    assert engine._skew_level("other/contacts", 0) == logging.WARNING
    engine._SKEW_WARNED.pop("other/contacts")
    assert engine._skew_level("other/contacts", 60_000) == logging.WARNING


def test_a_state_file_another_process_holds_locked_fails_the_poll_with_one_line_no_traceback(
        tmp_path: Path, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    """(`poller once` printed poll.crashed and six tracebacks of `database is locked`.)"""
    import sqlite3

    from poller.config import load_config_text
    from poller.poll.runner import poll_all

    config = load_config_text(json.dumps(local_config_for(fake_provider)), "c.json", {}).config
    caplog.set_level(logging.INFO)
    with open_store(tmp_path / "poller.db") as store:
        store.set_busy_timeout(50)
        other = sqlite3.connect(tmp_path / "poller.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            [outcome] = asyncio.run(poll_all(config, store, datetime.now(timezone.utc)))
        finally:
            other.execute("ROLLBACK")
            other.close()
    assert not outcome.ok and "locked" in str(outcome.error)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ["state.write_failed"]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("longer", [{"engine": {"lookbackSeconds": 60}}, {"resource": {"pollDelay": 60}}],
                         ids=["lookbackSeconds", "pollDelay"])
def test_a_longer_lookback_announces_nothing_again(tmp_path: Path, fake_provider: FakeProvider,
                                                   longer: dict) -> None:
    """(Raising lookbackSeconds from 5 to 60, or pollDelay from 0 to 60, re-announced what was
    announced and announced records unchanged since before the baseline: the window reached
    back past where the shorter lookback had pruned the versions remembered.)"""
    from poller.config import load_config_text
    from poller.poll.runner import poll_all
    from tests.configs import local_config

    def config(**more: Any) -> Any:
        text = local_config(fake_provider.base_url, callback=DEFAULT_CALLBACK, engine={"lookbackSeconds": 5,
                            **more.get("engine", {})}, resource=more.get("resource"))
        return load_config_text(json.dumps(text), "c.json", {}).config

    now = datetime.now(timezone.utc)
    fake_provider.records.extend(record(f"r{i}", now - timedelta(seconds=30)) for i in range(5))
    with open_store(tmp_path / "poller.db") as store:
        def poll(at: datetime, cfg: Any) -> int:
            [outcome] = asyncio.run(poll_all(cfg, store, at))
            assert outcome.ok, outcome.summary()
            return outcome.events

        assert poll(now, config()) == 0  # the baseline
        fake_provider.records[0] = record("r0", now + timedelta(seconds=1), now - timedelta(days=1))
        assert poll(now + timedelta(seconds=2), config()) == 1  # r0's change
        assert poll(now + timedelta(seconds=3), config(**longer)) == 0  # nothing again, nothing old
        assert poll(now + timedelta(seconds=4), config(**longer)) == 0
        fake_provider.records[1] = record("r1", now + timedelta(seconds=4), now - timedelta(days=1))
        assert poll(now + timedelta(seconds=6), config(**longer)) == 1  # a real change still is
        state = store.resource_state("crm/contacts")
        assert state.seen_from_ms is not None and state.seen_from_ms <= state.cursor_ms  # type: ignore[operator]


def test_the_window_starts_where_the_remembered_versions_begin_and_a_cursor_set_back_forgets_that(
        tmp_path: Path) -> None:
    from poller.config import load_config_text
    from poller.javadate.zone import to_ms
    from poller.poll.engine import plan_poll
    from tests.configs import local_config

    config = load_config_text(json.dumps(local_config("http://127.0.0.1:9", callback=DEFAULT_CALLBACK)),
                              "c.json", {}).config  # lookbackSeconds 60
    [(_, resource)] = list(config.resources())
    now, cursor = datetime.now(timezone.utc), 1_700_000_000_000
    since = [to_ms(plan_poll(cursor, resource, config.engine, now, seen_from).since)
             for seen_from in (None, cursor - 5_000, cursor - 90_000, cursor + 1)]
    assert since == [cursor - 60_000, cursor - 5_000, cursor - 60_000, cursor - 60_000]  # (a bound past the cursor is no bound)
    with open_store(tmp_path / "poller.db") as store:
        store.finish_poll("crm/contacts", "crm", "contacts", cursor_ms=cursor, now_ms=cursor, prune_before_ms=None,
                          prune_hash_before_ms=None, events=0, seen_from_ms=cursor - 5_000)
        store.finish_poll("crm/contacts", "crm", "contacts", cursor_ms=cursor, now_ms=cursor, prune_before_ms=None,
                          prune_hash_before_ms=None, events=0, seen_from_ms=cursor - 9_000)
        assert store.resource_state("crm/contacts").seen_from_ms == cursor - 5_000  # never back
        store.set_cursor("crm/contacts", cursor - 1)  # (poll.cursor_clamped): where they begin is not known
        assert store.resource_state("crm/contacts").seen_from_ms is None


def test_the_time_spent_waiting_for_an_answer_is_not_counted_as_the_providers_clock_skew(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    """(A provider answering after 3 s was said to be 3 s ahead: the Date was compared with the
    poll's start.)"""
    from poller.config import load_config_text
    from poller.poll.runner import poll_all

    config = load_config_text(json.dumps(local_config_for(fake_provider)), "c.json", {}).config
    fake_provider.fail(None, delay_s=3.0, times=1)  # (None: the normal answer, late)
    with open_store(tmp_path / "poller.db") as store:
        [outcome] = asyncio.run(poll_all(config, store, datetime.now(timezone.utc)))
    assert outcome.ok and outcome.clock_skew_ms is not None, outcome.summary()
    assert -1500 < outcome.clock_skew_ms < 1500  # (Date has whole seconds); it was about +2,500 to +3,000
