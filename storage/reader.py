"""Read telemetry back from InfluxDB 1.x over InfluxQL (``POST /query``): raw series, the latest values of each
device, a point's history downsampled to a chart's width, and the bucketed histories of a whole site in one query.

Storage schema (written by the bridge): one measurement per profile, tags ``site``, ``device``, ``profile`` and the
profile's static tags, one field per point; a point whose quality is not good carries two more fields,
``<point>.q`` (1 = uncertain, 2 = bad) and ``<point>.reason``. A point without ``.q`` is good (0).

Every statement is built by ``storage.influxql`` (names and values quoted, times as integers, functions from a
fixed list). On the v2 transport the same InfluxQL goes to 2.x's v1 compatibility API (3.x serves it natively).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import httpx
import orjson

from storage import influxql as ql
from storage.connection import InfluxConnection
from storage.influxql import AGGREGATES as _AGGREGATES
from storage.influxql import Aggregate
from storage.schema import DEVICE, QUALITY_SUFFIX, REASON_SUFFIX, SITE

FieldValue = float | int | bool | str | None
_EPOCHS = frozenset({"ns", "u", "ms", "s", "m", "h"})

_SECOND = 1000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
# Bucket widths a chart reader finds natural; past a week, whole weeks.
NICE_INTERVALS_MS: tuple[int, ...] = (
    _SECOND,
    5 * _SECOND,
    10 * _SECOND,
    30 * _SECOND,
    _MINUTE,
    5 * _MINUTE,
    15 * _MINUTE,
    30 * _MINUTE,
    _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    _DAY,
    7 * _DAY,
)


class QueryError(Exception):
    """InfluxDB refused a query; ``message`` is InfluxDB's own error text."""

    def __init__(self, message: str, *, status: int | None = None, query: str | None = None) -> None:
        super().__init__(f"InfluxDB query failed ({status or 'statement'}): {message}")
        self.message = message
        self.status = status
        self.query = query


class QueryUnavailableError(QueryError):
    """InfluxDB could not be reached or answered 5xx: worth retrying later, unlike a plain ``QueryError``."""


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[object]]

    def rows(self) -> list[dict[str, object]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.values]


@dataclass(frozen=True, slots=True)
class LatestRow:
    """The newest value of each field of one device. ``time_ms`` is the newest of ``times_ms``."""

    site: str
    device: str
    time_ms: int
    values: dict[str, FieldValue]
    times_ms: dict[str, int]
    quality: dict[str, int] = field(default_factory=dict)  # only with_quality: 0 good, 1 uncertain, 2 bad
    reasons: dict[str, str] = field(default_factory=dict)  # only with_quality, for fields that are not good


@dataclass(frozen=True, slots=True)
class Point:
    """One raw row, or one bucket (``time_ms`` is the bucket's start) of a downsampled history."""

    time_ms: int
    values: dict[str, FieldValue]
    quality: dict[str, int] = field(default_factory=dict)  # only with_quality; in a bucket, the worst


def bucket_count(start_ms: int, end_ms: int, interval_ms: int) -> int:
    """How many ``GROUP BY time(interval)`` buckets (aligned to the epoch, as InfluxDB does) ``[start, end)`` spans."""
    return (end_ms - 1) // interval_ms - start_ms // interval_ms + 1


def choose_interval_ms(start_ms: int, end_ms: int, max_points: int) -> int:
    """The smallest nice interval whose buckets over ``[start_ms, end_ms)`` number at most ``max_points``."""
    if end_ms <= start_ms:
        raise ValueError(f"end_ms ({end_ms}) must be after start_ms ({start_ms})")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    for interval in NICE_INTERVALS_MS:
        if bucket_count(start_ms, end_ms, interval) <= max_points:
            return interval
    week = NICE_INTERVALS_MS[-1]
    weeks = max(1, math.ceil((end_ms - start_ms) / (max_points - 1) / week))
    while bucket_count(start_ms, end_ms, weeks * week) > max_points:
        weeks += 1
    return weeks * week


def _field_value(value: object) -> FieldValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise QueryError(f"unexpected value in an InfluxDB answer: {value!r}")


def _quality(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _time(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise QueryError(f"expected an integer time (epoch=ms), got {value!r}")


class InfluxQuery:
    """Async InfluxQL reads from one database. Use as ``async with InfluxQuery(...) as q:`` or call ``aclose()``."""

    def __init__(self, connection: InfluxConnection) -> None:
        """A reader on ``connection`` (its credentials, time-out and TLS trust)."""
        self.connection = connection
        self.database = connection.database
        self.retention_policy = connection.retention_policy or None
        self._client = connection.http_client()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> InfluxQuery:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]:
        """Run one or more statements; the series of all of them, in order. Raises ``QueryError``."""
        return [series for statement in await self._statements(influxql, epoch) for series in statement]

    async def _statements(self, influxql: str, epoch: str = "ms") -> list[list[Series]]:
        if epoch not in _EPOCHS:
            raise ValueError(f"epoch must be one of {sorted(_EPOCHS)}, got {epoch!r}")
        try:
            response = await self._client.post("/query", data={"db": self.database, "q": influxql, "epoch": epoch})
        except httpx.TransportError as exc:
            raise QueryUnavailableError(f"{type(exc).__name__}: {exc}", query=influxql) from exc
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            message = str(error) if error else response.text[:500] or response.reason_phrase
            kind = QueryUnavailableError if response.status_code >= 500 else QueryError
            raise kind(message, status=response.status_code, query=influxql)
        statements: list[list[Series]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise QueryError(str(result["error"]), query=influxql)
            statements.append(
                [
                    Series(
                        name=str(s.get("name", "")),
                        tags={str(k): str(v) for k, v in (s.get("tags") or {}).items()},
                        columns=[str(c) for c in s.get("columns", [])],
                        values=[list(row) for row in s.get("values", [])],
                    )
                    for s in result.get("series", [])
                ]
            )
        return statements

    def source(self, measurement: str) -> str:
        """The measurement in this reader's retention policy, for ``storage.influxql.select``."""
        return ql.source(measurement, self.retention_policy)

    def sources(self, measurements: Sequence[str]) -> str:
        return ql.sources(measurements, self.retention_policy)

    async def ping(self) -> None:
        """A cheap statement: raises ``QueryUnavailableError`` / ``QueryError`` if InfluxDB does not answer it."""
        await self.query(ql.show_measurements(1))

    async def field_keys(self, measurement: str) -> list[str]:
        """The measurement's point fields (its ``.q``/``.reason`` quality fields left out)."""
        series = await self.query(ql.show_field_keys(self.source(measurement)))
        keys = [str(row[0]) for s in series for row in s.values]
        return [k for k in keys if not _is_quality_field(k, keys)]

    async def latest(
        self,
        measurement: str,
        *,
        site: str | None = None,
        device: str | None = None,
        fields: Sequence[str] | None = None,
        with_quality: bool = False,
    ) -> list[LatestRow]:
        """The newest value (and its time) of each field, per device; all fields of the measurement by default.

        With ``with_quality`` a field's quality is that of its newest value: the newest ``<field>.q`` counts only
        when it has the same time as the newest value (the bridge writes ``.q`` only for points that are not good).
        """
        wanted = list(fields) if fields is not None else await self.field_keys(measurement)
        if not wanted:
            return []
        selected = [*wanted]
        if with_quality:
            selected += [f + suffix for f in wanted for suffix in (QUALITY_SUFFIX, REASON_SUFFIX)]
        where = _where(site=site, device=device)
        source = self.source(measurement)
        statements = ql.statements(
            [ql.select([ql.call("last", f)], source, where, group_by=(SITE, DEVICE)) for f in selected]
        )
        # (site, device) -> field -> (time, value)
        found: dict[tuple[str, str], dict[str, tuple[int, object]]] = {}
        for name, series_list in zip(selected, await self._statements(statements), strict=True):
            for s in series_list:
                for row in s.values:
                    key = (s.tags.get(SITE, ""), s.tags.get(DEVICE, ""))
                    found.setdefault(key, {})[name] = (_time(row[0]), row[1])
        return [
            _latest_row(site_, device_, got, wanted, with_quality) for (site_, device_), got in sorted(found.items())
        ]

    async def history(
        self,
        measurement: str,
        *,
        device: str,
        fields: Sequence[str],
        start_ms: int,
        end_ms: int,
        site: str | None = None,
        max_points: int = 500,
        aggregate: Aggregate = "mean",
        with_quality: bool = False,
    ) -> list[Point]:
        """Values of ``fields`` of one device in ``[start_ms, end_ms)``, oldest first, at most ``max_points``.

        Raw rows when the range holds at most ``max_points`` of them; otherwise ``aggregate`` per bucket of the
        smallest nice interval (1s, 5s, … 1h, … 7d) giving at most ``max_points`` buckets, empty buckets left out.
        Use ``aggregate="last"`` (or ``first``/``count``) for bool and string fields.
        """
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {sorted(_AGGREGATES)}, got {aggregate!r}")
        if not fields:
            raise ValueError("fields must name at least one field")
        interval = choose_interval_ms(start_ms, end_ms, max_points)  # validates the range and max_points first
        selected = [*fields, *(f + QUALITY_SUFFIX for f in fields)] if with_quality else list(fields)
        where = _where(site=site, device=device, start_ms=start_ms, end_ms=end_ms)
        source = self.source(measurement)
        raw = await self.query(ql.select([ql.ident(f) for f in selected], source, where, limit=int(max_points) + 1))
        points = [p for s in raw for p in _points(s, fields, with_quality)]
        if len(points) > max_points:
            buckets = await self.query(
                ql.select(
                    _bucket_columns(aggregate, fields, with_quality), source, where, every_ms=interval, fill_none=True
                )
            )
            points = [p for s in buckets for p in _points(s, fields, with_quality)]
        return points

    async def site_history(
        self,
        measurement: str,
        *,
        site: str,
        fields: Sequence[str],
        start_ms: int,
        end_ms: int,
        max_points: int = 500,
        aggregate: Aggregate = "mean",
        devices: Collection[str] | None = None,
        with_quality: bool = False,
        interval_ms: int | None = None,
    ) -> dict[str, list[Point]]:
        """Bucketed values of ``fields`` of every device of ``site`` (or only ``devices``) in ``[start_ms, end_ms)``,
        in ONE InfluxQL query; per device oldest first and at most ``max_points``.

        Always ``aggregate`` per bucket of ``choose_interval_ms(start_ms, end_ms, max_points)``, empty buckets left
        out: raw rows are never fetched, even when a device holds fewer than ``max_points`` of them (unlike
        ``history``, which would cost a second query per device to find that out). Use ``aggregate="last"`` for
        bool and string fields. Keys: each of ``devices`` (an empty list when it has no data), or, with
        ``devices=None``, every device with data in the range. With ``with_quality`` a bucket's quality is the
        worst of its values. ``interval_ms`` imposes the bucket width (a part of a longer range, whose buckets must be
        those of the whole: storage.history_cache); it must still give at most ``max_points`` buckets.
        """
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {sorted(_AGGREGATES)}, got {aggregate!r}")
        if not fields:
            raise ValueError("fields must name at least one field")
        if isinstance(devices, str):
            raise TypeError("devices must be a collection of device ids, not one str")
        if devices is not None and not devices:
            raise ValueError("devices must name at least one device, or be None for every device of the site")
        interval = choose_interval_ms(start_ms, end_ms, max_points)  # validates the range and max_points first
        if interval_ms is not None:
            if interval_ms < interval:
                raise ValueError(f"interval_ms {interval_ms} gives more than max_points ({max_points}) buckets")
            interval = interval_ms
        columns = _bucket_columns(aggregate, fields, with_quality)
        where = _where(site=site, devices=devices, start_ms=start_ms, end_ms=end_ms)
        # LIMIT is per series (per device here); the interval already bounds the buckets, this only makes it certain.
        series = await self.query(
            ql.select(
                columns,
                self.source(measurement),
                where,
                group_by=(DEVICE,),
                every_ms=interval,
                fill_none=True,
                limit=int(max_points),
            )
        )
        out: dict[str, list[Point]] = {d: [] for d in sorted(devices)} if devices is not None else {}
        for s in series:
            out.setdefault(s.tags.get(DEVICE, ""), []).extend(_points(s, fields, with_quality))
        return dict(sorted(out.items()))


def _is_quality_field(key: str, keys: Collection[str]) -> bool:
    return any(key.endswith(suffix) and key[: -len(suffix)] in keys for suffix in (QUALITY_SUFFIX, REASON_SUFFIX))


def _bucket_columns(aggregate: Aggregate, fields: Sequence[str], with_quality: bool) -> list[str]:
    columns = [ql.call(aggregate, f) for f in fields]
    if with_quality:  # a bucket's quality is the worst of its values
        columns += [ql.call("max", f + QUALITY_SUFFIX) for f in fields]
    return columns


def _where(
    *,
    site: str | None = None,
    device: str | None = None,
    devices: Collection[str] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[str]:
    terms = []
    if site is not None:
        terms.append(ql.eq(SITE, site))
    if device is not None:
        terms.append(ql.eq(DEVICE, device))
    if devices:
        terms.append(ql.one_of(DEVICE, sorted(set(devices))))
    return terms + ql.time_range(start_ms, end_ms)


def _latest_row(
    site: str, device: str, got: dict[str, tuple[int, object]], wanted: list[str], with_quality: bool
) -> LatestRow:
    values = {f: _field_value(got[f][1]) for f in wanted if f in got}
    times = {f: got[f][0] for f in wanted if f in got}
    quality: dict[str, int] = {}
    reasons: dict[str, str] = {}
    if with_quality:
        for f, t in times.items():
            q = got.get(f + QUALITY_SUFFIX)
            quality[f] = _quality(q[1]) if q is not None and q[0] == t else 0
            reason = got.get(f + REASON_SUFFIX)
            if quality[f] and reason is not None and reason[0] == t:
                reasons[f] = str(reason[1])
    return LatestRow(site, device, max(times.values(), default=0), values, times, quality, reasons)


_PLAIN = frozenset({float, int, bool, str, type(None)})


def _points(series: Series, fields: Sequence[str], with_quality: bool) -> list[Point]:
    """The rows of one series as points; a field the series lacks is ``None``.

    Columns are looked up once per series, not per row: for a 50-device day (~15 000 rows of 20 columns) a dict
    per row first took 120 ms, this 36 ms (measured on the ``lifeline bench api`` data).
    """
    index = {name: i for i, name in enumerate(series.columns)}
    if "time" not in index:
        raise QueryError(f"an InfluxDB answer without a time column: {series.columns}")
    t = index["time"]
    value_at = [(f, index.get(f)) for f in fields]
    quality_at = [(f, index.get(f + QUALITY_SUFFIX)) for f in fields]
    out = []
    for row in series.values:
        values = {f: None if i is None else _value(row[i]) for f, i in value_at}
        quality = (
            {f: 0 if i is None or row[i] is None else _quality(row[i]) for f, i in quality_at if values[f] is not None}
            if with_quality
            else {}
        )
        out.append(Point(_time(row[t]), values, quality))
    return out


def _value(value: object) -> FieldValue:
    # the common case without a call: orjson gives exactly these types
    return value if type(value) in _PLAIN else _field_value(value)  # type: ignore[return-value]
