"""A TCP proxy in a process of its own, so that a test can stall the path to a database.

    python -m tests.support.tcp_proxy LISTEN_PORT UPSTREAM_HOST:UPSTREAM_PORT

SIGSTOP the process and the path is stalled the way a hung pooler or a stuck middlebox stalls
it: the kernel still accepts connections into the listen backlog, ACKs what the client sends into
the proxy's socket buffers and answers TCP keepalive probes, but not one byte comes back. SIGCONT
and it carries on. `TcpProxy` starts, stalls, resumes and stops it from a test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from tests.support.processes import PausableServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(listen_port: int, upstream_host: str, upstream_port: int) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


class TcpProxy(PausableServer):
    """The proxy as a child process on `port`, in front of `upstream` ("host:port")."""

    def __init__(self, upstream: str, port: int | None = None) -> None:
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.upstream = upstream
        self.proc: subprocess.Popen | None = None

    def start(self) -> TcpProxy:
        """Start the proxy and wait until it listens."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.tcp_proxy", str(self.port), self.upstream],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "listening", or an error and EOF
        if line.strip() != "listening":
            raise AssertionError(f"the proxy did not start: {line}{self.proc.stdout.read()}")
        return self

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    """Run the proxy until SIGTERM."""
    listen_port, upstream = int(argv[0]), argv[1]
    host, _, port = upstream.rpartition(":")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(_serve(listen_port, host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
