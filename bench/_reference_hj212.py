"""The reference ingest server of ``lifeline bench hj212``: the least an HJ 212 server can do, to measure Lifeline's
against. ``python -m bench._reference_hj212 PORT``: it listens on 127.0.0.1:PORT until SIGTERM.

asyncio with a protocol per connection; it cuts frames (``##``, 4-digit length, CRC, CR LF), checks the CRC with the
usual table-driven loop a byte at a time, reads QN, PW, MN and Flag from the data segment, and answers CN 9014 at
once. No broker, no password check, no CP parsing, no mapping, no dead letters, no metrics.

It shares no code with ``edge_agent.hj212`` on purpose: it is the independent yardstick (its check sum is written
here as any minimal server writes it, from the standard's Appendix A).
"""

from __future__ import annotations

import asyncio
import signal
import sys


def _table() -> list[int]:
    out = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return out


_TABLE = _table()


def crc(data: bytes) -> int:
    value = 0xFFFF
    for byte in data:
        value = _TABLE[(value >> 8) ^ byte]
    return value


def answer(segment: bytes) -> bytes | None:
    """The 9014 answer to a packet that asks for one (Flag A bit), else None."""
    fields = dict(part.split(b"=", 1) for part in segment.split(b";CP=", 1)[0].split(b";") if b"=" in part)
    flag = int(fields.get(b"Flag", b"0"))
    if not flag & 1 or b"QN" not in fields:
        return None
    body = b"QN=%s;ST=91;CN=9014;PW=%s;MN=%s;Flag=%d;CP=&&&&" % (
        fields[b"QN"],
        fields.get(b"PW", b""),
        fields.get(b"MN", b""),
        flag >> 2 << 2,
    )
    return b"##%04d%s%04X\r\n" % (len(body), body, crc(body))


class Station(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while True:
            start = buf.find(b"##")
            if start < 0 or len(buf) < start + 6:
                break
            try:
                length = int(buf[start + 2 : start + 6])
            except ValueError:
                buf = buf[start + 2 :]
                continue
            end = start + 6 + length + 6
            if len(buf) < end:
                break
            segment = buf[start + 6 : start + 6 + length]
            good = buf[end - 2 : end] == b"\r\n" and buf[end - 6 : end - 2].upper() == b"%04X" % crc(segment)
            buf = buf[end:]
            if good and (reply := answer(segment)) is not None:
                out.append(reply)
        self.buf = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_server(Station, "127.0.0.1", port, backlog=1024)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
