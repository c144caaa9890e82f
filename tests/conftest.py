from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeprovider import FakeProvider
from tests.receiver import Receiver

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def make_fake_provider() -> Iterator[Callable[..., FakeProvider]]:
    """A factory of started fake provider servers (tests/fakeprovider.py), stopped at teardown:
    ``make_fake_provider(style="page", page_size=100, clock_offset_s=-300)``."""
    started: list[FakeProvider] = []

    def make(**options: Any) -> FakeProvider:
        provider = FakeProvider(**options).start()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture
def fake_provider(make_fake_provider: Callable[..., FakeProvider]) -> FakeProvider:
    """A started fake provider with the default options (one page, bare array body); change its
    ``default`` collection, ``records``, ``clock_offset_s`` and faults as the test needs."""
    return make_fake_provider()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    """A factory of started webhook receivers (tests/receiver.py), stopped at teardown:
    ``make_receiver(key="MySecret")``, ``make_receiver(key=None, standard_webhooks=False)``."""
    started: list[Receiver] = []

    def make(key: str | None = None, **options: Any) -> Receiver:
        receiver = Receiver(key, **options).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


class NotifySocket:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET``, for a daemon under test::

        env = {**os.environ, "NOTIFY_SOCKET": notify_socket.path}
        ...start ``poller run`` with env...
        notify_socket.wait_for("READY=1", timeout=10)
        notify_socket.wait_for("WATCHDOG=1", timeout=10)

    A thread receives every datagram as it arrives: the kernel queues only
    ``net.unix.max_dgram_qlen`` datagrams (often 10) before the sender blocks, so nothing may
    wait for the test to read. Each message is one datagram, decoded from UTF-8.
    """

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._received: list[str] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(self.path)
            self._sock.settimeout(0.05)
        except OSError:
            self._sock.close()
            raise
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            with self._changed:
                self._received.append(data.decode("utf-8", "replace"))
                self._changed.notify_all()

    def messages(self, timeout: float = 0.0, count: int = 1) -> list[str]:
        """Every message received so far, in order, after waiting up to ``timeout`` seconds for
        there to be at least ``count`` of them (fewer when the time runs out)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._received) >= count, timeout)
            return list(self._received)

    def wait_for(self, line: str, timeout: float = 10.0) -> str:
        """The first message with ``line`` as one of its lines (``"READY=1"``), or, when ``line``
        ends with ``=`` (``"STATUS="``), with a line that starts so; AssertionError after
        ``timeout`` seconds without one."""

        def match(message: str) -> bool:
            lines = message.split("\n")
            return any(x.startswith(line) for x in lines) if line.endswith("=") else line in lines

        with self._changed:
            found = self._changed.wait_for(lambda: next((m for m in self._received if match(m)), None), timeout)
            if found is None:
                raise AssertionError(f"no {line!r} within {timeout} s; received {self._received!r}")
            return found

    def close(self) -> None:
        """Stop receiving, close the socket and remove its file. Safe to call twice."""
        self._stop.set()
        self._thread.join()
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """A bound :class:`NotifySocket` in ``tmp_path`` (in a short temporary directory instead when
    that path is too long for an AF_UNIX address), closed at teardown."""
    path = tmp_path / "notify.sock"
    with contextlib.ExitStack() as stack:
        if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes, the terminating NUL included
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="poller-"))) / "notify.sock"
        sock = NotifySocket(path)
        stack.callback(sock.close)
        yield sock


@pytest.fixture(scope="session")
def accepting_callback() -> Iterator[str]:
    """One receiver for the whole session that answers 200 to every notification: the callback of
    tests about polling (``poller once`` also delivers, and a refused callback would make it exit 1)."""
    receiver = Receiver(None).start()
    yield receiver.url("/accept")
    receiver.stop()


@pytest.fixture(autouse=True)
def _default_callback(accepting_callback: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.test_once_e2e as once_e2e

    monkeypatch.setattr(once_e2e, "DEFAULT_CALLBACK", accepting_callback)
