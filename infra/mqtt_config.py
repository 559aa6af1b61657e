"""Broker connection and subscription settings shared by every service that talks MQTT, and the one place that
applies them (credentials, TLS) to a paho client: :func:`configure_client`."""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CredentialError(ValueError):
    """A credential file that is missing, unreadable or readable by others; the text names the file."""


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a secret file, which must be readable by its owner only (mode 0600 or stricter)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialError(f"{what} file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(f"{what} file {path} is readable by group or others (mode {stat.S_IMODE(mode):o}): "
                              "chmod 600 it")  # fmt: skip
    return text.splitlines()[0].strip() if text.strip() else ""


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` created with mode 0600 from the start (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)


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
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    password_file: Path | None = Field(None, description="read the password from this file (mode 0600) instead")
    password_env: str | None = Field(None, description="read the password from this environment variable instead")
    tls: TlsConfig | None = Field(None, description="MQTT over TLS; none: plain TCP")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_password_source(self) -> BrokerConfig:
        given = [n for n in ("password", "password_file", "password_env") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of password, password_file, password_env (got {', '.join(given)})")
        return self

    def secret(self) -> str | None:
        """The password from wherever the config says it is (a 0600 file, the environment or the config)."""
        if self.password_file is not None:
            return read_secret_file(self.password_file, "MQTT password")
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise CredentialError(f"MQTT password: environment variable {self.password_env} is not set")
            return value
        return self.password


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
