"""Encode and decode contract messages: JSON through orjson, validated by the pydantic models."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from telemetry.models import AgentState, DeviceStatus, PointQuality, Stored, Telemetry, Value

M = TypeVar("M", bound=BaseModel)


class ContractError(ValueError):
    """A payload that is not a valid contract message; the text says what and where."""


def encode(message: BaseModel) -> bytes:
    """Serialise a contract message to compact JSON bytes."""
    try:
        return orjson.dumps(message.model_dump(mode="json"))
    except TypeError as exc:  # e.g. an integer beyond 64 bits, a lone surrogate in a text
        raise ContractError(f"{type(message).__name__} cannot be encoded: {exc}") from exc


def encode_telemetry(
    site: str,
    device: str,
    profile: str,
    measurement: str,
    seq: int,
    run: str,
    tags: dict[str, str],
    units: dict[str, str],
    ts: int,
    values: dict[str, Value],
    quality: dict[str, PointQuality],
) -> bytes:
    """The bytes ``encode(Telemetry(...))`` gives for a message of one sample (``ts``, ``values``, ``quality``),
    without building the models: the edge's hot path (one message a device a poll). The fields are the agent's own,
    already of the contract's types; tests/unit/test_codec.py checks the bytes are the same."""
    try:
        return orjson.dumps(
            {
                "v": 1,
                "site": site,
                "device": device,
                "profile": profile,
                "measurement": measurement,
                "seq": seq,
                "run": run,
                "tags": tags,
                "units": units,
                "samples": [
                    {
                        "ts": ts,
                        "values": values,
                        "quality": {k: {"q": pq.q.value, "reason": pq.reason} for k, pq in quality.items()},
                    }
                ],
            }
        )
    except TypeError as exc:
        raise ContractError(f"Telemetry cannot be encoded: {exc}") from exc


def _decode(model: type[M], payload: bytes | str, topic: str | None) -> M:
    where = f" on topic {topic!r}" if topic else ""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"payload{where} is not JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ContractError(f"{model.__name__} payload{where} is invalid: {problems}") from exc


def decode_telemetry(payload: bytes | str, topic: str | None = None) -> Telemetry:
    return _decode(Telemetry, payload, topic)


def decode_status(payload: bytes | str, topic: str | None = None) -> DeviceStatus:
    return _decode(DeviceStatus, payload, topic)


def decode_agent_state(payload: bytes | str, topic: str | None = None) -> AgentState:
    return _decode(AgentState, payload, topic)


def decode_stored(payload: bytes | str, topic: str | None = None) -> Stored:
    return _decode(Stored, payload, topic)
