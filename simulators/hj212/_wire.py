"""HJ 212 packets as a data logger writes them. The simulator's own encoder: it does not use the ingest server's
code (simulators know no service), so a mistake on one side shows on the other.

HJ 212-2017 §6.3.1: ``##`` + 4-digit length of the data segment + data segment + CRC (Appendix A) + CR LF.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def crc(data: bytes) -> int:
    """HJ 212-2017 Appendix A (not CRC-16/MODBUS: the register is shifted right by 8 before each byte enters)."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def frame(segment: bytes) -> bytes:
    return b"##%04d%s%04X\r\n" % (len(segment), segment, crc(segment))


def segment(
    *, qn: str, st: str, cn: str, pw: str, mn: str, flag: int, cp: str, pnum: int | None = None, pno: int | None = None
) -> bytes:
    split = f"PNUM={pnum};PNO={pno};" if pnum is not None else ""
    return f"QN={qn};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};{split}CP=&&{cp}&&".encode()


def number(value: float) -> str:
    """A value as loggers write it: plain decimal, at most 3 decimals, no exponent."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def sm4_encrypt(key: bytes, cp: str) -> str:
    """The CP content encrypted as HJ 212-2025 loggers are reported to do (SM4, GB/T 32907, ECB, no padding: the
    last block filled with 0x00 here, an assumption), written as upper-case hex."""
    data = cp.encode("utf-8")
    data += bytes(-len(data) % 16)
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return (enc.update(data) + enc.finalize()).hex().upper()


def encrypted_command(cn: str) -> bool:
    """HJ 212-2025 (reported): the CP of data commands (2xxx), key exchange (1014), field-machine information (3020)."""
    return cn.startswith("2") or cn in ("1014", "3020")
