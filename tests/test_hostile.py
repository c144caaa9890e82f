"""What a hostile or broken world gets (DESIGN.md §12), end to end: `poller once` as a subprocess
against the fake provider on 127.0.0.1, a real state file, the outbox read back.

Each test here failed before the change that made it pass (the commit that added it says so).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

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


def once_proc(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poller", "once", "-c", str(config), "--state",
                           str(tmp_path / "poller.db")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


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
