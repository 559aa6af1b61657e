"""InfluxQL reads (storage.reader, storage.influxql) against a real InfluxDB 1.6.7: latest values, downsampled
history of a device and of a whole site, quality, quoting of hostile names and InfluxDB's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.connection import InfluxConnection
from storage.influxql import ident as quote_ident
from storage.influxql import string as quote_string
from storage.reader import (
    NICE_INTERVALS_MS,
    InfluxQuery,
    LatestRow,
    Point,
    QueryError,
    QueryUnavailableError,
    Series,
    bucket_count,
    choose_interval_ms,
)
from testing import Influxd, free_port
from tests.integration.influx_db import Db

pytestmark = pytest.mark.integration

T = TypeVar("T")
T0 = 1_699_999_200_000  # a whole hour (UTC), so bucket boundaries fall on it
MINUTE = 60_000


WQ = "water_quality,site=s1,device={device},profile=wq_probe,vendor=acme"


@pytest.fixture
def water(db: Db) -> Db:
    """wq-1: ph good, then bad (newest); temp good. wq-2: ph uncertain, then good (newest). wq-3 at site s2."""
    db.write(
        [
            WQ.format(device="wq-1") + f" ph=7.1 {T0}",
            WQ.format(device="wq-1") + f' ph=7.3,ph.q=2i,ph.reason="stuck" {T0 + 2000}',
            WQ.format(device="wq-1") + f" temp=20.5 {T0 + 1000}",
            WQ.format(device="wq-2") + f' ph=6.8,ph.q=1i,ph.reason="drift" {T0}',
            WQ.format(device="wq-2") + f" ph=6.9 {T0 + 3000}",
            WQ.replace("site=s1", "site=s2").format(device="wq-3") + f" ph=8.0 {T0 + 500}",
        ]
    )
    return db


# --- query ---------------------------------------------------------------------------------------------------------


def test_query_returns_typed_series(water: Db) -> None:
    series = water.run(lambda q: q.query('SELECT "ph" FROM "water_quality" WHERE "site" = \'s1\' GROUP BY "device"'))
    assert series == [
        Series("water_quality", {"device": "wq-1"}, ["time", "ph"], [[T0, 7.1], [T0 + 2000, 7.3]]),
        Series("water_quality", {"device": "wq-2"}, ["time", "ph"], [[T0, 6.8], [T0 + 3000, 6.9]]),
    ]
    assert series[0].rows()[1] == {"time": T0 + 2000, "ph": 7.3}


def test_query_of_several_statements_returns_all_series(water: Db) -> None:
    series = water.run(lambda q: q.query('SELECT last("ph") FROM "water_quality"; SHOW MEASUREMENTS', epoch="s"))
    assert [s.name for s in series] == ["water_quality", "measurements"]
    assert series[0].values == [[(T0 + 3000) // 1000, 6.9]]


@pytest.mark.parametrize(
    ("influxql", "status", "text"),
    [
        ("SELEC * FROM x", 400, "error parsing query: found SELEC"),
        ('SELECT "ph" FROM "water_quality" GROUP BY time(1m)', None, "GROUP BY requires at least one aggregate"),
        ('SELECT mean("ph.reason") FROM "water_quality"', None, "unsupported mean iterator type"),
    ],
    ids=["syntax", "statement-error", "mean-of-strings"],
)
def test_query_errors_carry_influxdb_text(water: Db, influxql: str, status: int | None, text: str) -> None:
    with pytest.raises(QueryError) as info:
        water.run(lambda q: q.query(influxql))
    assert not isinstance(info.value, QueryUnavailableError)
    assert info.value.status == status
    assert text in info.value.message
    assert info.value.query == influxql


def test_unknown_database_is_a_query_error(shared_influxdb: Influxd) -> None:
    async def main() -> list[Series]:
        async with InfluxQuery(InfluxConnection(url=shared_influxdb.url, database="no_such_db")) as q:
            return await q.query("SELECT * FROM m")

    with pytest.raises(QueryError, match="database not found: no_such_db"):
        asyncio.run(main())


def test_unreachable_server_is_worth_retrying() -> None:
    async def main() -> list[Series]:
        async with InfluxQuery(
            InfluxConnection(url=f"http://127.0.0.1:{free_port()}", database="lifeline", timeout_s=2)
        ) as q:
            return await q.query("SHOW DATABASES")

    with pytest.raises(QueryUnavailableError, match="ConnectError"):
        asyncio.run(main())


def test_bad_epoch_is_refused_before_any_io(db: Db) -> None:
    with pytest.raises(ValueError, match="epoch"):
        db.run(lambda q: q.query("SHOW DATABASES", epoch="weeks"))


def test_credentials_are_sent(tmp_path: Path) -> None:
    with Influxd(tmp_path / "influx", auth_enabled=True) as server:
        resp = httpx.post(
            f"{server.url}/query", data={"q": "CREATE USER \"reader\" WITH PASSWORD 'pw' WITH ALL PRIVILEGES"}
        )
        assert resp.status_code == 200

        async def main(**auth: str) -> list[Series]:
            async with InfluxQuery(InfluxConnection(url=server.url, database="_internal", **auth)) as q:
                return await q.query("SHOW DATABASES")

        assert asyncio.run(main(username="reader", password="pw"))[0].name == "databases"
        with pytest.raises(QueryError) as info:
            asyncio.run(main())
        assert info.value.status == 401
        with pytest.raises(QueryError, match="authorization failed"):
            asyncio.run(main(username="reader", password="wrong"))


# --- latest --------------------------------------------------------------------------------------------------------


def test_latest_gives_each_fields_newest_value_and_time_per_device(water: Db) -> None:
    rows = water.run(lambda q: q.latest("water_quality"))
    assert rows == [
        LatestRow("s1", "wq-1", T0 + 2000, {"ph": 7.3, "temp": 20.5}, {"ph": T0 + 2000, "temp": T0 + 1000}),
        LatestRow("s1", "wq-2", T0 + 3000, {"ph": 6.9}, {"ph": T0 + 3000}),
        LatestRow("s2", "wq-3", T0 + 500, {"ph": 8.0}, {"ph": T0 + 500}),
    ]


@pytest.mark.parametrize(
    ("site", "device", "devices"),
    [
        ("s1", None, ["wq-1", "wq-2"]),
        (None, "wq-3", ["wq-3"]),
        ("s2", "wq-1", []),
        (None, "nobody", []),
    ],
    ids=["by-site", "by-device", "site-and-device-disagree", "unknown-device"],
)
def test_latest_filters_by_site_and_device(water: Db, site: str | None, device: str | None, devices: list[str]) -> None:
    rows = water.run(lambda q: q.latest("water_quality", site=site, device=device))
    assert [r.device for r in rows] == devices


def test_latest_of_chosen_fields(water: Db) -> None:
    rows = water.run(lambda q: q.latest("water_quality", device="wq-1", fields=["temp", "missing"]))
    assert rows == [LatestRow("s1", "wq-1", T0 + 1000, {"temp": 20.5}, {"temp": T0 + 1000})]


def test_latest_quality_is_that_of_the_newest_value(water: Db) -> None:
    rows = {r.device: r for r in water.run(lambda q: q.latest("water_quality", with_quality=True))}
    assert rows["wq-1"].quality == {"ph": 2, "temp": 0}
    assert rows["wq-1"].reasons == {"ph": "stuck"}
    # wq-2's newest ph is good although an older one was uncertain
    assert rows["wq-2"].quality == {"ph": 0}
    assert rows["wq-2"].reasons == {}
    assert rows["wq-3"].quality == {"ph": 0}


def test_latest_of_an_unknown_measurement_is_empty(water: Db) -> None:
    assert water.run(lambda q: q.latest("no_such_measurement")) == []


def test_latest_through_a_named_retention_policy(water: Db) -> None:
    rows = water.run(lambda q: q.latest("water_quality", device="wq-3"), retention_policy="autogen")
    assert [r.values for r in rows] == [{"ph": 8.0}]


# --- history -------------------------------------------------------------------------------------------------------


def test_history_of_few_points_is_raw_and_end_exclusive(water: Db) -> None:
    points = water.run(
        lambda q: q.history("water_quality", device="wq-1", fields=["ph"], start_ms=T0, end_ms=T0 + 2000)
    )
    assert points == [Point(T0, {"ph": 7.1})]


def test_history_raw_rows_with_quality(water: Db) -> None:
    points = water.run(
        lambda q: q.history(
            "water_quality", device="wq-1", fields=["ph", "temp"], start_ms=T0, end_ms=T0 + MINUTE, with_quality=True
        )
    )
    assert points == [
        Point(T0, {"ph": 7.1, "temp": None}, {"ph": 0}),
        Point(T0 + 1000, {"ph": None, "temp": 20.5}, {"temp": 0}),
        Point(T0 + 2000, {"ph": 7.3, "temp": None}, {"ph": 2}),
    ]


@pytest.fixture
def hour_of_seconds(db: Db) -> Db:
    """pump-1 level = seconds since T0 (0..3599), one point a second; second 1800 is bad."""
    lines = [f"sluice,site=s1,device=pump-1,profile=gate level={i}.0 {T0 + i * 1000}" for i in range(3600)]
    lines[1800] = f"sluice,site=s1,device=pump-1,profile=gate level=1800.0,level.q=2i {T0 + 1800 * 1000}"
    db.write(lines)
    return db


@pytest.mark.parametrize(
    ("max_points", "interval_ms"),
    [(3600, None), (500, 10_000), (100, MINUTE), (59, 5 * MINUTE), (4, 15 * MINUTE)],
    ids=["raw", "10s", "1m", "5m", "15m"],
)
def test_history_downsamples_to_at_most_max_points(
    hour_of_seconds: Db, max_points: int, interval_ms: int | None
) -> None:
    points = hour_of_seconds.run(
        lambda q: q.history(
            "sluice", device="pump-1", fields=["level"], start_ms=T0, end_ms=T0 + 60 * MINUTE, max_points=max_points
        )
    )
    assert len(points) <= max_points
    if interval_ms is None:
        assert len(points) == 3600
        return
    assert len(points) == 60 * MINUTE // interval_ms
    step_s = interval_ms // 1000
    for n, point in enumerate(points):
        assert point.time_ms == T0 + n * interval_ms
        assert point.values == {"level": n * step_s + (step_s - 1) / 2}  # mean of n*step .. (n+1)*step-1


def test_history_buckets_a_misaligned_range_and_skips_empty_buckets(hour_of_seconds: Db) -> None:
    # 10:00:07 .. 10:20:07 with 100 points: 1m buckets would be 21 (the first and last partial), within 100;
    # 30s buckets would be 41, also within: 30s it is. Data only in the first 10 minutes → no empty buckets come back.
    start, end = T0 + 50 * MINUTE + 7000, T0 + 70 * MINUTE + 7000
    points = hour_of_seconds.run(
        lambda q: q.history(
            "sluice", device="pump-1", fields=["level"], start_ms=start, end_ms=end, max_points=100, aggregate="max"
        )
    )
    assert points[0] == Point(T0 + 50 * MINUTE, {"level": 3029.0})  # bucket start before the range, data within
    assert points[-1] == Point(T0 + 59 * MINUTE + 30_000, {"level": 3599.0})
    assert len(points) == 20


def test_history_bucket_quality_is_the_worst(hour_of_seconds: Db) -> None:
    points = hour_of_seconds.run(
        lambda q: q.history(
            "sluice",
            device="pump-1",
            fields=["level"],
            start_ms=T0 + 29 * MINUTE,
            end_ms=T0 + 32 * MINUTE,
            max_points=3,
            aggregate="last",
            with_quality=True,
        )
    )
    assert [(p.time_ms - T0) // MINUTE for p in points] == [29, 30, 31]
    assert [p.quality for p in points] == [{"level": 0}, {"level": 2}, {"level": 0}]
    assert [p.values for p in points] == [{"level": 1799.0}, {"level": 1859.0}, {"level": 1919.0}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_ms": T0, "end_ms": T0}, "end_ms"),
        ({"max_points": 1}, "max_points"),
        ({"aggregate": "mean); DROP DATABASE x; --"}, "aggregate"),
        ({"fields": []}, "fields"),
    ],
    ids=["empty-range", "one-point", "unknown-aggregate", "no-fields"],
)
def test_history_refuses_bad_arguments(db: Db, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"device": "d", "fields": ["v"], "start_ms": T0, "end_ms": T0 + MINUTE, **kwargs}
    with pytest.raises(ValueError, match=message):
        db.run(lambda q: q.history("m", **args))  # type: ignore[arg-type]


# --- site history --------------------------------------------------------------------------------------------------


@pytest.fixture
def site_hour(hour_of_seconds: Db) -> Db:
    """hour_of_seconds' pump-1, and at s1 pump-2 with level = 2 x seconds; pump-3 (level 5) at site s2."""
    lines = [f"sluice,site=s1,device=pump-2,profile=gate level={2 * i}.0 {T0 + i * 1000}" for i in range(3600)]
    hour_of_seconds.write([*lines, f"sluice,site=s2,device=pump-3,profile=gate level=5.0 {T0}"])
    return hour_of_seconds


def _one_statement(q: InfluxQuery, sent: list[str]) -> InfluxQuery:
    """``q``, recording every InfluxQL request it sends in ``sent``."""
    send = q._statements

    async def spy(influxql: str, epoch: str = "ms") -> list[list[Series]]:
        sent.append(influxql)
        return await send(influxql, epoch)

    q._statements = spy  # type: ignore[method-assign]
    return q


def test_site_history_of_two_devices_is_one_bounded_query(site_hour: Db) -> None:
    sent: list[str] = []
    got = site_hour.run(
        lambda q: _one_statement(q, sent).site_history(
            "sluice", site="s1", fields=["level"], start_ms=T0, end_ms=T0 + 60 * MINUTE, max_points=59
        )
    )
    assert len(sent) == 1
    assert ";" not in sent[0]
    assert 'GROUP BY time(5m), "device" fill(none)' in sent[0]
    assert list(got) == ["pump-1", "pump-2"]  # pump-3 is at another site
    for factor, device in ((1, "pump-1"), (2, "pump-2")):
        points = got[device]
        assert len(points) == 12 <= 59
        for n, point in enumerate(points):  # mean of 300 n .. 300 n + 299 seconds, times the device's factor
            assert point == Point(T0 + n * 5 * MINUTE, {"level": factor * (300 * n + 149.5)})


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (None, {"pump-1": 60, "pump-2": 60}),
        (["pump-2"], {"pump-2": 60}),
        (["pump-2", "pump-2"], {"pump-2": 60}),
        (["pump-1", "pump-3", "nobody"], {"nobody": 0, "pump-1": 60, "pump-3": 0}),
    ],
    ids=["every-device", "one-device", "repeated-device", "absent-and-other-site-devices-are-empty"],
)
def test_site_history_filters_devices(site_hour: Db, devices: Collection[str] | None, expected: dict[str, int]) -> None:
    got = site_hour.run(
        lambda q: q.site_history(
            "sluice", site="s1", fields=["level"], start_ms=T0, end_ms=T0 + 60 * MINUTE, max_points=60, devices=devices
        )
    )
    assert {device: len(points) for device, points in got.items()} == expected
    assert list(got) == sorted(expected)


def test_site_history_buckets_even_a_few_raw_rows(water: Db) -> None:
    # four ph values in a minute, max_points 2: 30 s buckets, where history() would give the raw rows
    got = water.run(
        lambda q: q.site_history(
            "water_quality", site="s1", fields=["ph"], start_ms=T0, end_ms=T0 + MINUTE, max_points=2
        )
    )
    assert [(device, p.time_ms, sorted(p.values)) for device, points in got.items() for p in points] == [
        ("wq-1", T0, ["ph"]),
        ("wq-2", T0, ["ph"]),
    ]
    assert [p.values["ph"] for points in got.values() for p in points] == pytest.approx([7.2, 6.85])


def test_site_history_bucket_quality_is_the_worst(site_hour: Db) -> None:
    got = site_hour.run(
        lambda q: q.site_history(
            "sluice",
            site="s1",
            fields=["level", "missing"],
            start_ms=T0 + 29 * MINUTE,
            end_ms=T0 + 32 * MINUTE,
            max_points=3,
            aggregate="last",
            with_quality=True,
        )
    )
    assert [p.quality for p in got["pump-1"]] == [{"level": 0}, {"level": 2}, {"level": 0}]
    assert [p.quality for p in got["pump-2"]] == [{"level": 0}] * 3
    assert [p.values for p in got["pump-2"]] == [
        {"level": 3598.0, "missing": None},
        {"level": 3718.0, "missing": None},
        {"level": 3838.0, "missing": None},
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"start_ms": T0, "end_ms": T0}, ValueError, "end_ms"),
        ({"max_points": 1}, ValueError, "max_points"),
        ({"aggregate": "mean); DROP DATABASE x; --"}, ValueError, "aggregate"),
        ({"fields": []}, ValueError, "fields"),
        ({"devices": []}, ValueError, "devices"),
        ({"devices": "pump-1"}, TypeError, "devices"),
    ],
    ids=["empty-range", "one-point", "unknown-aggregate", "no-fields", "no-devices", "one-str-for-devices"],
)
def test_site_history_refuses_bad_arguments(
    db: Db, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    args: dict[str, object] = {"site": "s", "fields": ["v"], "start_ms": T0, "end_ms": T0 + MINUTE, **kwargs}
    with pytest.raises(error, match=message):
        db.run(lambda q: q.site_history("m", **args))  # type: ignore[arg-type]


# --- choosing the interval -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span_ms", "max_points", "interval_ms"),
    [
        (499_000, 500, 1000),
        (3_600_000, 500, 10_000),
        (3_600_000, 60, MINUTE),
        (86_400_000, 500, 5 * MINUTE),
        (7 * 86_400_000, 500, 30 * MINUTE),
        (365 * 86_400_000, 500, 86_400_000),
        (365 * 86_400_000, 20, 3 * 7 * 86_400_000),
    ],
    ids=["under-500s", "hour", "hour-by-minute", "day", "week", "year", "year-in-20"],
)
def test_choose_interval_table(span_ms: int, max_points: int, interval_ms: int) -> None:
    assert choose_interval_ms(T0, T0 + span_ms, max_points) == interval_ms


@given(
    start=st.integers(min_value=0, max_value=4_000_000_000_000),
    span=st.integers(min_value=1, max_value=5 * 365 * 86_400_000),
    max_points=st.integers(min_value=2, max_value=5000),
)
def test_chosen_interval_fits_and_is_the_smallest_nice_one(start: int, span: int, max_points: int) -> None:
    interval = choose_interval_ms(start, start + span, max_points)
    assert bucket_count(start, start + span, interval) <= max_points
    smaller = [i for i in NICE_INTERVALS_MS if i < interval]
    if smaller:
        assert bucket_count(start, start + span, smaller[-1]) > max_points


# --- quoting -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "ident", "string"),
    [
        ("ph", '"ph"', "'ph'"),
        ('a"b', '"a\\"b"', "'a\"b'"),
        ("a'b", '"a\'b"', "'a\\'b'"),
        ("a\\b", '"a\\\\b"', "'a\\\\b'"),
        ("a\\", '"a\\\\"', "'a\\\\'"),
        ("a\nb", '"a\\nb"', "'a\\nb'"),
    ],
    ids=["plain", "double-quote", "single-quote", "backslash", "trailing-backslash", "newline"],
)
def test_quote_table(raw: str, ident: str, string: str) -> None:
    assert quote_ident(raw) == ident
    assert quote_string(raw) == string


def test_hostile_names_round_trip_and_do_not_inject(db: Db) -> None:
    # line protocol: measurement escapes comma and space; tag values and field keys comma, equals and space
    measurement = 'we"ird, m'
    device = "d'1\\x OR"
    field = 'p"h =x'
    db.write(
        [
            f'we"ird\\,\\ m,site=s1,device=d\'1\\x\\ OR p"h\\ \\=x=1.5 {T0}',
            f'we"ird\\,\\ m,site=s1,device=plain p"h\\ \\=x=9.0 {T0}',
        ]
    )
    rows = db.run(lambda q: q.latest(measurement, device=device))
    assert [(r.device, r.values) for r in rows] == [(device, {field: 1.5})]
    assert db.run(lambda q: q.field_keys(measurement)) == [field]
    points = db.run(lambda q: q.history(measurement, device=device, fields=[field], start_ms=T0, end_ms=T0 + MINUTE))
    assert points == [Point(T0, {field: 1.5})]
    for attack in ["x' OR \"device\" = 'plain", "x\\' OR \"device\" = \\'plain", "plain' OR '1'='1"]:
        assert db.run(lambda q, a=attack: q.latest(measurement, device=a)) == []  # type: ignore[misc]
    site = db.run(
        lambda q: q.site_history(
            measurement,
            site="s1",
            fields=[field],
            start_ms=T0,
            end_ms=T0 + MINUTE,
            devices=[device, "x' OR \"device\" = 'plain"],
        )
    )
    assert site == {device: [Point(T0, {field: 1.5})], "x' OR \"device\" = 'plain": []}
