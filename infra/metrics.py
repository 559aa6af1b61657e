"""A minimal HTTP endpoint serving Prometheus text exposition (every service's ``/metrics``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


async def serve_metrics(render: Callable[[], str], port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Serve ``render()`` on every request to ``host:port`` (port 0: a free one; see the server's sockets)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
            body = render().encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


def bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
