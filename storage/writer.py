"""Write line protocol to InfluxDB, classify what goes wrong (after Telegraf's InfluxDB outputs), and retry by ONE
policy: every writer of the platform (the bridge's batches, the rules engine's derived series) goes through
``RetryingWriter``.

- success: 204 (1.x) / 204 (2.x)
- ``Rejected``: 400 (bad points, type conflicts, partial writes): some lines will never be accepted; the bridge
  finds them by bisection, dead-letters them with InfluxDB's reason and writes the rest. (InfluxDB 1.x stores the
  good lines of a partial write; writing them again is harmless: same series and time = same point.)
- ``TooLarge``: 413: the bridge splits the batch.
- ``Retry``: time-outs, connection errors, 429 and 5xx (honouring ``Retry-After``), 401/403 (credentials may be
  fixed while we wait): the same batch is written again after a backoff (``infra.backoff.Backoff``: exponential,
  capped, full jitter; ``Retry-After`` wins), for as long as it takes or at most ``max_attempts`` times
  (then ``Unavailable``).

``RetryingWriter.write_lines`` applies all three: 400 drops the refused lines and keeps the rest (found by
bisection), 413 splits the batch, retryable failures are retried. It returns the refused lines with InfluxDB's
reason; the caller decides what to do with them (the bridge dead-letters their messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import Field

from infra.backoff import Backoff, BackoffConfig
from storage import influxql as ql
from storage.connection import InfluxConfig, InfluxConnection

__all__ = [
    "Refusal",
    "Rejected",
    "Retry",
    "RetryConfig",
    "RetryingWriter",
    "TooLarge",
    "Unavailable",
    "V1Writer",
    "V2Writer",
    "WriteProblem",
    "WriteStats",
    "Writer",
    "classify",
    "make_writer",
]

log = logging.getLogger("lifeline.storage")


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


class Unavailable(WriteProblem):
    """Retried ``max_attempts`` times without success; ``last`` is the last ``Retry``."""

    def __init__(self, last: Retry, attempts: int) -> None:
        super().__init__(f"{last.reason} (after {attempts} attempts)", last.status)
        self.last = last


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
    """InfluxDB 1.x ``/write`` (database, retention policy, precision ms, optional credentials), or the config's
    write-only ``gateway`` when it has one (its own account; the gateway adds the writer's credentials)."""

    def __init__(self, config: InfluxConnection) -> None:
        self.config = config
        params = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        self._params = params
        gateway = config.gateway if isinstance(config, InfluxConfig) else None
        # credentials in a header, never in the URL
        self._client = gateway.http_client(config.timeout_s) if gateway is not None else config.http_client()
        self._where = gateway.url if gateway is not None else config.url

    async def create_database(self) -> None:
        resp = await self._client.post("/query", params={"q": ql.create_database(self.config.database)})
        if resp.status_code != 200:
            raise Retry(f"CREATE DATABASE failed: {_influx_error(resp.text)}", resp.status_code)

    async def write(self, body: bytes) -> None:
        try:
            resp = await self._client.post("/write", params=self._params, content=body)
        except httpx.TimeoutException as exc:
            raise Retry(f"time-out after {self.config.timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise Retry(f"cannot reach InfluxDB at {self._where}: {exc}") from exc
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
            url=config.url, token=config.token_value(), org=config.org, timeout=int(config.timeout_s * 1000)
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def _write_blocking(self, body: bytes) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(
                bucket=self.config.bucket,
                org=self.config.org,
                record=body,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
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


def make_writer(config: InfluxConnection) -> V1Writer | V2Writer:
    """The writer of the configured transport (a plain ``InfluxConnection`` is 1.x)."""
    if isinstance(config, InfluxConfig) and config.transport == "v2":
        return V2Writer(config)
    return V1Writer(config)


# --- the one retry policy --------------------------------------------------------------------------------------------
class RetryConfig(BackoffConfig):
    """How a write is retried: ``infra.backoff`` delays (``Retry-After`` wins), at most ``max_attempts`` tries."""

    initial_s: float = Field(default=0.5, gt=0, le=600, description="the first retry comes within this many seconds")
    max_attempts: int | None = Field(
        default=None, ge=1, description="none: until it succeeds (the bridge: the broker keeps the messages meanwhile)"
    )


class WriteStats(Protocol):
    """Where a ``RetryingWriter`` counts (the bridge passes its own counters)."""

    retries: int
    splits: int


@dataclass(slots=True)
class Counts:
    retries: int = 0  # attempts that will be tried again
    splits: int = 0  # batches halved to find refused lines


@dataclass(frozen=True, slots=True)
class Refusal:
    """A line InfluxDB refused for good: its index in the lines written, the line, InfluxDB's reason."""

    index: int
    line: str
    reason: str


class RetryingWriter:
    """A ``Writer`` with the one retry policy and the error classes applied (see the module docstring).

    A failing InfluxDB is logged once (and once when it accepts writes again); ``ok`` says which. ``sleep`` and
    ``rand`` are parameters so that tests control time and jitter."""

    def __init__(
        self,
        writer: Writer,
        config: RetryConfig | None = None,
        *,
        stats: WriteStats | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.writer = writer
        self.config = config or RetryConfig()
        self.stats: WriteStats = stats if stats is not None else Counts()
        self.ok = True
        self._sleep = sleep
        self._rand = rand

    async def retrying(self, call: Callable[[], Awaitable[None]], what: str) -> None:
        """Run ``call`` until it stops raising ``Retry`` (``Unavailable`` after ``max_attempts``)."""
        backoff = Backoff.of(self.config, self._rand)
        attempts = 0
        while True:
            attempts += 1
            try:
                await call()
            except Retry as exc:
                if self.config.max_attempts is not None and attempts >= self.config.max_attempts:
                    self._failing(what, exc)
                    raise Unavailable(exc, attempts) from exc
                self.stats.retries += 1
                self._failing(what, exc)
                delay = backoff.next()
                await self._sleep(exc.retry_after_s if exc.retry_after_s is not None else delay)
                continue
            if not self.ok:
                log.info("InfluxDB writes succeed again what=%s", what)
                self.ok = True
            return

    def _failing(self, what: str, exc: Retry) -> None:
        if self.ok:
            log.error(
                "InfluxDB write failing what=%s reason=%r action=retry with backoff (logged once)", what, exc.reason
            )
            self.ok = False

    async def write(self, body: bytes, what: str = "write") -> None:
        """One body, retried; ``Rejected`` and ``TooLarge`` rise."""
        await self.retrying(lambda: self.writer.write(body), what)

    async def write_lines(self, lines: Sequence[str], what: str | None = None) -> list[Refusal]:
        """Write ``lines`` (newline-free line protocol); the ones InfluxDB refuses for good, with its reason.

        One request in the common case; after a 400 or 413 the lines are halved until each refused line stands
        alone (the others written). ``Unavailable`` rises when ``max_attempts`` retries all failed."""
        if not lines:
            return []
        refused: list[Refusal] = []
        await self._part(lines, 0, len(lines), refused, what or f"write of {len(lines)} points")
        return refused

    async def _part(self, lines: Sequence[str], lo: int, hi: int, refused: list[Refusal], what: str) -> None:
        """Write ``lines[lo:hi]``; if refused, a single line is kept as refused, more are halved (bisection)."""
        try:
            await self.write("\n".join(lines[lo:hi]).encode(), what)
        except (Rejected, TooLarge) as exc:
            if hi - lo == 1:
                refused.append(Refusal(lo, lines[lo], exc.reason))
                return
            self.stats.splits += 1
            mid = (lo + hi) // 2
            await self._part(lines, lo, mid, refused, f"write of {mid - lo} points")
            await self._part(lines, mid, hi, refused, f"write of {hi - mid} points")

    async def close(self) -> None:
        await self.writer.close()
