"""Broker connection and subscription settings shared by every service that talks MQTT, and the one place that
applies them (credentials, TLS) to a paho client: :func:`configure_client`."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infra.backoff import Backoff
from infra.secret import Secret


class TlsConfig(BaseModel):
    """MQTT over TLS: the CA that signed the broker's certificate, and optionally a client certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path = Field(description="PEM file of the CA that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="client certificate (PEM), when the broker asks for one")
    key_file: Path | None = Field(None, description="client key (PEM, mode 0600)")
    verify: bool = Field(True, description="check the broker's certificate and host name (off only for tests)")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class BrokerConfig(BaseModel):
    """Where a client connects, as whom, and how it comes back after losing the broker.

    Reconnects wait an exponential, fully jittered delay (:class:`infra.backoff.Backoff`): the first retry within
    ``reconnect_initial_s``, never longer than ``reconnect_max_s`` between two attempts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: Secret | None = Field(None, description="inline, {file: PATH} (mode 0600) or {env: NAME}")
    tls: TlsConfig | None = Field(None, description="MQTT over TLS; none: plain TCP")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_initial_s: float = Field(default=1.0, gt=0, le=600, description="the first retry comes within this")
    # 5 s by default: a client must be back within seconds of the broker's return (an alarm taken in an outage is
    # notified within 10 s of it); with full jitter, even 1,000 edges reconnect at about 200 a second
    reconnect_max_s: float = Field(default=5.0, gt=0, le=86400, description="the longest wait between attempts")

    @model_validator(mode="before")
    @classmethod
    def _legacy_password_keys(cls, data: Any) -> Any:
        """``password_file: PATH`` and ``password_env: NAME`` (configs of 0.2) are read as ``password: {...}``."""
        if not isinstance(data, dict) or not {"password_file", "password_env"} & data.keys():
            return data
        data = dict(data)
        given = [k for k in ("password", "password_file", "password_env") if data.get(k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of password, password_file, password_env (got {', '.join(given)})")
        path, env = data.pop("password_file", None), data.pop("password_env", None)
        if path is not None:
            data["password"] = {"file": path}
        elif env is not None:
            data["password"] = {"env": env}
        return data

    @model_validator(mode="after")
    def _order(self) -> BrokerConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s ({self.reconnect_max_s:g}) is less than reconnect_initial_s "
                f"({self.reconnect_initial_s:g})"
            )
        return self

    def secret(self) -> str | None:
        """The password from wherever the config says it is (read now: a rotated file is picked up)."""
        return None if self.password is None else self.password.reveal("MQTT password")

    def backoff(self) -> Backoff:
        """A fresh reconnect backoff for one client of this broker."""
        return Backoff(self.reconnect_initial_s, self.reconnect_max_s)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def configure_client(client: Any, broker: BrokerConfig) -> None:
    """Give a paho client the broker's credentials and TLS settings (every Lifeline MQTT client goes through here)."""
    if broker.username:
        client.username_pw_set(broker.username, broker.secret())
    if broker.tls is not None:
        tls = broker.tls
        client.tls_set(
            ca_certs=str(tls.ca_file),
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(not tls.verify)


class SubscriptionConfig(BaseModel):
    """A consumer's persistent, shared subscription (MQTT 5: clean start false, a session expiry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(default="lifeline-bridge-1", min_length=1, max_length=64)
    group: str = Field(
        default="lifeline-bridge",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="shared-subscription group: bridges in one group share the work",
    )
    topic: str = Field(default="lifeline/v1/+/+/telemetry")
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, description="how long the broker keeps queueing for a bridge that is away"
    )
    receive_maximum: int = Field(
        default=20000,
        ge=10,
        le=65535,
        description="QoS 1 messages the broker may have unacknowledged toward the bridge (MQTT 5 Receive Maximum): "
        "the most a batch can hold, and the memory bound while InfluxDB is down",
    )
