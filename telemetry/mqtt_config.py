"""Broker connection and subscription settings shared by every service that talks MQTT."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BrokerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class SubscriptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(default="lifeline-bridge-1", min_length=1, max_length=64)
    group: str = Field(default="lifeline-bridge", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                       description="shared-subscription group: bridges in one group share the work")  # fmt: skip
    topic: str = Field(default="lifeline/v1/+/+/telemetry")
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, description="how long the broker keeps queueing for a bridge that is away"
    )
    receive_maximum: int = Field(
        default=20000, ge=10, le=65535,
        description="QoS 1 messages the broker may have unacknowledged toward the bridge (MQTT 5 Receive Maximum): "
                    "the most a batch can hold, and the memory bound while InfluxDB is down",
    )  # fmt: skip
