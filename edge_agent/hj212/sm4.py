"""SM4 (GB/T 32907-2016) encryption of the CP area, HJ 212-2025 (reported). Pure.

HJ 212-2025 reportedly encrypts the CP content of data commands (CN 2000-2999), key exchange (1014) and
field-machine information (3020) with SM4, a 128-bit key per station, ECB, "no padding" (shared
standards/hj212.md). The text itself was not at hand; what this module assumes where the reports are silent:

- The encrypted CP is ``CP=&&<ciphertext>&&`` with the ciphertext written as hexadecimal digits (upper case sent,
  either case read): HJ 212 packets are text, and hex never collides with the CP's reserved ``; , = &``. The length
  field and the CRC count the packet as sent (the hex digits).
- "No padding": a CP whose UTF-8 bytes are a multiple of 16 is encrypted as is; a shorter last block is filled with
  0x00 bytes. Decryption strips trailing 0x00 bytes and also a PKCS#7 tail (plain CP text holds neither 0x00 nor
  bytes 0x01-0x10, so both are unambiguous): a logger that pads either way is read.
- There is no Flag bit for encryption in the reports: an encrypted CP is recognised by its form (only hex digits,
  a whole number of 16-byte blocks, no ``=``), which no plain CP of a data command can have (it carries
  ``DataTime=``).
- The key is 16 bytes, written as 32 hex digits in a secret (``infra.secret.Secret``), one per station.
"""

from __future__ import annotations

import string

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 16  # GB/T 32907-2016: 128-bit key and block
BLOCK = 16
_HEX = frozenset(string.hexdigits)


class Sm4Error(ValueError):
    """A CP that does not decrypt to CP text (most likely the wrong key), or a key that is not one."""


def parse_key(text: str) -> bytes:
    """A key written as 32 hex digits (spaces and a ``0x`` prefix allowed); Sm4Error naming what is wrong, never
    the key."""
    digits = text.strip().removeprefix("0x").removeprefix("0X").replace(" ", "")
    if len(digits) != 2 * KEY_BYTES or not set(digits) <= _HEX:
        raise Sm4Error(f"an SM4 key is {2 * KEY_BYTES} hex digits ({KEY_BYTES} bytes); got {len(digits)} character(s)")
    return bytes.fromhex(digits)


def looks_encrypted(body: str) -> bool:
    """Whether a CP content (between ``&&`` and ``&&``) is SM4 ciphertext rather than ``key=value`` text."""
    return bool(body) and "=" not in body and len(body) % (2 * BLOCK) == 0 and set(body) <= _HEX


class CpCipher:
    """One station's key. ``encrypt`` and ``decrypt`` work on the CP content (without the ``&&`` around it)."""

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise Sm4Error(f"an SM4 key is {KEY_BYTES} bytes, not {len(key)}")
        self._cipher = Cipher(algorithms.SM4(key), modes.ECB())

    def __repr__(self) -> str:
        return "CpCipher(SM4-ECB, key not shown)"

    def encrypt(self, cp: str) -> str:
        """The CP content as upper-case hex ciphertext, the last block filled with 0x00."""
        data = cp.encode("utf-8")
        if len(data) % BLOCK:
            data += bytes(BLOCK - len(data) % BLOCK)
        enc = self._cipher.encryptor()
        return (enc.update(data) + enc.finalize()).hex().upper()

    def decrypt(self, body: str) -> str:
        """The CP content of hex ciphertext; Sm4Error if it is not whole blocks or does not decrypt to CP text."""
        try:
            data = bytes.fromhex(body)
        except ValueError as exc:
            raise Sm4Error("the encrypted CP is not hex digits") from exc
        if not data or len(data) % BLOCK:
            raise Sm4Error(f"the encrypted CP is {len(data)} bytes, not a whole number of {BLOCK}-byte blocks")
        dec = self._cipher.decryptor()
        plain = _unpad(dec.update(data) + dec.finalize())
        try:
            text = plain.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Sm4Error("the CP does not decrypt to UTF-8 text: wrong key for this station?") from exc
        if text and ("=" not in text or any(c < " " or c == "\x7f" for c in text)):
            raise Sm4Error("the CP does not decrypt to key=value text: wrong key for this station?")
        return text


def _unpad(plain: bytes) -> bytes:
    n = plain[-1]
    if 1 <= n <= BLOCK and plain[-n:] == bytes([n]) * n:  # PKCS#7
        return plain[:-n]
    return plain.rstrip(b"\x00")
