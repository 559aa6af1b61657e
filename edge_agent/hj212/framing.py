"""HJ 212 packet framing: ``##`` + 4-digit length + data segment + 4 hex CRC + CR LF. Pure: bytes in, frames out.

HJ 212-2017 §6.3.1 (table 3, communication packet structure): header ``##``; data segment length, 4 decimal
digits, counting the data segment only; the data segment (0-1024 bytes, check); the CRC over the data segment
(Appendix A), 4 hex digits; tail CR LF. HJ 212-2025 keeps the same frame (reported) but counts the length in UTF-8
bytes: everything here works on bytes, never on characters.

``StreamDecoder`` cuts a TCP byte stream into frames. It copes with split delivery (waits for the rest), glued
packets, byte-by-byte delivery and garbage between packets, and resynchronises on the next ``##`` after any bad
packet, so one bad packet never costs the good ones behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.hj212.crc import crc_text, hj212_crc
from edge_agent.hj212.reasons import Reason

HEADER = b"##"
TAIL = b"\r\n"
MAX_SEGMENT = 1024  # HJ 212-2017 §6.3.1: data segment 0-1024 bytes (check); configurable up to 9999
_HEX = frozenset(b"0123456789ABCDEFabcdef")


@dataclass(frozen=True, slots=True)
class Frame:
    """A packet whose length, tail and CRC are right; ``segment`` is the data segment's bytes."""

    segment: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes of the stream that are not a good packet, and why."""

    reason: Reason
    detail: str
    raw: bytes


def encode_frame(segment: bytes) -> bytes:
    """A whole packet around ``segment`` (HJ 212-2017 §6.3.1)."""
    if len(segment) > 9999:
        raise ValueError(f"a data segment of {len(segment)} bytes does not fit the 4-digit length")
    return HEADER + b"%04d" % len(segment) + segment + crc_text(segment) + TAIL


class StreamDecoder:
    """Feed it bytes as they arrive; it returns frames and rejects in stream order."""

    def __init__(self, max_segment: int = MAX_SEGMENT, max_garbage: int = 4096) -> None:
        if not 0 < max_segment <= 9999:
            raise ValueError("max_segment must be 1-9999 (the length field has 4 digits)")
        self.max_segment = max_segment
        self.max_garbage = max_garbage
        self._buf = bytearray()
        self._garbage = bytearray()
        self._scanned = 0  # bytes of the pending packet already searched for an early CR LF

    @property
    def pending(self) -> int:
        """Bytes held: a packet not yet complete, and garbage not yet reported."""
        return len(self._buf) + len(self._garbage)

    def feed(self, data: bytes) -> list[Frame | Rejected]:
        if not self._buf and not self._garbage:
            frame = self._whole(data)
            if frame is not None:
                return [frame]
        self._buf += data
        out: list[Frame | Rejected] = []
        while self._buf and self._step(out):
            pass
        return out

    def _whole(self, data: bytes) -> Frame | None:
        """``data`` when it is exactly one good packet (a station's usual read), checked as ``_step`` checks it;
        None for anything else, which goes the byte-buffer way (and is refused there with its reason)."""
        n = len(data)
        if n < 12 or data[:2] != HEADER or data[n - 2 :] != TAIL or not data[2:6].isdigit():
            return None
        length = int(data[2:6])
        if length > self.max_segment or n != length + 12 or data.find(TAIL, 6) != n - 2:
            return None
        crc = data[n - 6 : n - 2]
        if not all(c in _HEX for c in crc) or int(crc, 16) != hj212_crc(data[6 : n - 6]):
            return None
        return Frame(data[6 : n - 6], data)

    def close(self) -> list[Rejected]:
        """The stream ended: what is left is garbage or a packet cut short."""
        out: list[Rejected] = []
        if self._buf and not self._buf.startswith(HEADER):  # a lone '#' kept in case a header followed
            self._garbage += self._buf
            self._buf.clear()
        self._flush_garbage(out)
        if self._buf:
            raw = bytes(self._buf)
            self._buf.clear()
            self._scanned = 0
            out.append(Rejected(Reason.TRUNCATED, f"stream ended {len(raw)} bytes into a packet", raw))
        return out

    # -- one step: consume something from the front of the buffer, or say that more bytes are needed -------------
    def _step(self, out: list[Frame | Rejected]) -> bool:
        buf = self._buf
        start = buf.find(HEADER)
        if start == -1:
            keep = 1 if buf.endswith(b"#") else 0  # a header may be cut in two
            self._garbage += buf[: len(buf) - keep]
            del buf[: len(buf) - keep]
            if len(self._garbage) >= self.max_garbage:
                self._flush_garbage(out)
            return False
        if start:
            self._garbage += buf[:start]
            del buf[:start]
            self._scanned = 0
        self._flush_garbage(out)
        digits = bytes(buf[2:6])
        if not all(0x30 <= c <= 0x39 for c in digits):  # refused as soon as one wrong byte is in
            return self._resync(out, Reason.BAD_LENGTH, f"length field {digits!r} is not 4 decimal digits")
        if len(digits) < 4:
            return False
        length = int(digits)
        if length > self.max_segment:
            return self._resync(out, Reason.BAD_LENGTH, f"length {length} exceeds the limit of {self.max_segment}")
        end = 6 + length + 4  # where the tail starts
        early = buf.find(TAIL, max(6, self._scanned - 1), min(len(buf), end + 1))
        if early != -1:
            del_to = early + 2
            raw = bytes(buf[:del_to])
            del buf[:del_to]
            self._scanned = 0
            out.append(
                Rejected(
                    Reason.BAD_LENGTH,
                    f"packet ends (CR LF) after {early - 6} bytes of data segment, the length field says {length}",
                    raw,
                )
            )
            return True
        if len(buf) < end + 2:
            self._scanned = len(buf)
            return False
        segment, crc, tail = bytes(buf[6 : 6 + length]), bytes(buf[6 + length : end]), bytes(buf[end : end + 2])
        if tail != TAIL:
            return self._resync(out, Reason.BAD_TAIL, f"expected CR LF after the CRC, got {tail!r}")
        raw = bytes(buf[: end + 2])
        del buf[: end + 2]
        self._scanned = 0
        if len(crc) != 4 or not all(c in _HEX for c in crc):
            out.append(Rejected(Reason.BAD_CRC, f"CRC field {crc!r} is not 4 hex digits", raw))
        elif int(crc, 16) != (want := hj212_crc(segment)):
            out.append(
                Rejected(Reason.BAD_CRC, f"CRC {crc.decode()} sent, {want:04X} computed (HJ 212 Appendix A)", raw)
            )
        else:
            out.append(Frame(segment, raw))
        return True

    def _resync(self, out: list[Frame | Rejected], reason: Reason, detail: str) -> bool:
        """Drop the bad packet's header and everything up to the next ``##`` (the declared length cannot be
        trusted, so it is never used to skip: a corrupted length must not swallow the good packet behind it)."""
        buf = self._buf
        nxt = buf.find(HEADER, 1)
        if nxt == -1:
            nxt = len(buf) - (1 if buf.endswith(b"#") else 0)
        raw = bytes(buf[:nxt])
        del buf[:nxt]
        self._scanned = 0
        out.append(Rejected(reason, detail, raw))
        return True

    def _flush_garbage(self, out: list[Frame | Rejected] | list[Rejected]) -> None:
        if self._garbage:
            raw = bytes(self._garbage)
            self._garbage.clear()
            out.append(Rejected(Reason.BAD_HEADER, f"{len(raw)} byte(s) where a '##' header should start", raw))
