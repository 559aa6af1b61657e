"""The HJ 212 check sum (HJ 212-2017 Appendix A). Pure.

It is NOT CRC-16/MODBUS, although both start at 0xFFFF and use the reflected polynomial 0xA001: HJ 212 shifts the
register right by 8 bits before each byte enters (``crc = (crc >> 8) ^ byte``), where MODBUS only XORs the byte into
the low byte. The standard's worked example, ``QN=20160801085857223;...;CP=&&RtdInterval=30&&``, gives 1C80 (the
MODBUS way gives 0759), and b"123456789" gives 2F80 (tests pin both).

Because the high byte is shifted away at every step, the result depends on an 8-bit state only: 256 values in all.
A random multi-byte corruption passes about once in 256, so the segment parser validates the content too.

How it is computed fast (a byte at a time in Python costs about 25 us for a 375-byte packet, the ingest's largest
single cost): with ``h`` the register's high byte, one step is ``h' = M(h ^ byte)``, where ``M(x) = TABLE[x] >> 8``
is linear over GF(2) (the table of a CRC is) and ``M**8`` is the identity (checked at import). So the state before
the last byte is ``M**(n-1)(0xFF)`` XOR, over the bytes, ``M**d(byte)`` with ``d`` the byte's distance from the end,
which only matters modulo 8: XOR the data's 8-byte rows together (right-aligned, folded as one big integer, in C),
then map each of the 8 column bytes through its power of ``M``. About 2 us a packet; ``hj212_crc_bytewise`` is the
standard's loop, kept as the definition the tests compare with.
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


def hj212_crc_bytewise(data: bytes) -> int:
    """The HJ 212-2017 Appendix A check sum of ``data``, a byte at a time as the standard writes it."""
    crc = 0xFFFF
    for byte in data:
        # HJ 212-2017 Appendix A: CRC = (CRC >> 8) XOR byte (an 8-bit value), then 8 reflected steps with 0xA001
        crc = _TABLE[(crc >> 8) ^ byte]
    return crc


def _powers() -> tuple[tuple[int, ...], ...]:
    """``_POWERS[d][x]``: ``M**d(x)`` for d in 0..7, with ``M(x) = TABLE[x] >> 8``."""
    high = [t >> 8 for t in _TABLE]
    powers = [tuple(range(256))]
    for _ in range(8):
        powers.append(tuple(high[x] for x in powers[-1]))
    if powers[8] != powers[0]:  # the identity the fast path rests on; never false for this table
        raise AssertionError("HJ 212 CRC: M**8 is not the identity")
    return tuple(powers[:8])


_POWERS = _powers()
# the initial state's share, M**k(0xFF), by k = (n - 1) % 8
_START = tuple(_POWERS[k][0xFF] for k in range(8))
# column j of an 8-byte row (0 = leftmost) is 7 - j bytes from the end, modulo 8
_COLUMNS = tuple(_POWERS[7 - j] for j in range(8))


def hj212_crc(data: bytes) -> int:
    """The HJ 212-2017 Appendix A check sum of ``data`` (the data segment's bytes); the same as
    ``hj212_crc_bytewise``, computed by columns (see the module's docstring)."""
    n = len(data)
    if n == 0:
        return 0xFFFF
    if n < 16:
        return hj212_crc_bytewise(data)
    rows = (n + 7) >> 3
    width = 1 << (rows - 1).bit_length()  # rows, rounded up to a power of two (zero rows change nothing)
    folded = int.from_bytes(data, "big")  # right-aligned: the last byte is in column 7
    while width > 1:
        width >>= 1
        bits = width << 6  # half of the rows, 64 bits each
        folded = (folded >> bits) ^ (folded & ((1 << bits) - 1))
    r0, r1, r2, r3, r4, r5, r6, r7 = folded.to_bytes(8, "big")
    c0, c1, c2, c3, c4, c5, c6, _ = _COLUMNS  # column 7 is M**0: the byte itself
    state = _START[(n - 1) & 7] ^ c0[r0] ^ c1[r1] ^ c2[r2] ^ c3[r3] ^ c4[r4] ^ c5[r5] ^ c6[r6] ^ r7
    # the state XOR the last byte is what the standard's loop indexes the table with at the last step; here the last
    # byte is already in (column 7, M**0), and the previous state's share is what the columns gave
    return _TABLE[state]


def crc_text(data: bytes) -> bytes:
    """The check sum as it is written on the wire: four uppercase hex digits (HJ 212-2017 §6.3.1, table 3)."""
    return b"%04X" % hj212_crc(data)
