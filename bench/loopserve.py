"""A benchmark's HTTP server in a process of its own, on 127.0.0.1 (bench/fanout.py's provider,
bench/deliver.py's receiver): another process, so that serving costs the measured one nothing.

    serve_forever(MyProtocol)                # in the child: print the port, serve until SIGTERM
    server = ServerProcess([__file__, "--serve"])   # in the parent: start it, read its port
    server.get("/__count"); server.stop()
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable

__all__ = ["ServerProcess", "serve_forever"]


def serve_forever(protocol: Callable[[], asyncio.Protocol]) -> None:
    """Serve ``protocol`` on 127.0.0.1 (a free port, printed first) until SIGTERM."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


class ServerProcess:
    """``python ARGS...`` running :func:`serve_forever`; ``base`` is its URL."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=60) as r:
            return r.read().decode()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
