"""A database of a test's own on the worker's shared InfluxDB, and a sink for rule transitions: what the query, the
scheduled-rules, the valid-means and the environment-index tests share."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from infra.influx_config import InfluxConnection
from infra.influx_query import InfluxQuery
from rules import Transition
from rules.valid_means import InfluxWriter
from testing import Influxd

T = TypeVar("T")


class Db:
    """A database of this test's own on the worker's shared InfluxDB."""

    def __init__(self, server: Influxd) -> None:
        self.server = server
        self.name = f"t_{uuid.uuid4().hex[:12]}"
        server.create_database(self.name)

    def write(self, lines: list[str]) -> None:
        resp = httpx.post(f"{self.server.url}/write", params={"db": self.name, "precision": "ms"},
                          content="\n".join(lines).encode(), timeout=10)  # fmt: skip
        assert resp.status_code == 204, resp.text

    def run(self, call: Callable[[InfluxQuery], Awaitable[T]], *, retention_policy: str | None = None) -> T:
        """``call`` with a reader of this database, on an event loop of its own, within 30 s."""

        async def main() -> T:
            async with InfluxQuery(
                InfluxConnection(url=self.server.url, database=self.name, retention_policy=retention_policy)
            ) as q:
                return await asyncio.wait_for(call(q), 30)

        return asyncio.run(main())

    def run_writing(self, call: Callable[[InfluxQuery, InfluxWriter], Awaitable[T]]) -> T:
        """``call`` with a reader and a writer (derived series) of this database."""

        async def with_writer(q: InfluxQuery) -> T:
            writer = InfluxWriter(InfluxConnection(url=self.server.url, database=self.name))
            try:
                return await call(q, writer)
            finally:
                await writer.aclose()

        return self.run(with_writer)


class Sink:
    """Where a rules engine under test sends its transitions."""

    def __init__(self) -> None:
        self.got: list[Transition] = []

    async def __call__(self, transitions: list[Transition]) -> None:
        self.got.extend(transitions)
