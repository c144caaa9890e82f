"""poller.daemon.systemd against real AF_UNIX datagram sockets, and deploy/poller.service.

The test that a real ``poller run`` sends READY=1 and WATCHDOG=1 lives with the daemon's tests;
it uses the ``notify_socket`` fixture (tests/conftest.py) exercised here.
"""

from __future__ import annotations

import configparser
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.daemon import systemd
from tests.conftest import ROOT, NotifySocket

UNIT = ROOT / "deploy" / "poller.service"


def env(sock: NotifySocket | str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": sock if isinstance(sock, str) else sock.path}


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# --- sending -----------------------------------------------------------------------------------


def test_notify_sends_one_datagram_to_a_socket_path(notify_socket: NotifySocket) -> None:
    assert systemd.notify("READY=1\nSTATUS=polling 3 resources", env(notify_socket)) is True
    assert notify_socket.messages(timeout=5) == ["READY=1\nSTATUS=polling 3 resources"]


def test_helpers_send_exact_messages(notify_socket: NotifySocket) -> None:
    notifier = systemd.Notifier(env(notify_socket))
    assert notifier.enabled
    before = monotonic_usec()
    assert notifier.ready() is True
    assert notifier.ready("3 resources,\n  2 pending") is True
    assert notifier.status("last poll ok\tcrm/contacts") is True
    assert notifier.watchdog() is True
    assert notifier.reloading() is True
    assert notifier.stopping() is True
    after = monotonic_usec()

    messages = notify_socket.messages(timeout=5, count=6)
    assert messages[:4] == ["READY=1", "READY=1\nSTATUS=3 resources, 2 pending",
                            "STATUS=last poll ok crm/contacts", "WATCHDOG=1"]
    reloading, usec = messages[4].split("\n")
    assert reloading == "RELOADING=1"
    assert usec.startswith("MONOTONIC_USEC=")
    assert before <= int(usec.removeprefix("MONOTONIC_USEC=")) <= after
    assert messages[5:] == ["STOPPING=1"]


def test_module_helpers_read_os_environ_by_default(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.path)
    assert systemd.ready("starting") is True
    assert systemd.status("ok") is True
    assert systemd.watchdog() is True
    assert systemd.reloading() is True
    assert systemd.stopping() is True
    messages = notify_socket.messages(timeout=5, count=5)
    assert [m.split("\n")[0] for m in messages] == ["READY=1", "STATUS=ok", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"]


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"poller-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        yield "@" + name, sock


def test_notify_sends_to_an_abstract_socket(abstract_socket: tuple[str, socket.socket]) -> None:
    name, sock = abstract_socket
    assert systemd.notify("WATCHDOG=1", env(name)) is True
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert systemd.Notifier(env(name)).ready("héllo") is True
    assert sock.recv(4096) == "READY=1\nSTATUS=héllo".encode()


# --- nothing to send to ------------------------------------------------------------------------


def test_without_notify_socket_nothing_is_sent(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.notify("READY=1", {}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": ""}) is False
    notifier = systemd.Notifier({})
    assert not notifier.enabled
    assert [notifier.ready(), notifier.watchdog(), notifier.reloading(), notifier.stopping()] == [False] * 4
    assert notify_socket.messages(timeout=0.2) == []
    assert caplog.records == []


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "systemd.notify_failed"]


@pytest.mark.parametrize("gone", ["unlinked", "closed"])
def test_a_vanished_socket_returns_false_and_warns_once(notify_socket: NotifySocket, gone: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = notify_socket.path
    notify_socket.close()  # "unlinked": no such file (ENOENT)
    if gone == "closed":  # the file is there, but nobody listens (ECONNREFUSED)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
        assert os.path.exists(path)
    notifier = systemd.Notifier(env(path))
    with caplog.at_level(logging.WARNING, logger="poller.daemon.systemd"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
        assert systemd.notify("STOPPING=1", env(path)) is False
    warned = failures(caplog)
    assert len(warned) == 2  # once for the notifier, once for the one-shot notify()
    assert warned[0].socket == path  # type: ignore[attr-defined]
    assert "Error" in warned[0].error  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["@poller-test-nobody-" + uuid.uuid4().hex, "relative/notify.sock", "@",
                                  "vsock:2:1234"])
def test_unreachable_or_unsupported_addresses_return_false(name: str, caplog: pytest.LogCaptureFixture) -> None:
    notifier = systemd.Notifier(env(name))
    with caplog.at_level(logging.WARNING, logger="poller.daemon.systemd"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert len(failures(caplog)) == 1


# --- watchdog interval -------------------------------------------------------------------------

PID = 4242


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(PID)}, 15.0),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(PID)}, 0.5),
    ({"WATCHDOG_USEC": "1"}, 0.5e-6),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_PID": str(PID)}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": ""}, None),
    ({"WATCHDOG_USEC": "-30000000"}, None),
    ({"WATCHDOG_USEC": "+30000000"}, None),
    ({"WATCHDOG_USEC": "30s"}, None),
    ({"WATCHDOG_USEC": "3e7"}, None),
    ({"WATCHDOG_USEC": "30_000_000"}, None),
    ({"WATCHDOG_USEC": " 30000000"}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "abc"}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": f"{PID}.0"}, None),
])
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval(environ, PID) == expected


# --- deploy/poller.service ---------------------------------------------------------------------


def unit_config(text: str | None = None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(text if text is not None else UNIT.read_text(encoding="utf-8"), source=str(UNIT))
    return parser


def test_unit_has_the_required_settings() -> None:
    unit = unit_config()
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"] == "/opt/poller/.venv/bin/poller run -c /etc/poller/config.json"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["WatchdogSec"] == "30s"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a config error does not heal by restarting
    assert service["StateDirectory"] == "poller"  # $STATE_DIRECTORY/poller.db, DESIGN §6
    assert service["StateDirectoryMode"] == "0700"
    assert service.get("DynamicUser") == "yes" or service.get("User")
    assert service["EnvironmentFile"] == "-/etc/poller/poller.env"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_stops_later_than_the_daemon_does() -> None:
    from poller.config import EngineConfig

    stop = unit_config()["Service"]["TimeoutStopSec"]
    assert stop.endswith("s")
    assert int(stop.removesuffix("s")) > EngineConfig().shutdown_timeout_seconds


def credential_variant(text: str) -> str:
    """The unit with its commented LoadCredential= alternative switched on."""
    lines = [line for line in text.splitlines() if not line.startswith("ExecStart=")]
    switched = [line[1:] if line.startswith(("#LoadCredential=", "#ExecStart=")) else line for line in lines]
    assert switched != lines
    return "\n".join(switched) + "\n"


def test_credential_alternative_reads_the_config_from_the_credentials_directory() -> None:
    service = unit_config(credential_variant(UNIT.read_text(encoding="utf-8")))["Service"]
    assert service["LoadCredential"] == "config.json:/etc/poller/config.json"
    assert service["ExecStart"] == "/opt/poller/.venv/bin/poller run -c %d/config.json"


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing (it comes with the systemd package)")


def verify(tmp_path: Path, text: str) -> list[str]:
    """``systemd-analyze verify`` on ``text`` as ``poller.service``: the lines it prints about it.

    verify checks that ExecStart's program exists, so /opt/poller's is replaced by this test's
    Python running ``-m poller``. It exits 0 even for unknown keys or bad values and only prints
    them, so the output is the verdict; lines about other units (the host's) are left out.
    """
    assert SYSTEMD_ANALYZE is not None
    poller = f"{sys.executable} -m poller"
    (tmp_path / "poller.service").write_text(text.replace("/opt/poller/.venv/bin/poller", poller), encoding="utf-8")
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", "poller.service"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""})
    output = [line for line in (result.stdout + result.stderr).splitlines() if "poller.service" in line]
    if result.returncode != 0 and not output:
        pytest.skip(f"systemd-analyze cannot run here (exit {result.returncode}): {result.stderr.strip()[:300]}")
    return output + ([f"exit status {result.returncode}"] if result.returncode else [])


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert verify(tmp_path, UNIT.read_text(encoding="utf-8")) == []


@needs_systemd_analyze
def test_credential_alternative_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert verify(tmp_path, credential_variant(UNIT.read_text(encoding="utf-8"))) == []


@needs_systemd_analyze
@pytest.mark.parametrize("mistake", ["WatchdogSec=thirty", "ProtectSystm=strict"])
def test_systemd_analyze_verify_reports_mistakes(tmp_path: Path, mistake: str) -> None:
    """The check above can fail: a bad value or a misspelt key is reported."""
    text = UNIT.read_text(encoding="utf-8").replace("[Service]\n", f"[Service]\n{mistake}\n")
    assert verify(tmp_path, text) != []
