"""HJ 212 framing and check sum: golden packets written by hand, a tiny encoder of the test's own (not the parser's
code), split, glued and byte-by-byte delivery, garbage, every framing reject and resynchronisation after it, and
hypothesis (no crash on any input, every byte accounted for, round trip)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.hj212 import Frame, Reason, Rejected, StreamDecoder, crc_text, encode_frame, hj212_crc
from edge_agent.hj212.crc import hj212_crc_bytewise

# The standard's worked example (HJ 212-2017; shared standards/hj212.md "Worked example"), typed by hand.
EXAMPLE_SEGMENT = (
    b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
)
EXAMPLE_PACKET = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
    b"1C80\r\n"
)
RTD_SEGMENT = (
    b"QN=20261125100000123;ST=32;CN=2011;PW=123456;MN=MN0001;Flag=4;"
    b"CP=&&DataTime=20261125100000;w01018-Rtd=35.2,w01018-Flag=N&&"
)


def _crc_bitwise(data: bytes) -> int:
    """The test's own HJ 212-2017 Appendix A check sum, written from the standard's pseudo-code."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


def _crc_modbus(data: bytes) -> int:
    """CRC-16/MODBUS, the wrong one (what a public simulator sends)."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def _packet(segment: bytes) -> bytes:
    """The test's own encoder: ## + length + segment + CRC + CR LF."""
    return b"##" + str(len(segment)).zfill(4).encode() + segment + f"{_crc_bitwise(segment):04X}".encode() + b"\r\n"


def _feed_all(chunks: list[bytes], decoder: StreamDecoder | None = None) -> list[Frame | Rejected]:
    d = decoder or StreamDecoder()
    out: list[Frame | Rejected] = []
    for chunk in chunks:
        out += d.feed(chunk)
    return out + d.close()


def _kinds(items: list[Frame | Rejected]) -> list[str]:
    return ["frame" if isinstance(i, Frame) else str(i.reason) for i in items]


# -- check sum --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(EXAMPLE_SEGMENT, 0x1C80, id="standard-worked-example"),
        pytest.param(b"123456789", 0x2F80, id="check-string"),
    ],
)
def test_crc_matches_the_standard(data: bytes, expected: int) -> None:
    assert hj212_crc(data) == expected == _crc_bitwise(data)


def test_crc_is_not_modbus() -> None:
    assert _crc_modbus(EXAMPLE_SEGMENT) == 0x0759
    assert hj212_crc(EXAMPLE_SEGMENT) != _crc_modbus(EXAMPLE_SEGMENT)


def test_crc_is_written_as_four_uppercase_hex_digits() -> None:
    assert crc_text(EXAMPLE_SEGMENT) == b"1C80"
    assert crc_text(b"") == b"%04X" % _crc_bitwise(b"")


@given(st.binary(max_size=300))
def test_table_crc_equals_the_bitwise_definition(data: bytes) -> None:
    assert hj212_crc(data) == _crc_bitwise(data)


def test_crc_takes_only_256_values() -> None:
    # the weakness the standards file describes: the high byte is shifted away before every byte
    assert len({hj212_crc(bytes([a, b, c])) for a in range(0, 256, 3) for b in (1, 77) for c in range(256)}) <= 256


# -- encoding and golden packets --------------------------------------------------------------------------------------
def test_encoder_rebuilds_the_standards_example_byte_for_byte() -> None:
    assert encode_frame(EXAMPLE_SEGMENT) == EXAMPLE_PACKET == _packet(EXAMPLE_SEGMENT)


def test_modbus_crc_packet_is_refused() -> None:
    wrong = EXAMPLE_PACKET.replace(b"1C80", b"0759")
    [item] = _feed_all([wrong])
    assert isinstance(item, Rejected)
    assert item.reason is Reason.BAD_CRC
    assert "1C80 computed" in item.detail


@pytest.mark.parametrize(
    "packet", [EXAMPLE_PACKET, _packet(RTD_SEGMENT), _packet(b"")], ids=["example", "rtd", "empty"]
)
def test_golden_packet_decodes_to_its_segment(packet: bytes) -> None:
    [item] = _feed_all([packet])
    assert isinstance(item, Frame)
    assert item.segment == packet[6:-6]
    assert item.raw == packet


def test_lowercase_crc_is_accepted() -> None:
    packet = _packet(RTD_SEGMENT)
    lower = packet[:-6] + packet[-6:-2].lower() + b"\r\n"
    assert _kinds(_feed_all([lower])) == ["frame"]


def test_length_counts_utf8_bytes_not_characters() -> None:
    segment = "QN=20261125100000123;ST=32;CN=2011;PW=123456;MN=MN0001;Flag=8;CP=&&Note=排放口&&".encode()
    packet = _packet(segment)
    assert packet[2:6] == b"%04d" % len(segment)
    assert _kinds(_feed_all([packet])) == ["frame"]


# -- delivery ---------------------------------------------------------------------------------------------------------
def test_split_delivery_at_every_cut_point() -> None:
    packet = _packet(RTD_SEGMENT)
    for cut in range(1, len(packet)):
        d = StreamDecoder()
        assert d.feed(packet[:cut]) == []
        [item] = d.feed(packet[cut:])
        assert isinstance(item, Frame), cut
        assert item.segment == RTD_SEGMENT


def test_byte_by_byte_delivery() -> None:
    stream = _packet(RTD_SEGMENT) + EXAMPLE_PACKET
    items = _feed_all([stream[i : i + 1] for i in range(len(stream))])
    assert _kinds(items) == ["frame", "frame"]


def test_glued_packets_in_one_read() -> None:
    items = _feed_all([EXAMPLE_PACKET * 5 + _packet(RTD_SEGMENT)])
    assert _kinds(items) == ["frame"] * 6


def test_garbage_between_packets_is_one_reject_each_run() -> None:
    stream = b"\x00\xffhello" + EXAMPLE_PACKET + b"\r\n \t" + EXAMPLE_PACKET + b"#"
    items = _feed_all([stream])
    assert _kinds(items) == ["bad_header", "frame", "bad_header", "frame", "bad_header"]
    assert items[0].raw == b"\x00\xffhello"
    assert items[2].raw == b"\r\n \t"


def test_garbage_without_a_header_is_reported_when_the_limit_is_reached() -> None:
    d = StreamDecoder(max_garbage=100)
    items = d.feed(b"x" * 250)
    assert _kinds(items) == ["bad_header"]
    assert d.pending < 100


# -- every framing reject, and the good packet behind it --------------------------------------------------------------
GOOD = _packet(RTD_SEGMENT)
_BAD_LENGTH_SHORT = b"##0050" + RTD_SEGMENT + GOOD[-6:]  # says 50, the packet ends later: tail check fails
_BAD_LENGTH_LONG = b"##0300" + RTD_SEGMENT + GOOD[-6:]  # says 300: CR LF comes before the declared end


@pytest.mark.parametrize(
    ("bad", "reason", "detail"),
    [
        pytest.param(b"##01a1" + RTD_SEGMENT, Reason.BAD_LENGTH, "not 4 decimal digits", id="length-not-digits"),
        pytest.param(b"##2000" + b"x" * 2006, Reason.BAD_LENGTH, "exceeds the limit", id="length-over-limit"),
        pytest.param(_BAD_LENGTH_LONG, Reason.BAD_LENGTH, "packet ends (CR LF)", id="length-too-long"),
        pytest.param(_BAD_LENGTH_SHORT, Reason.BAD_TAIL, "expected CR LF", id="length-too-short"),
        pytest.param(GOOD[:-2] + b"\n\r", Reason.BAD_TAIL, "expected CR LF", id="tail-swapped"),
        pytest.param(GOOD[:-6] + b"12G4\r\n", Reason.BAD_CRC, "not 4 hex digits", id="crc-not-hex"),
        pytest.param(GOOD[:-6] + b"0000\r\n", Reason.BAD_CRC, "computed", id="crc-wrong"),
        pytest.param(GOOD[:20] + b"X" + GOOD[21:], Reason.BAD_CRC, "computed", id="one-byte-changed"),
        pytest.param(b"garbage", Reason.BAD_HEADER, "header should start", id="garbage"),
    ],
)
def test_reject_reason_and_resync(bad: bytes, reason: Reason, detail: str) -> None:
    items = _feed_all([bad + GOOD + GOOD])
    rejects = [i for i in items if isinstance(i, Rejected)]
    assert rejects[0].reason is reason
    assert detail in rejects[0].detail
    frames = [i for i in items if isinstance(i, Frame)]
    assert [f.segment for f in frames] == [RTD_SEGMENT, RTD_SEGMENT]  # nothing good is lost behind a bad packet
    assert b"".join(i.raw for i in items) == bad + GOOD + GOOD  # every byte accounted for


def test_truncated_packet_at_close() -> None:
    d = StreamDecoder()
    assert d.feed(GOOD[:40]) == []
    [item] = d.close()
    assert item.reason is Reason.TRUNCATED
    assert item.raw == GOOD[:40]


def test_corrupted_length_does_not_swallow_the_next_packet_while_waiting() -> None:
    # ##0900 would wait for 906 more bytes; the CR LF of the (short) packet shows at once that it ended
    d = StreamDecoder()
    items = d.feed(b"##0900" + RTD_SEGMENT + b"ABCD\r\n")
    assert _kinds(items) == ["bad_length"]
    assert _kinds(d.feed(GOOD)) == ["frame"]


def test_max_segment_is_configurable() -> None:
    items = _feed_all([GOOD], StreamDecoder(max_segment=len(RTD_SEGMENT) - 1))
    assert items[0].reason is Reason.BAD_LENGTH  # type: ignore[union-attr]
    assert _kinds(_feed_all([GOOD], StreamDecoder(max_segment=len(RTD_SEGMENT)))) == ["frame"]


# -- properties --------------------------------------------------------------------------------------------------------
@settings(max_examples=300)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_any_bytes_never_crash_and_every_byte_is_accounted_for(data: bytes, chunk: int) -> None:
    items = _feed_all([data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert b"".join(i.raw for i in items) == data


_segment_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=300)


@given(_segment_text, st.lists(st.integers(min_value=1, max_value=50), max_size=20))
def test_round_trip_with_any_chunking(text: str, cuts: list[int]) -> None:
    segment = text.encode()[:1024]
    if b"\r\n" in segment:
        return
    packet = encode_frame(segment)
    assert packet == _packet(segment)
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(packet[pos : pos + n])
        pos += n
    chunks.append(packet[pos:])
    items = _feed_all(chunks)
    frames = [i for i in items if isinstance(i, Frame)]
    assert [f.segment for f in frames] == [segment]


@given(st.lists(st.tuples(st.binary(max_size=30).filter(lambda b: b"#" not in b), st.booleans()), max_size=10))
def test_good_packets_survive_any_garbage_between_them(parts: list[tuple[bytes, bool]]) -> None:
    stream = b"".join(garbage + (GOOD if good else b"") for garbage, good in parts)
    items = _feed_all([stream])
    assert sum(isinstance(i, Frame) for i in items) == sum(good for _, good in parts)


@given(st.binary(min_size=0, max_size=2100))
def test_column_crc_equals_the_standards_byte_loop(data: bytes) -> None:
    # hj212_crc folds the data by columns (crc.py); the standard's loop is the definition
    assert hj212_crc(data) == hj212_crc_bytewise(data)
