"""How every service reaches InfluxDB 1.x's HTTP API: one connection model, one way to build its HTTP client.

The bridge writes with it (and adds its transport and 2.x fields), the rules service and the API read with it.
Credentials travel in a Basic ``Authorization`` header, never in the URL (which HTTP libraries and proxies log).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field


class InfluxConnection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(default="http://127.0.0.1:8086", description="http:// or https:// base URL of InfluxDB")
    database: str = Field(default="lifeline", min_length=1)
    retention_policy: str | None = Field(default=None, description="none or empty: the database's default")
    username: str | None = Field(default=None, description="none: no authentication")
    password: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    ca_file: Path | None = Field(default=None, description="https: the CA to verify InfluxDB by; none: the system's")

    def auth(self) -> httpx.BasicAuth | None:
        return httpx.BasicAuth(self.username, self.password or "") if self.username else None

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file is not None else True

    def http_client(self) -> httpx.AsyncClient:
        """An async client on ``url`` with this connection's credentials, time-out and TLS trust."""
        return httpx.AsyncClient(
            base_url=self.url.rstrip("/"), auth=self.auth(), timeout=self.timeout_s, verify=self.verify()
        )

    def read_only(self) -> InfluxConnection:
        """Only the fields a reader needs (a subclass's writer fields dropped)."""
        return InfluxConnection.model_validate(self.model_dump(include=set(InfluxConnection.model_fields)))
