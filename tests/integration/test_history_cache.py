"""The API's cache of settled site-history buckets (storage.history_cache) against a real InfluxDB 1.6.7: the same
answer as one uncached query, only the newest buckets read again, late readings shown after a refresh, and an answer
that says what is cached and how old it is. Time is a parameter (``now_ms``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from storage.history_cache import CachedHistory, SiteHistoryCache
from storage.reader import InfluxQuery, Series
from tests.integration.influx_db import Db

pytestmark = pytest.mark.integration

T0 = 1_699_999_200_000  # a whole hour (UTC)
MINUTE = 60_000
HOURS = 6
FIELDS = ["ph", "temp"]


def _lines(devices: int, start_ms: int, end_ms: int, ph: float = 7.0) -> list[str]:
    return [
        f"water_quality,site=s1,device=wq-{d},profile=wq_probe ph={ph + (t // MINUTE) % 7 / 10},temp={d}.5 {t}"
        for d in range(devices)
        for t in range(start_ms, end_ms, MINUTE)
    ]


@pytest.fixture
def day(db: Db) -> Db:
    db.write(_lines(3, T0, T0 + HOURS * 60 * MINUTE))
    return db


def _read(
    cache: SiteHistoryCache, start: int, end: int, now: int, devices: list[str] | None = None
) -> Awaitable[CachedHistory]:
    return cache.site_history(
        "water_quality",
        site="s1",
        fields=FIELDS,
        start_ms=start,
        end_ms=end,
        now_ms=now,
        max_points=100,
        devices=devices,
        with_quality=True,
    )


def _plain(q: InfluxQuery, start: int, end: int) -> Awaitable[dict[str, list[object]]]:
    return q.site_history(  # type: ignore[return-value]
        "water_quality", site="s1", fields=FIELDS, start_ms=start, end_ms=end, max_points=100, with_quality=True
    )


END = T0 + HOURS * 60 * MINUTE - 7 * MINUTE  # the last readings are minutes old: the newest buckets not settled
START = END - 5 * 60 * MINUTE - 90_000  # inside a bucket: the first bucket is a partial one


def test_cached_answer_is_the_uncached_one_and_reads_only_the_new_part(day: Db) -> None:
    async def main(q: InfluxQuery) -> None:
        cache = SiteHistoryCache(q)
        statements: list[str] = []
        real = q._statements

        async def spy(influxql: str, epoch: str = "ms") -> list[list[Series]]:
            statements.append(influxql)
            return await real(influxql, epoch)

        q._statements = spy  # type: ignore[method-assign]
        first = await _read(cache, START, END, END)
        assert first.read_at_ms is None  # read whole, now
        assert first.cached_before_ms is None
        expected = await _plain(q, START, END)
        assert first.devices == expected
        assert sorted(expected) == ["wq-0", "wq-1", "wq-2"]
        statements.clear()
        second = await _read(cache, START, END, END + 5_000)
        assert second.devices == expected  # the same values
        assert second.read_at_ms == END
        assert second.cached_before_ms is not None
        assert second.cached_before_ms <= END - cache.settle_ms
        # two small reads: the partial first bucket and the unsettled newest minutes, never the whole range
        assert len(statements) == 2
        spans = sorted(s.split("time >= ")[1].split("ms")[0] for s in statements)
        assert int(spans[0]) == START
        assert int(spans[1]) == second.cached_before_ms

    day.run(main)


def test_a_late_reading_in_a_settled_bucket_shows_after_the_refresh(day: Db) -> None:
    late_t = START + 60 * MINUTE + 30_000  # a settled bucket's reading, arriving after the entry was read

    async def main(q: InfluxQuery) -> None:
        cache = SiteHistoryCache(q, max_age_ms=60_000)
        await _read(cache, START, END, END)
        day.write([f"water_quality,site=s1,device=wq-9,profile=wq_probe ph=1.0,temp=1.0 {late_t}"])
        young = await _read(cache, START, END, END + 10_000)
        assert "wq-9" not in young.devices  # the cached part is as old as it says
        assert young.read_at_ms == END
        old = await _read(cache, START, END, END + 61_000)  # the entry is old: answered from it, refreshed behind
        assert "wq-9" not in old.devices
        for _ in range(100):
            entry = next(iter(cache._entries.values()))
            if entry.read_at_ms != END:
                break
            await asyncio.sleep(0.05)
        after = await _read(cache, START, END, END + 62_000)
        assert after.read_at_ms == END + 61_000
        assert after.devices == await _plain(q, START, END)
        assert [p.values["ph"] for p in after.devices["wq-9"]] == [1.0]

    day.run(main)


def test_a_new_reading_in_the_unsettled_part_shows_at_once(day: Db) -> None:
    async def main(q: InfluxQuery) -> None:
        cache = SiteHistoryCache(q)
        await _read(cache, START, END, END)
        day.write([f"water_quality,site=s1,device=wq-0,profile=wq_probe ph=9.9,temp=9.9 {END - 30_000}"])
        again = await _read(cache, START, END, END + 1_000)
        assert again.read_at_ms == END  # cached, and yet the newest bucket holds the new reading
        assert again.devices == await _plain(q, START, END)

    day.run(main)


def test_a_recent_range_is_read_whole_and_not_kept(day: Db) -> None:
    async def main(q: InfluxQuery) -> None:
        cache = SiteHistoryCache(q)
        answer = await _read(cache, END - 90_000, END, END)  # no bucket of it is settled yet
        assert answer.read_at_ms is None
        assert len(cache) == 0
        assert answer.devices == await _plain(q, END - 90_000, END)

    day.run(main)


def test_entries_are_bounded_by_points(day: Db) -> None:
    async def main(q: InfluxQuery) -> None:
        cache = SiteHistoryCache(q, max_points=150)
        await _read(cache, START, END, END, ["wq-0", "wq-1"])
        await _read(cache, START, END, END, ["wq-2"])
        assert len(cache) == 1  # the first entry went to make room for the second
        assert (await _read(cache, START, END, END + 1_000, ["wq-2"])).read_at_ms == END

    day.run(main)
