"""Write line protocol to InfluxDB and classify what goes wrong (after Telegraf's InfluxDB outputs).

- success: 204 (1.x) / 204 (2.x)
- ``Rejected``: 400 (bad points, type conflicts, partial writes): some lines will never be accepted; the bridge
  finds them by bisection, dead-letters them with InfluxDB's reason and writes the rest. (InfluxDB 1.x stores the
  good lines of a partial write; writing them again is harmless: same series and time = same point.)
- ``TooLarge``: 413: the bridge splits the batch.
- ``Retry``: time-outs, connection errors, 429 and 5xx (honouring ``Retry-After``), 401/403 (credentials may be
  fixed while we wait): the same batch is written again after a backoff, for as long as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import httpx

from broker_bridge.config import InfluxConfig


class WriteProblem(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Rejected(WriteProblem):
    """InfluxDB refused some of the points for good."""


class TooLarge(WriteProblem):
    """The request body was too large."""


class Retry(WriteProblem):
    """Try the same write again later."""

    def __init__(self, reason: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(reason, status)
        self.retry_after_s = retry_after_s


class Writer(Protocol):
    async def write(self, body: bytes) -> None: ...

    async def close(self) -> None: ...


def classify(status: int, text: str, retry_after: str | None) -> WriteProblem | None:
    """What a response means for the batch; None for success."""
    if 200 <= status < 300:
        return None
    reason = _influx_error(text) or f"HTTP {status}"
    if status == 413:
        return TooLarge(reason, status)
    if status in {400, 422}:
        return Rejected(reason, status)
    wait = None
    if retry_after:
        with contextlib.suppress(ValueError):
            wait = float(retry_after)
    return Retry(reason, status, wait)


def _influx_error(text: str) -> str:
    import orjson

    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip()[:500]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:1000]
    return str(body)[:1000]


class V1Writer:
    """InfluxDB 1.x ``/write`` (database, retention policy, precision ms, optional credentials)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        params = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        self._params = params
        self._client = config.http_client()  # credentials in a header, never in the URL

    async def create_database(self) -> None:
        resp = await self._client.post("/query", params={"q": f'CREATE DATABASE "{self.config.database}"'})
        if resp.status_code != 200:
            raise Retry(f"CREATE DATABASE failed: {_influx_error(resp.text)}", resp.status_code)

    async def write(self, body: bytes) -> None:
        try:
            resp = await self._client.post("/write", params=self._params, content=body)
        except httpx.TimeoutException as exc:
            raise Retry(f"time-out after {self.config.timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise Retry(f"cannot reach InfluxDB at {self.config.url}: {exc}") from exc
        problem = classify(resp.status_code, resp.text, resp.headers.get("Retry-After"))
        if problem is not None:
            raise problem

    async def close(self) -> None:
        await self._client.aclose()


class V2Writer:
    """InfluxDB 2.x/3.x through ``influxdb-client`` (org, bucket, token); its blocking call runs in a thread."""

    def __init__(self, config: InfluxConfig) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self._client = InfluxDBClient(
            url=config.url, token=config.token or "", org=config.org, timeout=int(config.timeout_s * 1000)
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def _write_blocking(self, body: bytes) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(bucket=self.config.bucket, org=self.config.org, record=body,
                            write_precision=WritePrecision.MS)  # type: ignore[arg-type]  # fmt: skip
        except ApiException as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            problem = classify(int(exc.status or 0), str(exc.body or exc.reason or ""), retry_after)
            raise problem or Retry(f"HTTP {exc.status}") from exc
        except (HTTPError, OSError) as exc:
            raise Retry(f"cannot reach InfluxDB at {self.config.url}: {exc}") from exc

    async def write(self, body: bytes) -> None:
        await asyncio.to_thread(self._write_blocking, body)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def make_writer(config: InfluxConfig) -> V1Writer | V2Writer:
    return V1Writer(config) if config.transport == "v1" else V2Writer(config)
