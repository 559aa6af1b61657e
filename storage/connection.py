"""How every service reaches InfluxDB: one connection model, one way to build its HTTP client.

``InfluxConnection`` is what a reader needs (url, database, retention policy, account, time-out, TLS); the API
reads with it. ``InfluxConfig`` adds the write transport: InfluxDB 1.x ``/write``, or 2.x/3.x through
``influxdb-client`` (org, bucket, token). The bridge and the rules engine (which writes the derived series) take an
``InfluxConfig``. Reads are InfluxQL on ``/query`` on either transport (2.x serves it through its v1 compatibility
API, with the database mapped to the bucket; 3.x natively).

Least privilege on 1.x: a 1.x account with WRITE may also ``DELETE`` and ``DROP SERIES`` (measured on 1.6.7), so a
writing service holds no InfluxDB account that writes. Its ``gateway`` is a write-only path (``lifeline up``'s nginx,
:mod:`lifeline.write_gateway`) that accepts ``POST /write`` with the gateway's own account and adds the InfluxDB
writer's credentials itself; the service's InfluxDB account (``username``) only reads (docs/storage.md).

Credentials travel in an ``Authorization`` header, never in the URL (which HTTP libraries and proxies log). The
password and the token are ``infra.secret.Secret``: inline, ``{file: PATH}`` or ``{env: NAME}``, and never shown in a
``repr``, a log line or a dump. A plain string is still accepted (an inline secret).
"""

from __future__ import annotations

import ssl
from collections.abc import Generator
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from infra.secret import Secret

__all__ = ["InfluxConfig", "InfluxConnection", "WriteGateway"]


class InfluxConnection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(default="http://127.0.0.1:8086", description="http:// or https:// base URL of InfluxDB")
    database: str = Field(default="lifeline", min_length=1)
    retention_policy: str | None = Field(default=None, description="none or empty: the database's default")
    username: str | None = Field(default=None, description="none: no authentication")
    password: Secret | None = Field(default=None, description="a string, {file: PATH} or {env: NAME}")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    ca_file: Path | None = Field(default=None, description="https: the CA to verify InfluxDB by; none: the system's")

    def auth(self) -> httpx.Auth | None:
        """Basic authentication with the account, if there is one (the password is read now)."""
        if not self.username:
            return None
        password = self.password.reveal("InfluxDB password") if self.password is not None else ""
        return httpx.BasicAuth(self.username, password)

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file is not None else True

    def http_client(self) -> httpx.AsyncClient:
        """An async client on ``url`` with this connection's credentials, time-out and TLS trust."""
        return httpx.AsyncClient(
            base_url=self.url.rstrip("/"), auth=self.auth(), timeout=self.timeout_s, verify=self.verify()
        )

    def read_only(self) -> InfluxConnection:
        """Only the fields a reader needs (a subclass's writer fields dropped)."""
        return InfluxConnection.model_validate({name: getattr(self, name) for name in InfluxConnection.model_fields})


class _TokenAuth(httpx.Auth):
    """InfluxDB 2.x/3.x: ``Authorization: Token <token>``."""

    def __init__(self, token: str) -> None:
        self._header = f"Token {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class WriteGateway(BaseModel):
    """A path that only accepts writes (``POST /write``), with an account of its own that is not an InfluxDB one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http:// or https:// base URL of the gateway")
    username: str = Field(min_length=1)
    password: Secret = Field(description="a string, {file: PATH} or {env: NAME}")
    ca_file: Path | None = Field(default=None, description="https: the CA to verify the gateway by; none: the system's")

    def http_client(self, timeout_s: float) -> httpx.AsyncClient:
        auth = httpx.BasicAuth(self.username, self.password.reveal("write gateway password"))
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file is not None else True
        )
        return httpx.AsyncClient(base_url=self.url.rstrip("/"), auth=auth, timeout=timeout_s, verify=verify)


class InfluxConfig(InfluxConnection):
    """The connection and the write transport (the bridge's and the rules engine's ``influx`` section)."""

    transport: Literal["v1", "v2"] = Field(
        default="v1", description="v1: InfluxDB 1.x /write; v2: InfluxDB 2.x/3.x through influxdb-client"
    )
    # InfluxDB 2.x / 3.x
    org: str = ""
    bucket: str = ""
    token: Secret | None = Field(default=None, description="v2: a string, {file: PATH} or {env: NAME}")
    create_database: bool = Field(default=False, description="v1: CREATE DATABASE at start (local stacks)")
    gateway: WriteGateway | None = Field(
        default=None,
        description="v1: write through this write-only path (lifeline up's write gateway); the account above then "
        "only reads. none: write to url with the account above",
    )

    def auth(self) -> httpx.Auth | None:
        """v2 with a token and no account: the token (for InfluxQL reads through the v1 compatibility API)."""
        if self.transport == "v2" and self.token is not None and not self.username:
            return _TokenAuth(self.token.reveal("InfluxDB token"))
        return super().auth()

    def token_value(self) -> str:
        """The token, read now ("" without one)."""
        return self.token.reveal("InfluxDB token") if self.token is not None else ""
