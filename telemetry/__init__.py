"""The wire contract every Lifeline service shares: topic scheme, message models, codec, quality codes."""

from telemetry import topics
from telemetry.codec import (
    ContractError,
    decode_agent_state,
    decode_status,
    decode_stored,
    decode_telemetry,
    encode,
    encode_telemetry,
)
from telemetry.models import (
    CONTRACT_VERSION,
    AgentState,
    DeviceStatus,
    PointQuality,
    Quality,
    Sample,
    Stored,
    StoredRange,
    Telemetry,
    Value,
)
from telemetry.topics import TopicError

__all__ = [
    "CONTRACT_VERSION",
    "AgentState",
    "ContractError",
    "DeviceStatus",
    "PointQuality",
    "Quality",
    "Sample",
    "Stored",
    "StoredRange",
    "Telemetry",
    "TopicError",
    "Value",
    "decode_agent_state",
    "decode_status",
    "decode_stored",
    "decode_telemetry",
    "encode",
    "encode_telemetry",
    "topics",
]
