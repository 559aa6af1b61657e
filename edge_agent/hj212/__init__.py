"""HJ 212 ingest: pollution-source data loggers (CEMS, wastewater outlets) push HJ 212-2017 / HJ 212-2025 packets
over TCP; this server hears them and publishes their readings as ordinary Lifeline telemetry.

Layers, each its own module (after pymodbus): ``crc`` (Appendix A check sum), ``framing`` (packets out of a byte
stream), ``segment`` (the data segment and CP area; answers), ``split`` (PNUM/PNO reassembly), ``mapping`` (codes
to profile points, data flags to qualities), ``ingest`` (the checks and what to do, pure), ``server`` (asyncio TCP,
MQTT, dead letters, events), ``config`` (pydantic, validated before any socket opens).

Public API:
    load_config(path) -> LoadedConfig          validate a config (ConfigError names file, line, station, field)
    Hj212Server(loaded, events_path=None)      ``await server.run(stop_event)``
    StreamDecoder, encode_frame, hj212_crc     framing and check sum (pure)
    parse_segment, build_segment, Packet       data segment (pure)
    Reason, Refused                            reject reason codes
    CpCipher, Sm4Error                         HJ 212-2025 SM4 encryption of the CP (pure; assumptions in sm4.py)
    SYSTEMS, COMMANDS                          the ST and CN tables (data; codes.py)
"""

from edge_agent.hj212.codes import COMMANDS, SYSTEMS
from edge_agent.hj212.config import Hj212Config, LoadedConfig, Station, StationConfig, build_config, load_config
from edge_agent.hj212.crc import crc_text, hj212_crc
from edge_agent.hj212.framing import Frame, Rejected, StreamDecoder, encode_frame
from edge_agent.hj212.ingest import Ingest, Outcome
from edge_agent.hj212.mapping import FLAG_QUALITY, Mapped, ProfileMap
from edge_agent.hj212.reasons import Reason, Refused
from edge_agent.hj212.segment import Packet, Reading, build_segment, data_answer, parse_segment
from edge_agent.hj212.server import Hj212Server
from edge_agent.hj212.sm4 import CpCipher, Sm4Error
from edge_agent.hj212.split import Reassembler

__all__ = [
    "COMMANDS",
    "FLAG_QUALITY",
    "SYSTEMS",
    "CpCipher",
    "Frame",
    "Hj212Config",
    "Hj212Server",
    "Ingest",
    "LoadedConfig",
    "Mapped",
    "Outcome",
    "Packet",
    "ProfileMap",
    "Reading",
    "Reason",
    "Reassembler",
    "Refused",
    "Rejected",
    "Sm4Error",
    "Station",
    "StationConfig",
    "StreamDecoder",
    "build_config",
    "build_segment",
    "crc_text",
    "data_answer",
    "encode_frame",
    "hj212_crc",
    "load_config",
    "parse_segment",
]
