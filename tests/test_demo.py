"""`poller demo` as users run it (the README's first command): a subprocess, real ports on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_demo_delivers_verified_notifications_polled_and_from_webhooks() -> None:
    proc = subprocess.run([sys.executable, "-m", "poller", "demo", "--seconds", "10"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^mailchimp: POST subscribe \S+ -> 200 accepted$", proc.stdout, re.M), proc.stdout
    assert "from demo-mailchimp (Elements-Webhook-Signature verified, webhook-signature verified)" in proc.stdout
    assert "from demo-crm (Elements-Webhook-Signature verified, webhook-signature verified)" in proc.stdout
    summary = re.search(r"demo: (\d+) notifications received, (\d+) with both signatures verified "
                        r"\((\d+) polled, (\d+) from webhooks\)", proc.stdout)
    assert summary is not None, proc.stdout
    received, verified, polled, pushed = map(int, summary.groups())
    assert received == verified == polled + pushed and polled >= 1 and pushed >= 1
    assert "WRONG" not in proc.stdout


def test_a_sigterm_stops_the_demo_and_its_daemon() -> None:
    """(Killed by SIGTERM, the demo left its `poller run` child polling a provider that was gone.)"""
    import os
    import signal
    import time
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-m", "poller", "demo"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    config: re.Match[str] | None = None

    def daemons() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and config is not None and \
                        config.group(1) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(entry.name)
            except OSError:
                pass
        return found

    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        config = re.search(r"config (\S+)", first)
        assert config is not None, first

        deadline = time.monotonic() + 30
        while not daemons() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert daemons(), "the demo's daemon did not start"
        time.sleep(1.0)  # (its signal handlers are installed from its first instant, but let it start)
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = daemons() if config is not None else []
        for pid in left:  # (stopped by the test that started them, whatever happened)
            os.kill(int(pid), signal.SIGKILL)
    assert "demo: " in out and "notifications received" in out, out  # it ended as Ctrl-C ends it
    assert left == [] and not Path(config.group(1)).exists()
