"""A database of a test's own on the worker's shared InfluxDB, and a sink for rule transitions: what the query, the
scheduled-rules, the valid-means and the environment-index tests share."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from rules import Transition
from storage import InfluxConfig, InfluxConnection, InfluxQuery, RetryingWriter, derived_writer
from testing import Influxd

T = TypeVar("T")


class Db:
    """A database of this test's own on the worker's shared InfluxDB."""

    def __init__(self, server: Influxd) -> None:
        self.server = server
        self.name = f"t_{uuid.uuid4().hex[:12]}"
        server.create_database(self.name)

    def write(self, lines: list[str]) -> None:
        resp = httpx.post(
            f"{self.server.url}/write",
            params={"db": self.name, "precision": "ms"},
            content="\n".join(lines).encode(),
            timeout=10,
        )
        assert resp.status_code == 204, resp.text

    def run(self, call: Callable[[InfluxQuery], Awaitable[T]], *, retention_policy: str | None = None) -> T:
        """``call`` with a reader of this database, on an event loop of its own, within 30 s."""

        async def main() -> T:
            async with InfluxQuery(
                InfluxConnection(url=self.server.url, database=self.name, retention_policy=retention_policy)
            ) as q:
                return await asyncio.wait_for(call(q), 30)

        return asyncio.run(main())

    def run_writing(
        self, call: Callable[[InfluxQuery, RetryingWriter], Awaitable[T]], *, v2_url: str | None = None
    ) -> T:
        """``call`` with a reader and the derived series' writer (``storage.derived_writer``) of this database;
        with ``v2_url`` (a 2.x-compatible endpoint in front of this server) the writer uses the v2 transport."""

        async def with_writer(q: InfluxQuery) -> T:
            if v2_url is None:
                config = InfluxConfig(url=self.server.url, database=self.name)
            else:
                config = InfluxConfig(
                    url=v2_url,
                    database=self.name,
                    transport="v2",
                    org="lifeline",
                    bucket=f"{self.name}/autogen",
                    token="t0ken",
                )
            writer = derived_writer(config)
            try:
                return await call(q, writer)
            finally:
                await writer.close()

        return self.run(with_writer)


class Sink:
    """Where a rules engine under test sends its transitions."""

    def __init__(self) -> None:
        self.got: list[Transition] = []

    async def __call__(self, transitions: list[Transition]) -> None:
        self.got.extend(transitions)
