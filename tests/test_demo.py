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
