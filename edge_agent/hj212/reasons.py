"""Why a packet (or a stretch of the byte stream) was refused: one code per cause, written to the events file, the
dead letters and the ``hj212_rejects_total{reason}`` counter.

| reason | what was wrong |
|---|---|
| ``bad_header`` | bytes where a packet's ``##`` header should start (garbage between packets); reported as one run |
| ``bad_length`` | the 4-digit length is not decimal, exceeds the limit, or the packet ends (CR LF) before it |
| ``bad_tail`` | the two bytes after the CRC are not CR LF |
| ``bad_crc`` | the CRC is not 4 hex digits, or not the HJ 212 check sum of the data segment |
| ``bad_segment`` | the data segment is not UTF-8, lacks ST/CN/PW/MN/CP, repeats a field, or a field has a bad value |
| ``bad_flag`` | Flag is not 0-255, its version bits are not 0/1/2, or the D bit disagrees with PNUM/PNO |
| ``bad_cp`` | the CP area does not parse (syntax, a bad number, a repeated key, a bad or missing DataTime) |
| ``no_key`` | the CP is SM4-encrypted (HJ 212-2025) and the station has no ``sm4_key``: answered 9011 QnRtn=2 |
| ``bad_key`` | the encrypted CP does not decrypt to CP text with the station's key (the wrong key): answered the same |
| ``unknown_mn`` | no station is configured with this MN |
| ``bad_password`` | PW is not the station's access password |
| ``bad_st`` | ST is not a known system code, or not the station's (its own, a process system 44/45/51/52, or 91) |
| ``unsupported_cn`` | a command not ingested (codes.py): kept as a dead letter, answered (9014) so it is not resent |
| ``bad_split`` | a part of a split message disagrees with its other parts (PNUM, DataTime, ...) |
| ``incomplete_split`` | parts of a split message were missing when its time ran out (dead letter only) |
| ``truncated`` | the connection closed (or timed out) in the middle of a packet |
| ``unmapped`` | values of an accepted packet that the profile does not map (dead letter; the rest is published) |
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    BAD_HEADER = "bad_header"
    BAD_LENGTH = "bad_length"
    BAD_TAIL = "bad_tail"
    BAD_CRC = "bad_crc"
    BAD_SEGMENT = "bad_segment"
    BAD_FLAG = "bad_flag"
    BAD_CP = "bad_cp"
    NO_KEY = "no_key"
    BAD_KEY = "bad_key"
    UNKNOWN_MN = "unknown_mn"
    BAD_PASSWORD = "bad_password"
    BAD_ST = "bad_st"
    UNSUPPORTED_CN = "unsupported_cn"
    BAD_SPLIT = "bad_split"
    INCOMPLETE_SPLIT = "incomplete_split"
    TRUNCATED = "truncated"
    UNMAPPED = "unmapped"


class Refused(ValueError):
    """A packet that cannot be used, with its reason code and a detail a person can act on."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
