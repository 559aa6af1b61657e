"""Metrics of every service through ``prometheus_client``, and the one ``/metrics`` HTTP endpoint they share.

Components keep their plain counters (an attribute increment on the hot path, no lock); each has a
``collect()`` that reads them at scrape time into ``prometheus_client`` metric families, which makes it a
``prometheus_client`` collector. ``registry(*collectors)`` gathers a service's, ``render`` writes the text
exposition, ``serve_metrics`` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

__all__ = [
    "CONTENT_TYPE",
    "Collecting",
    "Metric",
    "bound_port",
    "counter",
    "gauge",
    "registry",
    "render",
    "serve_metrics",
    "summary",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

Rows = float | Mapping[Any, float]  # a value, or label values (a tuple) -> value


class Collecting(Protocol):
    """What ``prometheus_client`` calls at each scrape."""

    def collect(self) -> Iterable[Metric]: ...


def _fill(family: CounterMetricFamily | GaugeMetricFamily, rows: Rows) -> Metric:
    if isinstance(rows, Mapping):
        for values, value in sorted(rows.items()):
            family.add_metric(list(values), float(value))
    else:
        family.add_metric([], float(rows))
    return family


def counter(name: str, doc: str, rows: Rows, labels: Sequence[str] = ()) -> Metric:
    """A counter family; ``name`` ends in ``_total`` (the exposition's name); ``rows``: a value, or label values ->
    value."""
    if not name.endswith("_total"):
        raise ValueError(f"a counter's name ends in _total: {name}")
    return _fill(CounterMetricFamily(name, doc or name, labels=list(labels)), rows)


def gauge(name: str, doc: str, rows: Rows, labels: Sequence[str] = ()) -> Metric:
    return _fill(GaugeMetricFamily(name, doc or name, labels=list(labels)), rows)


def summary(
    name: str,
    doc: str,
    *,
    quantiles: Mapping[float, float] | None = None,
    count: float | None = None,
    total: float | None = None,
) -> Metric:
    """A summary family: quantile samples and/or ``_count``/``_sum``."""
    family = Metric(name, doc or name, "summary")
    for q, value in (quantiles or {}).items():
        family.add_sample(name, {"quantile": f"{q:g}"}, value)
    if count is not None:
        family.add_sample(name + "_count", {}, count)
    if total is not None:
        family.add_sample(name + "_sum", {}, total)
    return family


def registry(*collectors: Collecting) -> CollectorRegistry:
    """A registry of these collectors (no process or platform collectors: each service says what it counts)."""
    reg = CollectorRegistry(auto_describe=False)
    for c in collectors:
        reg.register(c)  # type: ignore[arg-type,unused-ignore]  # any object with collect() is a collector
    return reg


def render(*collectors: Collecting) -> str:
    """The Prometheus text exposition of these collectors."""
    return generate_latest(registry(*collectors)).decode()


def families(*collectors: Collecting) -> Iterator[Metric]:
    for c in collectors:
        yield from c.collect()


async def serve_metrics(reg: CollectorRegistry, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Serve ``reg`` on every request to ``host:port`` (port 0: a free one; see :func:`bound_port`)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
            body = generate_latest(reg)
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\n".encode()
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


def bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
