"""The HJ 212 check sum (HJ 212-2017 Appendix A). Pure.

It is NOT CRC-16/MODBUS, although both start at 0xFFFF and use the reflected polynomial 0xA001: HJ 212 shifts the
register right by 8 bits before each byte enters (``crc = (crc >> 8) ^ byte``), where MODBUS only XORs the byte into
the low byte. The standard's worked example, ``QN=20160801085857223;...;CP=&&RtdInterval=30&&``, gives 1C80 (the
MODBUS way gives 0759), and b"123456789" gives 2F80 (tests pin both).

Because the high byte is shifted away at every step, the result depends on an 8-bit state only: 256 values in all.
A random multi-byte corruption passes about once in 256, so the segment parser validates the content too.
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    # The eight shift-and-XOR steps depend only on the low byte of the register, so they can be tabulated.
    out = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


_TABLE = _table()


def hj212_crc(data: bytes) -> int:
    """The HJ 212-2017 Appendix A check sum of ``data`` (the data segment's bytes)."""
    crc = 0xFFFF
    for byte in data:
        # HJ 212-2017 Appendix A: CRC = (CRC >> 8) XOR byte (an 8-bit value), then 8 reflected steps with 0xA001
        crc = _TABLE[(crc >> 8) ^ byte]
    return crc


def crc_text(data: bytes) -> bytes:
    """The check sum as it is written on the wire: four uppercase hex digits (HJ 212-2017 §6.3.1, table 3)."""
    return b"%04X" % hj212_crc(data)
