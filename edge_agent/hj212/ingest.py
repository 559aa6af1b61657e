"""What to do with each frame a station sent: check it, map it, and say what to publish, answer and dead-letter.
Pure (no sockets, no broker, no clock of its own): the server does the I/O of the ``Outcome``.

The checks, in order (each refusal has its reason code, reasons.py): the frame (framing.py), the data segment
(segment.py), the MN (a configured station), the password (PW), the system code (ST: codes.py), the SM4-encrypted CP
(HJ 212-2025: decrypted with the station's key, sm4.py), the command (CN: codes.py), split reassembly (D bit),
DataTime. A packet refused for a cause that sending again may cure (damaged on the way, unknown station, wrong
password) is never answered: a data logger that gets no answer sends again (HJ 212-2017 §6.5: the timeout and retry
count of CN 1000), which is what a damaged packet needs, and an unknown or wrongly authenticated station learns
nothing from us. A packet of an authenticated station refused for a cause that resending cannot cure is kept as a
dead letter (as sent, ciphertext included) and answered, so that the station does not send it forever: an encrypted
CP without a key or with the wrong one gets 9011 QnRtn=2 (request refused), a command this server does not ingest
gets 9014 (received; it is in the dead letters).

An accepted data packet that asks for an answer (Flag A bit) is answered with CN 9014 only once the broker has
acknowledged its telemetry (the server does that part): a crash before that point loses no reading, because the
logger, unanswered, sends the packet again. Parts of a split message are answered on receipt, except the last,
which completes the message and is answered like any data packet. A heartbeat (CN 9015) is answered with 9013 and
tells the server the station is alive (its liveness, server.py); a registration (CN 1001) is logged and answered.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import orjson

from edge_agent.hj212.codes import (
    COMMANDS,
    HEARTBEAT,
    PROCESS_SYSTEMS,
    SYSTEM_INTERACTION,
    SYSTEMS,
    Handling,
    handling,
    is_interaction,
)
from edge_agent.hj212.config import LoadedConfig, Station
from edge_agent.hj212.framing import Frame, Rejected, encode_frame
from edge_agent.hj212.mapping import DATA_COMMANDS, ProfileMap
from edge_agent.hj212.reasons import Reason, Refused
from edge_agent.hj212.segment import (
    Packet,
    data_answer,
    decrypted,
    heartbeat_answer,
    mask_password,
    parse_segment,
    request_answer,
)
from edge_agent.hj212.sm4 import Sm4Error
from edge_agent.hj212.split import Expired, Reassembler
from edge_agent.outbox import OutMessage
from telemetry import DeviceStatus, encode, topics
from telemetry.codec import encode_telemetry
from telemetry.models import PointQuality, Value

QN_RTN_REFUSED = 2  # HJ 212-2017 §6.6, QnRtn: 2 request refused
MASK = "******"  # the PW of every packet in the events file and the dead letters


@dataclass(frozen=True, slots=True)
class DeadLetterNote:
    source: str  # "hj212/<MN>" or "hj212/<peer host>"
    reason: Reason
    detail: str
    raw: bytes  # with the password masked


@dataclass(slots=True)
class Outcome:
    """The effects of one frame: one event line, dead letters, messages to publish and the answer's frame."""

    event: dict[str, object]
    dead_letters: list[DeadLetterNote] = field(default_factory=list)
    messages: list[OutMessage] = field(default_factory=list)
    answer: bytes | None = None
    answer_on_ack: bool = False  # send ``answer`` once the broker acknowledged ``messages[-1]``
    station: Station | None = None  # accepted: the station; refused: the station if it authenticated
    heartbeat: bool = False
    decrypted: bool = False  # the CP was SM4-encrypted and is now read

    @property
    def accepted(self) -> bool:
        return self.event.get("outcome") == "accept"

    @property
    def reason(self) -> str | None:
        r = self.event.get("reason")
        return r if isinstance(r, str) else None


def packet_event(packet: Packet) -> dict[str, object]:
    """The packet as the events file shows it: what the parser read, before mapping; PW masked."""
    return {
        "QN": packet.qn,
        "ST": packet.st,
        "CN": packet.cn,
        "PW": MASK,
        "MN": packet.mn,
        "Flag": packet.flag,
        "PNUM": packet.pnum,
        "PNO": packet.pno,
        "DataTime": packet.data_time,
        "readings": [{"code": r.code, "suffix": r.suffix, "value": r.value, "flag": r.flag} for r in packet.readings],
    }


def _fields_event(packet: Packet, encrypted: bool) -> dict[str, object]:
    event = packet_event(packet)
    if encrypted:
        event["encrypted"] = "SM4"
    if packet.cn not in DATA_COMMANDS and packet.others:  # registration, commands not ingested: what they said
        event["fields"] = dict(packet.others)
    return event


class Ingest:
    def __init__(self, loaded: LoadedConfig, *, packet_events: bool = True) -> None:
        """``packet_events``: an accepted packet's event carries what the parser read (for ``--events``); without
        it, only the peer and the outcome (the server's hot path when no events file is written)."""
        self.loaded = loaded
        self.packet_events = packet_events
        cfg = loaded.config
        self.maps: dict[str, ProfileMap] = {}
        self.units: dict[str, dict[str, str]] = {}  # by profile (Profile.units is computed on every call)
        for station in loaded.stations.values():
            assert station.profile.hj212 is not None
            self.maps.setdefault(station.profile.name, ProfileMap(station.profile.hj212, station.profile))
            self.units.setdefault(station.profile.name, station.profile.units)
        # per station MN: its tags (the profile's and its own), looked at on every packet
        self.tags: dict[str, dict[str, str]] = {
            mn: {**station.profile.tags, **station.config.tags} for mn, station in loaded.stations.items()
        }
        self.splits = Reassembler(cfg.split_timeout_s)
        self.seq: dict[str, int] = {}  # per station MN, from 1 in this run
        self._units_by_names: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self._topics: dict[str, str] = {}  # per station MN, its telemetry topic

    def handle(self, peer: str, item: Frame | Rejected, now: float) -> Outcome:
        if isinstance(item, Rejected):
            return self._reject(peer, None, item.reason, item.detail, item.raw)
        try:
            packet = parse_segment(item.segment)
        except Refused as exc:
            return self._reject(peer, None, exc.reason, exc.detail, item.raw)
        station: Station | None = None
        encrypted = packet.cipher is not None
        try:
            station = self._check(packet, self.loaded.stations.get(packet.mn))
            if encrypted:
                packet = self._decrypt(packet, station)
            return self._accept(peer, packet, station, item.raw, now, encrypted)
        except Refused as exc:
            out = self._reject(peer, packet.mn, exc.reason, exc.detail, item.raw)
            if station is not None and exc.reason in (Reason.NO_KEY, Reason.BAD_KEY):
                out.station = station  # resending cannot cure it: answered, so that the station stops
                if packet.answer_requested and packet.qn:
                    out.answer = encode_frame(request_answer(packet, station.password, QN_RTN_REFUSED))
            return out

    def expire(self, now: float) -> list[DeadLetterNote]:
        """Split messages whose time ran out, for the dead letters."""
        return [self._expired_note(e) for e in self.splits.expire(now)]

    def status(self, station: Station, online: bool, reason: str, now: float) -> OutMessage:
        c = station.config
        msg = DeviceStatus(
            site=c.site, device=c.device, profile=station.profile.name, online=online, ts=int(now * 1000), reason=reason
        )
        return OutMessage(topics.status(c.site, c.device), encode(msg), retain=True)

    # -- steps ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _check(packet: Packet, station: Station | None) -> Station:
        if station is None:
            raise Refused(Reason.UNKNOWN_MN, f"MN {packet.mn!r} is not a configured station")
        if not hmac.compare_digest(packet.pw.encode(), station.password.encode()):
            raise Refused(Reason.BAD_PASSWORD, f"wrong access password (PW) for MN {packet.mn!r}")
        own = station.st
        if own is not None and packet.st != own:
            if packet.st not in SYSTEMS:
                raise Refused(Reason.BAD_ST, f"ST {packet.st} from MN {packet.mn!r} is not a known system code")
            interaction = packet.st == SYSTEM_INTERACTION and is_interaction(packet.cn)
            if not interaction and packet.st not in PROCESS_SYSTEMS and packet.cn != HEARTBEAT:
                raise Refused(
                    Reason.BAD_ST,
                    f"ST {packet.st} ({SYSTEMS[packet.st]}) from MN {packet.mn!r}; the station's system is {own}",
                )
        return station

    @staticmethod
    def _decrypt(packet: Packet, station: Station) -> Packet:
        assert packet.cipher is not None
        if station.cipher is None:
            raise Refused(
                Reason.NO_KEY,
                f"CN {packet.cn} from MN {packet.mn!r} has an SM4-encrypted CP (HJ 212-2025) and the station has no "
                "sm4_key: configure its key (version: 2025, sm4_key); the packets refused until then are dead letters",
            )
        try:
            plain = station.cipher.decrypt(packet.cipher)
        except Sm4Error as exc:
            raise Refused(Reason.BAD_KEY, f"CN {packet.cn} from MN {packet.mn!r}: {exc}") from exc
        return decrypted(packet, plain)

    def _accept(
        self, peer: str, packet: Packet, station: Station, raw: bytes, now: float, encrypted: bool = False
    ) -> Outcome:
        what = handling(packet.cn)
        if what is Handling.NOT_INGESTED:
            known = COMMANDS.get(packet.cn)
            name = f"({known[0]}) " if known else "(unknown to this server) "
            out = self._reject(
                peer,
                packet.mn,
                Reason.UNSUPPORTED_CN,
                f"CN {packet.cn} {name}from MN {packet.mn!r} is not ingested; kept here and answered",
                raw,
            )
            out.event["packet"] = _fields_event(packet, encrypted)
            out.station = station
            if packet.answer_requested and packet.qn:
                out.answer = encode_frame(data_answer(packet, station.password))
            return out
        event: dict[str, object] = {"peer": peer, "outcome": "accept"}
        if self.packet_events:
            event["packet"] = _fields_event(packet, encrypted)
        out = Outcome(event, station=station, decrypted=encrypted)
        answer = encode_frame(data_answer(packet, station.password)) if packet.answer_requested and packet.qn else None
        if what is Handling.HEARTBEAT:
            out.heartbeat = True
            out.answer = encode_frame(heartbeat_answer(packet, station.password))
            return out
        if what is Handling.REGISTER:
            out.answer = answer
            return out
        if packet.data_time is None and not packet.split:
            raise Refused(Reason.BAD_CP, f"data command {packet.cn} without DataTime")
        whole: Packet | None = packet
        if packet.split:
            whole, pushed = self.splits.add(packet, now)
            out.dead_letters += [self._expired_note(e) for e in pushed]
            if whole is None:
                out.answer = answer  # a part: answered on receipt (a logger may wait for it before the next)
                return out
            if whole.data_time is None:
                raise Refused(Reason.BAD_SPLIT, f"no part of split message QN={packet.qn} gives DataTime")
        assert whole is not None
        assert whole.data_time is not None
        tags = self._tags_of(station)
        ts, values, quality, unmapped = self.maps[station.profile.name].to_values(
            whole, station.config.utc_offset_h, tags
        )
        if unmapped:
            detail = f"{len(unmapped)} value(s) not mapped by profile {station.profile.name!r}: " + "; ".join(unmapped)
            out.dead_letters.append(DeadLetterNote(f"hj212/{packet.mn}", Reason.UNMAPPED, detail, mask_password(raw)))
        if values:
            out.messages.append(self._telemetry(station, tags, ts, values, quality))
        out.answer = answer
        out.answer_on_ack = bool(out.messages)
        return out

    def _telemetry(
        self,
        station: Station,
        tags: dict[str, str],
        ts: int,
        values: dict[str, Value],
        quality: dict[str, PointQuality],
    ) -> OutMessage:
        """The telemetry message of one sample, encoded without building the models (``encode_telemetry`` gives
        the bytes ``encode(Telemetry(...))`` would; the mapping made the values and qualities the contract's)."""
        c = station.config
        seq = self.seq.get(c.mn, 0) + 1
        self.seq[c.mn] = seq
        profile = station.profile
        names = tuple(values)
        units = self._units_by_names.get((profile.name, names))
        if units is None:
            all_units = self.units[profile.name]
            units = {n: all_units[n] for n in names if n in all_units}
            if len(self._units_by_names) < 4096:  # bounded: the point sets of the stations' packet kinds
                self._units_by_names[(profile.name, names)] = units
        payload = encode_telemetry(
            c.site, c.device, profile.name, profile.measurement, seq, "", tags, units, ts, values, quality
        )
        topic = self._topics.get(c.mn)
        if topic is None:
            topic = self._topics[c.mn] = topics.telemetry(c.site, c.device)
        return OutMessage(topic, payload)

    def _tags_of(self, station: Station) -> dict[str, str]:
        tags = self.tags.get(station.mn)
        return tags if tags is not None else {**station.profile.tags, **station.config.tags}

    def _reject(self, peer: str, mn: str | None, reason: Reason, detail: str, raw: bytes) -> Outcome:
        source = f"hj212/{mn}" if mn else f"hj212/{peer.rpartition(':')[0]}"
        note = DeadLetterNote(source, reason, detail, mask_password(raw))
        return Outcome({"peer": peer, "outcome": "reject", "reason": str(reason), "detail": detail}, [note])

    @staticmethod
    def _expired_note(e: Expired) -> DeadLetterNote:
        raw = b"\n".join(orjson.dumps(packet_event(p)) for p in e.parts)  # PW already masked
        return DeadLetterNote(f"hj212/{e.mn}", Reason.INCOMPLETE_SPLIT, e.detail, raw)
