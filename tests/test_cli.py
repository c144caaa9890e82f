"""CLI contract details: exit codes and what is printed for bad usage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def poller(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poller", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def _config(tmp_path: Path, url: str = "https://api.example.com/c?hapikey=LITERAL-SECRET&q=1") -> Path:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"id": "crm", "element": {"key": "crm"}, "configuration": {
        "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/h",
        "event.poller.configuration": {"contacts": {"url": url, "idField": "id"}}}}))
    return path


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    assert poller(tmp_path).returncode == 2


def test_an_unknown_log_level_is_a_usage_error(tmp_path: Path) -> None:
    out = poller(tmp_path, "once", "-c", str(_config(tmp_path)), "--log-level", "LOUD")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_a_state_path_that_cannot_be_created_is_a_clean_runtime_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = poller(tmp_path, "once", "-c", str(config), "--state", str(config / "p.db"))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "cannot create its directory" in out.stderr


def test_check_masks_secret_looking_query_values(tmp_path: Path) -> None:
    out = poller(tmp_path, "check", "-c", str(_config(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert "LITERAL-SECRET" not in out.stdout and "hapikey=***" in out.stdout and "q=1" in out.stdout


def test_events_on_a_missing_state_file_says_so(tmp_path: Path) -> None:
    out = poller(tmp_path, "events", "--state", str(tmp_path / "nothing.db"))
    assert out.returncode == 1 and "no state file" in out.stderr


def test_a_reader_that_goes_away_early_gets_no_traceback(tmp_path: Path) -> None:
    """`poller events | head -1`: the rest of the listing has nowhere to go; that is no error
    worth a BrokenPipeError traceback."""
    from state import Notification, open_store

    with open_store(tmp_path / "poller.db") as store:  # far more than a pipe's buffer of listing
        store.record_page("crm/c", "crm", "c", [
            Notification(f"n{i:05d}", "crm/c", "crm", "c", "http://127.0.0.1:9/h", 1, b"{}", ("e",), i)
            for i in range(3000)], [])
    proc = subprocess.Popen([sys.executable, "-m", "poller", "events", "--state", str(tmp_path / "poller.db")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert first.startswith(b"n0") and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_usage_errors_speak_of_the_command_and_its_arguments(tmp_path: Path) -> None:
    """(`events --limit abc` said "invalid _positive_int value"; `replay` without ids printed the
    top-level usage; --log-level refused CRITICAL, which engine.log.level takes.)"""
    limit = poller(tmp_path, "events", "--limit", "abc", "--state", str(tmp_path / "p.db"))
    assert limit.returncode == 2 and "argument --limit: expected a whole number, got 'abc'" in limit.stderr
    assert "_positive_int" not in limit.stderr
    replay = poller(tmp_path, "replay", "--state", str(tmp_path / "p.db"))
    assert replay.returncode == 2 and replay.stderr.startswith("usage: poller replay ")
    assert "poller replay: error: replay needs notification ids or --dead" in replay.stderr
    critical = poller(tmp_path, "status", "--state", str(tmp_path / "p.db"), "--log-level", "critical")
    assert critical.returncode == 1 and "invalid choice" not in critical.stderr  # (1: no state file there)
