"""The one file of Lifeline that imports paho's internals: the lean client of the hot paths, and the factory that
makes every Lifeline paho client.

``LeanClient`` is a paho client with a lean intake for a consumer's hot path (read-ahead, PUBLISH without paho's
objects, PUBACKs in one write) and a lean QoS 1 publish for a window owner. It leans on paho 2.x internals
(``_sock_recv``, ``_handle_publish``, ``_in_packet``, ``_packet_queue``, ...); ``tests/unit/test_mqtt_lean.py``
checks it against paho's own parsing and writing, and fails first if a paho release changes them (pyproject pins
paho to the tested minor release).
"""

from __future__ import annotations

import ssl
import struct
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK, PUBLISH
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from infra.mqtt.settings import BrokerConfig, configure_client

__all__ = [
    "MQTT_ERR_SUCCESS",
    "Client",
    "LeanClient",
    "MQTTMessage",
    "MQTTv5",
    "MQTTv311",
    "Properties",
    "client",
    "connect_properties",
    "error_string",
    "new_client",
]

Client = mqtt.Client
MQTTMessage = mqtt.MQTTMessage
MQTTv5 = mqtt.MQTTv5
MQTTv311 = mqtt.MQTTv311
MQTT_ERR_SUCCESS = mqtt.MQTT_ERR_SUCCESS
error_string = mqtt.error_string

_RECV_BYTES = 65536  # read ahead from the socket: paho asks for a packet's first byte, its length, then its body
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id: MQTT 5 §3.4.2.1, reason 0 and no properties
_TOPIC_LENGTH = struct.Struct("!H")  # a two-byte integer: a topic's length, a packet id
_NO_PROPERTIES = 0  # a PUBLISH's property length byte when it has none (MQTT 5 §3.3.2.3)
# what paho hands on_publish for a plain PUBACK (remaining length 2: success, no properties), made once: paho makes
# a ReasonCode and a Properties (each a table of every name) for every PUBACK
_PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)
_PUBACK_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]


class LeanClient(mqtt.Client):
    """paho's client with a lean intake for the messages of a consumer's hot path (paho 2.x internals).

    Three things paho does per message cost more than a service's own work on it: a ``recv`` system call for each of
    a packet's first byte, its length and its body; a ``Properties`` object built and cleared for every MQTT 5
    PUBLISH; and a packet queued and an epoll change for every PUBACK. (Measured through ``Consumer``, a
    water-quality message received and acknowledged: 54 µs of CPU with paho's client, 8 µs with this one; its
    decode takes 6.5 µs.) So this client reads the socket 64 KiB at a time and serves paho's reads from that buffer
    (``pending`` says it holds bytes, which the socket's readiness no longer shows), hands a QoS 0/1 PUBLISH without
    properties to ``on_lean_message(mid, topic, payload, qos)`` (anything else goes paho's way, to ``on_message``),
    and ``ack_many`` queues the PUBACKs of many messages as one write. On the publishing side ``publish_qos1``
    sends without paho's per-message objects, and a plain PUBACK (success, no properties) is taken without the two
    objects paho builds for each. Everything else (connect,
    subscribe, keepalive, TLS, QoS 2) is paho's own.
    """

    _rbuf: bytes = b""
    _rpos: int = 0
    _lean_inflight: set[int]  # packet ids of publish_qos1 messages awaiting their PUBACK
    on_lean_message: Any = None
    # the broker ended the connection itself: end of stream (or TLS end), where a broker that sends no DISCONNECT
    # (Mosquitto 2.0.11 on a session taken over) leaves no other trace; a reset or a time-out does not set it
    closed_by_peer = False
    # paho's own network loop (loop_start) waits in select, which cannot see the read-ahead: a client run so sets
    # this, and each read goes on until the read-ahead is parsed
    drain_read_ahead = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean_inflight = set()

    @property
    def pending(self) -> bool:
        """True while read-ahead bytes wait to be parsed (the socket's readiness does not show them)."""
        return self._rpos < len(self._rbuf)

    def _sock_recv(self, bufsize: int) -> bytes:
        pos, buf = self._rpos, self._rbuf
        if pos >= len(buf):
            try:
                data = super()._sock_recv(_RECV_BYTES)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                self.closed_by_peer = True
                raise
            if not data:  # the broker closed the connection (not a reset, not a time-out)
                self.closed_by_peer = True
            if len(data) <= bufsize:
                return data
            self._rbuf, self._rpos = data, bufsize
            return data[:bufsize]
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]

    def publish_qos1(self, topic: str, payload: bytes, retain: bool = False) -> tuple[MQTTErrorCode, int]:
        """Publish at QoS 1 without paho's per-message objects (an MQTTMessage, an MQTTMessageInfo with its
        Condition): the result and the packet id; the PUBACK reaches ``on_publish`` with that id, as for
        ``publish``. For a client that keeps its own window and never lets paho resend (a new client for every
        connection, as the edge's link does): nothing is kept for paho to send again after a reconnect, and the
        topic is the caller's own, not checked for wildcards."""
        if self._callback_api_version != CallbackAPIVersion.VERSION2:
            raise RuntimeError("publish_qos1 calls on_publish as callback API version 2 does")
        if self._sock is None or self._state != _ConnectionState.MQTT_CS_CONNECTED:
            return MQTTErrorCode.MQTT_ERR_NO_CONN, 0
        name = topic.encode()
        if not name or len(name) > 65535:
            raise ValueError(f"topic {topic!r} cannot be published")
        mid = self._mid_generate()
        v5 = self._protocol == mqtt.MQTTv5
        length = 2 + len(name) + 2 + v5 + len(payload)
        packet = bytearray((PUBLISH | 0x02 | bool(retain),))
        while True:  # remaining length, a variable byte integer (MQTT 5 §1.5.5)
            length, digit = divmod(length, 128)
            packet.append(digit | 0x80 if length else digit)
            if not length:
                break
        packet += _TOPIC_LENGTH.pack(len(name))
        packet += name
        packet += _TOPIC_LENGTH.pack(mid)
        if v5:
            packet.append(_NO_PROPERTIES)
        packet += payload
        self._lean_inflight.add(mid)
        return self._packet_queue(PUBLISH, packet, mid, 1), mid

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while (
            self.drain_read_ahead and rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.pending
        ):
            rc = super().loop_read(max_packets)
        return rc

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        if cmd != "PUBACK":
            return super()._handle_pubackcomp(cmd)
        packet = self._in_packet["packet"]
        mid = int.from_bytes(packet[:2])
        lean = self._lean_inflight
        if self._in_packet["remaining_length"] != 2:
            if mid not in lean or len(packet) < 3:
                return super()._handle_pubackcomp(cmd)  # a reason code or properties: paho decodes them
            # MQTT 5 §3.4.2.1: a PUBACK of a publish_qos1 message with a reason code (Mosquitto sends 0x10 "No
            # matching subscribers", 0x87 "Not authorized"), which paho would not match to a message of its own
            lean.discard(mid)
            on_publish = self.on_publish
            if on_publish is not None:
                reason = ReasonCode(PacketTypes.PUBACK, identifier=packet[2])
                on_publish(self, self._userdata, mid, reason, _PUBACK_PROPERTIES)  # type: ignore[call-arg]
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if mid in lean:
            lean.discard(mid)
            on_publish = self.on_publish
            if on_publish is not None:
                on_publish(self, self._userdata, mid, _PUBACK_SUCCESS, _PUBACK_PROPERTIES)  # type: ignore[call-arg]
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, _PUBACK_SUCCESS, _PUBACK_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0  # bytes of a connection that is gone
        super()._sock_close()

    def _handle_publish(self) -> MQTTErrorCode:
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        on_lean = self.on_lean_message
        if on_lean is None or qos > 1 or len(packet) < 2:
            return super()._handle_publish()
        topic_end = 2 + (packet[0] << 8 | packet[1])
        pos, mid = topic_end, 0
        if qos:
            mid = int.from_bytes(packet[pos : pos + 2])
            pos += 2
        if self._protocol == mqtt.MQTTv5:
            if pos >= len(packet) or packet[pos] != _NO_PROPERTIES:
                return super()._handle_publish()  # properties, or a malformed packet: paho decodes it
            pos += 1
        if topic_end == 2 or pos > len(packet):
            return super()._handle_publish()  # an empty topic (an alias) or a short packet: paho's way
        on_lean(mid, packet[2:topic_end].decode("utf-8", "replace"), bytes(memoryview(packet)[pos:]), qos)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> MQTTErrorCode:
        """PUBACK each of these QoS 1 messages, in one write (as paho's ``ack`` would, one by one)."""
        if not mids:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        pack = _PUBACK.pack
        blob = b"".join([pack(PUBACK, 2, mid) for mid in mids])
        return self._packet_queue(PUBACK, blob, 0, 1)


def connect_properties(session_expiry_s: int, receive_maximum: int | None = None) -> Properties:
    """MQTT 5 CONNECT properties of a persistent session: how long the broker keeps it (and queues for it) while
    the client is away, and optionally how many unacknowledged QoS 1 messages it may send at a time."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def new_client(
    broker: BrokerConfig,
    client_id: str,
    *,
    v5: bool = False,
    clean: bool = True,
    lean: bool = False,
    manual_ack: bool = False,
    reconnect: bool = False,
) -> mqtt.Client:
    """A paho client (callback API 2) with the broker's credentials and TLS, not yet connected.

    ``v5``: MQTT 5 (its clean start is given at connect); else MQTT 3.1.1 with ``clean`` as its clean session.
    ``lean``: a :class:`LeanClient`. ``reconnect``: paho's own reconnect (off for Lifeline's clients, which come
    back through :func:`infra.mqtt.keep_connected`)."""
    cls = LeanClient if lean else mqtt.Client
    options: dict[str, Any] = {"protocol": mqtt.MQTTv5} if v5 else {"clean_session": clean}
    client = cls(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        manual_ack=manual_ack,
        reconnect_on_failure=reconnect,
        **options,
    )
    configure_client(client, broker)
    return client


def client(
    broker: BrokerConfig, client_id: str = "", *, v5: bool = False, clean: bool = True, reconnect: bool = True
) -> mqtt.Client:
    """A configured paho client (credentials, TLS; not connected) for code that must drive MQTT by hand: tests that
    play an attacker, a vendor device or a broker's control client, benchmarks. With ``reconnect`` paho comes back
    by itself every second (a test's client only); services use ``Link`` or ``Consumer``."""
    made = new_client(broker, client_id, v5=v5, clean=clean, reconnect=reconnect)
    made.reconnect_delay_set(1, 1)
    return made
