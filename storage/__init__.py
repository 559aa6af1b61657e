"""InfluxDB end to end: the schema (measurement, tag, field and suffix names), the one line-protocol encoder, the
writers (1.x and 2.x/3.x) with one retry policy, the reader and InfluxQL building, and the storage side of the
derived series. Services import it; it imports only ``telemetry`` and ``infra``.

Public API:
    storage.schema                          every stored name (measurements, tags, fields, suffixes)
    LineEncoder, encode_row                 telemetry -> line protocol (cached, the bridge's hot path); one row
    InfluxConnection, InfluxConfig          where InfluxDB is, the account (a Secret), the write transport
    make_writer, V1Writer, V2Writer         InfluxDB 1.x /write; 2.x/3.x through influxdb-client
    RetryingWriter, RetryConfig             the one retry policy: 400 drop the refused lines and keep the rest,
                                            413 split, 429/5xx/unreachable retry (Backoff, Retry-After wins)
    derived_writer                          the writer of the derived series, on either transport
    InfluxQuery, QueryError, ...            reads over InfluxQL: latest values, downsampled history, raw queries
    storage.influxql                        statement building with quoting (the only place InfluxQL is written)
    storage.queries                         the named reads (window rules' statistics, environment indices)
    storage.means                           valid means: the minute-sum and stored-row reads, the stored rows
"""

from __future__ import annotations

from storage.connection import InfluxConfig, InfluxConnection
from storage.lineproto import LineEncoder, encode_row
from storage.reader import InfluxQuery, LatestRow, Point, QueryError, QueryUnavailableError, Series
from storage.writer import (
    Refusal,
    Rejected,
    Retry,
    RetryConfig,
    RetryingWriter,
    TooLarge,
    Unavailable,
    V1Writer,
    V2Writer,
    WriteProblem,
    Writer,
    make_writer,
)

__all__ = [
    "InfluxConfig",
    "InfluxConnection",
    "InfluxQuery",
    "LatestRow",
    "LineEncoder",
    "Point",
    "QueryError",
    "QueryUnavailableError",
    "Refusal",
    "Rejected",
    "Retry",
    "RetryConfig",
    "RetryingWriter",
    "Series",
    "TooLarge",
    "Unavailable",
    "V1Writer",
    "V2Writer",
    "WriteProblem",
    "Writer",
    "derived_writer",
    "encode_row",
    "make_writer",
]

# The derived series are written once an hour: a few quick tries, then the job's next run tries again.
DERIVED_RETRY = RetryConfig(initial_s=1.0, max_s=10.0, max_attempts=3)


def derived_writer(config: InfluxConnection, retry: RetryConfig = DERIVED_RETRY) -> RetryingWriter:
    """The writer of the derived series (valid means, indices) on the configured transport (1.x or 2.x/3.x)."""
    return RetryingWriter(make_writer(config), retry)
