"""infra.mqtt._paho.LeanClient against paho's own parsing: the same packets, byte for byte, over a real socket pair.

Each case writes PUBLISH packets into one end of a socket pair and lets the client read them from the other with
paho's own packet reader (``_packet_read``), once with the lean intake and once with paho's (``on_lean_message``
unset: paho decodes every packet and calls ``on_message``). Both must deliver the same (mid, topic, payload, qos),
in order. A paho release that changes the internals the client leans on fails here first.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, _ConnectionState

from infra.mqtt._paho import LeanClient

Delivered = tuple[int, str, bytes, int]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, qos: int = 1, mid: int = 1, properties: bytes = b"", v5: bool = True) -> bytes:
    """A PUBLISH packet as a broker sends it (MQTT 5 §3.3; 3.1.1 without the property length)."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + (struct.pack("!H", mid) if qos else b"")
    if v5:
        body += _varint(len(properties)) + properties
    body += payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


def _user_property(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return b"\x26" + struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v


CASES: dict[str, list[bytes]] = {
    "qos 1": [publish("lifeline/v1/s1/wq-1/telemetry", b'{"v":1}', mid=7)],
    "qos 0": [publish("lifeline/v1/s1/wq-1/telemetry", b"x", qos=0)],
    "empty payload": [publish("a/b", b"", mid=65535)],
    "unicode topic": [publish("lifeline/v1/宝山/水质-1/telemetry", "π".encode(), mid=3)],
    "user property (paho's way)": [publish("a/b", b"p", mid=9, properties=_user_property("k", "v"))],
    "message expiry (paho's way)": [publish("a/b", b"p", mid=10, properties=b"\x02\x00\x00\x00\x3c")],
    "payload of 200 kB (several reads)": [publish("a/b", bytes(range(256)) * 800, mid=11)],
    "many small, mixed": [
        publish(
            f"t/{i}",
            f"payload {i}".encode() * (i % 7),
            qos=i % 2,
            mid=i + 1,
            properties=_user_property("n", str(i)) if i % 5 == 0 else b"",
        )
        for i in range(3000)
    ],
}


def _client(lean: bool, sock: socket.socket, got: list[Delivered], v5: bool = True) -> LeanClient:
    client = LeanClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="lean-test",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=True,
    )

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.mid, msg.topic, bytes(msg.payload), msg.qos))

    client.on_message = on_message
    if lean:
        client.on_lean_message = lambda mid, topic, payload, qos: got.append((mid, topic, payload, qos))
    client._sock = sock
    return client


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _drain(client: LeanClient, sock_in: socket.socket, data: bytes, sender: socket.socket) -> None:
    """Send ``data`` in pieces and read packets until the socket and the read-ahead are both empty."""
    for start in range(0, len(data), 50_000):
        sender.sendall(data[start : start + 50_000])
        while True:
            rc = client._packet_read()
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN and not client.pending:
                break
            assert rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN), rc


@pytest.mark.parametrize("case", list(CASES))
def test_lean_intake_delivers_what_paho_delivers(case: str) -> None:
    data = b"".join(CASES[case])
    results = []
    for lean in (False, True):
        got: list[Delivered] = []
        a, b = socket.socketpair()
        b.setblocking(False)
        try:
            _drain(_client(lean, b, got), b, data, a)
        finally:
            a.close()
            b.close()
        results.append(got)
    paho_way, lean_way = results
    assert len(paho_way) == len(CASES[case])
    assert lean_way == paho_way


def test_mqtt_311_packets_go_paho_s_way_or_lean_alike(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    packets = [publish("a/b", b"one", mid=1, v5=False), publish("a/c", b"two", qos=0, v5=False)]
    got: list[Delivered] = []
    _drain(_client(True, b, got, v5=False), b, b"".join(packets), a)
    assert got == [(1, "a/b", b"one", 1), (0, "a/c", b"two", 0)]


def test_read_ahead_is_reported_pending_until_parsed(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[Delivered] = []
    client = _client(True, b, got)
    a.sendall(publish("a/b", b"1", mid=1) + publish("a/b", b"2", mid=2))
    assert client._packet_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert got == [(1, "a/b", b"1", 1)]
    assert client.pending  # the second packet was read from the socket with the first
    assert client._packet_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert not client.pending
    assert [g[2] for g in got] == [b"1", b"2"]


def test_ack_many_writes_the_pubacks_paho_would_in_one_go(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    client = _client(True, b, [])
    assert client.ack_many([1, 258, 65535]) == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert client.ack_many([]) == MQTTErrorCode.MQTT_ERR_SUCCESS
    a.settimeout(2)
    assert a.recv(100) == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff"
    ours = LeanClient(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="paho", manual_ack=True, protocol=mqtt.MQTTv5
    )
    ours._sock = b
    ours.ack(258, 1)  # paho's own PUBACK, for comparison
    assert a.recv(100) == b"\x40\x02\x01\x02"


def test_closing_the_socket_drops_the_read_ahead(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[Delivered] = []
    client = _client(True, b, got)
    a.sendall(publish("a/b", b"1", mid=1) + publish("a/b", b"2", mid=2))
    client._packet_read()
    assert client.pending
    client._sock_close()
    assert not client.pending


def _publisher(sock: socket.socket, acks: list[tuple[int, int]], v5: bool) -> LeanClient:
    client = LeanClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="lean-pub",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    client.on_publish = lambda c, userdata, mid, rc, props: acks.append((mid, rc.value))
    client._sock = sock  # the socket paho would have connected
    client._state = _ConnectionState.MQTT_CS_CONNECTED
    return client


@pytest.mark.parametrize("v5", [True, False])
def test_a_plain_puback_completes_the_publish_as_paho_s_does(
    pair: tuple[socket.socket, socket.socket], v5: bool
) -> None:
    a, b = pair
    acks: list[tuple[int, int]] = []
    client = _publisher(b, acks, v5)
    infos = [client.publish("a/b", b"x", qos=1) for _ in range(3)]
    a.settimeout(2)
    a.recv(1000)  # the three PUBLISH packets
    pubacks = struct.pack("!BBH", 0x40, 2, infos[0].mid) + struct.pack("!BBH", 0x40, 2, infos[2].mid)
    if v5:  # a reason code (16: no matching subscribers) and properties: paho's own way
        pubacks += bytes([0x40, 3]) + struct.pack("!H", infos[1].mid) + b"\x10"
    a.sendall(pubacks)
    client.loop_read(10)
    assert infos[0].is_published()
    assert infos[2].is_published()
    assert acks[:2] == [(infos[0].mid, 0), (infos[2].mid, 0)]
    if v5:
        assert infos[1].is_published()
        assert acks[2] == (infos[1].mid, 16)
        assert not client._out_messages  # nothing left in flight


@pytest.mark.parametrize("drain", [False, True])
def test_drain_read_ahead_parses_all_that_was_read(pair: tuple[socket.socket, socket.socket], drain: bool) -> None:
    a, b = pair
    got: list[Delivered] = []
    client = _client(True, b, got)
    client.drain_read_ahead = drain
    a.sendall(b"".join(publish("a/b", str(i).encode(), mid=i + 1) for i in range(3)))
    client.loop_read()
    assert len(got) == (3 if drain else 1)
    assert client.pending is not drain


@pytest.mark.parametrize("v5", [True, False])
def test_publish_qos1_sends_the_packet_paho_sends(pair: tuple[socket.socket, socket.socket], v5: bool) -> None:
    a, b = pair
    acks: list[tuple[int, int]] = []
    client = _publisher(b, acks, v5)
    a.settimeout(2)
    for payload, retain in [(b"x" * 300, False), (b"", True), ("宝山".encode() * 5000, False)]:
        info = client.publish("lifeline/v1/宝山/wq-1/telemetry", payload, qos=1, retain=retain)
        theirs = a.recv(100_000)
        rc, mid = client.publish_qos1("lifeline/v1/宝山/wq-1/telemetry", payload, retain=retain)
        assert rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        ours = a.recv(100_000)
        assert len(ours) == len(theirs)
        header, (got_mid, *got) = _parse_publish(ours, v5)
        their_header, (their_mid, *want) = _parse_publish(theirs, v5)
        assert (header, got) == (their_header, want)
        assert (got_mid, their_mid) == (mid, info.mid)
        a.sendall(struct.pack("!BBH", 0x40, 2, mid))
        client.loop_read(10)
        assert acks[-1] == (mid, 0)
    assert client.publish_qos1("a/b", b"")[0] == MQTTErrorCode.MQTT_ERR_SUCCESS


def _parse_publish(packet: bytes, v5: bool) -> tuple[int, tuple[int, bytes, bytes, int]]:
    """(header, (mid, topic, payload, retain)) of one QoS 1 PUBLISH packet."""
    header = packet[0]
    i, length, mult = 1, 0, 1
    while True:
        length += (packet[i] & 127) * mult
        mult *= 128
        i += 1
        if not packet[i - 1] & 128:
            break
    body = packet[i:]
    assert len(body) == length
    tlen = int.from_bytes(body[:2])
    mid = int.from_bytes(body[2 + tlen : 4 + tlen])
    start = 4 + tlen + (1 + body[4 + tlen] if v5 else 0)
    return header, (mid, body[2 : 2 + tlen], body[start:], header & 1)
