"""`poller explain`: the plan, each page and each record's decision, with nothing written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakeprovider import FakeProvider
from tests.test_once_e2e import announced, once, record, run_poller, write_config


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_explain_before_any_poll_describes_a_baseline_and_creates_no_state(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider = make_fake_provider()
    provider.records.append(record(1, provider.now() - timedelta(seconds=5)))
    config = write_config(tmp_path, provider)
    out = run_poller(tmp_path, "explain", "-c", str(config), "crm", "contacts", "--state", str(tmp_path / "p.db"))
    assert out.returncode == 0, out.stderr
    assert "cursor: none yet (baseline" in out.stdout
    assert "page 1: GET http://127.0.0.1:" in out.stdout
    assert "record 1: remembered, not announced (baseline" in out.stdout
    assert "Nothing was written." in out.stdout
    assert not (tmp_path / "p.db").exists()


def test_explain_shows_every_decision_and_changes_nothing(tmp_path: Path,
                                                         make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider = make_fake_provider()
    now = provider.now()
    provider.records.append(record("old", now - timedelta(seconds=10)))
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    now = provider.now()
    provider.records.extend([record("new", now), record("changed", now, created=now - timedelta(days=9)),
                             {"id": "broken", "updated": "not a date", "created": "x"},
                             {"updated": record(0, now)["updated"]}])
    db = tmp_path / "poller.db"
    before = _digest(db)
    out = run_poller(tmp_path, "explain", "-c", str(config), "crm", "contacts", "--state", str(db))
    assert out.returncode == 0, out.stderr
    lines = out.stdout
    assert "record new: CREATED" in lines
    assert "record changed: UPDATED" in lines
    assert "skipped: this version was already announced: record old" in lines
    assert "skipped: unreadable date: record broken: updated = 'not a date'" in lines
    assert "skipped: no id" in lines
    assert "summary: 5 records, 2 events would be announced, 1 seen before, 2 skipped. Nothing was written." in lines
    assert _digest(db) == before
    once(tmp_path, config)  # what explain predicted is what a poll does
    assert sorted(announced(tmp_path)) == [("changed", "UPDATED"), ("new", "CREATED")]


@pytest.mark.parametrize("levels", [600, 2000])
def test_explain_skips_a_record_too_deep_to_be_sent_as_a_poll_does(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider], levels: int) -> None:
    """(It said UPDATED for one of 513 to 1,000 levels, and could not read a page with a deeper one.)"""
    provider = make_fake_provider()
    provider.records.append(record("old", provider.now() - timedelta(seconds=10)))
    config = write_config(tmp_path, provider)
    once(tmp_path, config)
    now = provider.now()
    provider.records.extend([record("new", now), {**record("deep", now), "tree": [0]}])
    body = json.dumps(provider.records).replace("[0]", "[" * levels + "]" * levels).encode()
    provider.fail(200, body=body, times=None)
    out = run_poller(tmp_path, "explain", "-c", str(config), "crm", "contacts")
    assert out.returncode == 0, out.stderr
    assert "record new: CREATED" in out.stdout
    assert f"skipped: nested too deeply to be sent: record deep: nested {levels + 1} levels deep (more than 512)" \
        in out.stdout, out.stdout
    assert "summary: 3 records, 1 events would be announced, 1 seen before, 1 skipped." in out.stdout
    once(tmp_path, config)
    assert sorted(announced(tmp_path)) == [("new", "CREATED")]


def test_explain_names_the_known_resources_when_asked_for_an_unknown_one(
        tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    config = write_config(tmp_path, make_fake_provider())
    out = run_poller(tmp_path, "explain", "-c", str(config), "crm", "leads")
    assert out.returncode == 2
    assert "no resource 'leads' in instance 'crm' (known: crm contacts)" in out.stderr
    other = run_poller(tmp_path, "explain", "-c", str(config), "nosuch", "contacts")
    assert other.returncode == 2
    assert "no instance 'nosuch' (known: crm contacts)" in other.stderr


def test_explain_reports_a_failed_fetch(tmp_path: Path, make_fake_provider: Callable[..., FakeProvider]) -> None:
    provider = make_fake_provider()
    provider.fail(404, times=None)
    config = write_config(tmp_path, provider)
    out = run_poller(tmp_path, "explain", "-c", str(config), "crm", "contacts")
    assert out.returncode == 1
    assert "fetch failed:" in out.stdout and "404" in out.stdout


PAGINATIONS = {
    "none": ({}, {}),
    "link": ({"pagination": {"type": "link"}}, {}),
    "nextPageToken": ({"pagination": {"type": "nextPageToken"}}, {}),
    "page": ({"pagination": {"type": "page"}}, {}),
    "offset": ({"pagination": {"type": "offset"}}, {}),
    "cursor": ({"pagination": {"type": "cursor", "path": "meta.next_cursor"}, "recordsPath": "data"}, {}),
    "nextUrl": ({"pagination": {"type": "nextUrl", "path": "next_url"}, "recordsPath": "rows"}, {}),
    "page+morePath": ({"pagination": {"type": "page", "morePath": "next"}, "recordsPath": "data"},
                      {"more_field": "next"}),
}


@pytest.mark.parametrize("kind", list(PAGINATIONS))
def test_explain_fetches_the_pages_a_poll_fetches(kind: str, tmp_path: Path,
                                                  make_fake_provider: Callable[..., FakeProvider]) -> None:
    """Datasette's cursor case once made explain show other pages than `poller once` fetched."""
    resource, options = PAGINATIONS[kind]
    provider = make_fake_provider(style=kind.split("+")[0], page_size=4, **options)
    now = provider.now()
    provider.records.extend(record(i, now - timedelta(seconds=1)) for i in range(10))
    config = write_config(tmp_path, provider, resource={**resource, "pageSize": 4})

    def fetched() -> list[tuple[str, dict[str, str]]]:
        out = [(r.path, {k: v for k, v in r.query.items() if k != "updatedSince"}) for r in provider.requests]
        provider.requests.clear()
        return out

    out = run_poller(tmp_path, "explain", "-c", str(config), "crm", "contacts", "--state", str(tmp_path / "p.db"))
    assert out.returncode == 0, out.stdout + out.stderr
    by_explain = fetched()
    once(tmp_path, config)
    by_once = fetched()
    assert by_explain == by_once
    assert len(by_once) == (1 if kind == "none" else 3), by_once
    assert "summary: 10 records" in out.stdout
