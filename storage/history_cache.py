"""Settled buckets of site histories, kept so that a dashboard's 24 hours cost InfluxDB only their newest minutes.

``InfluxQuery.site_history`` aggregates every reading of the range inside InfluxDB (``GROUP BY time()`` of a width
that fits the chart): for a 50-device day that is ~500 ms of InfluxDB 1.6.7 per request on a 2-core machine, the
same work again at every refresh of every dashboard. Buckets are aligned to the epoch, so a bucket that closed a while
ago has the same value in every later answer: :class:`SiteHistoryCache` keeps those *settled* buckets and asks
InfluxDB only for the part that may still change (the buckets since the cached ones, and the first bucket when the
range starts inside it). The values are those of one uncached query over the whole range as long as no reading
arrives later than ``settle_ms`` after its sample time; a late one (an edge's outbox after an outage) shows once the
entry is refreshed, at most ``max_age_ms`` after the entry was read (refreshed in the background: the request that
finds the entry old is answered from it, not made to wait). Every answer says what came from the cache and how old it
is (:class:`CachedHistory`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from storage.influxql import Aggregate
from storage.reader import InfluxQuery, Point, choose_interval_ms

__all__ = ["CachedHistory", "SiteHistoryCache"]

_Key = tuple[str, str, tuple[str, ...] | None, tuple[str, ...], str, bool, int, int]


@dataclass(frozen=True, slots=True)
class CachedHistory:
    """A site history (``devices``: per device oldest first) and where it came from: buckets that start before
    ``cached_before_ms`` were read from InfluxDB at ``read_at_ms`` (None, None: the whole answer was read now)."""

    devices: dict[str, list[Point]]
    interval_ms: int
    cached_before_ms: int | None = None
    read_at_ms: int | None = None


@dataclass(slots=True)
class _Entry:
    lo_ms: int  # the first settled bucket held
    hi_ms: int  # the buckets in [lo_ms, hi_ms) are held (settled when read)
    read_at_ms: int
    buckets: dict[str, dict[int, Point]]  # device -> bucket start -> point
    size: int
    refresh: asyncio.Task[None] | None = field(default=None)


def _floor(t: int, step: int) -> int:
    return t // step * step


def _ceil(t: int, step: int) -> int:
    return -(-t // step) * step


class SiteHistoryCache:
    """Settled buckets of ``reader.site_history`` answers; at most ``max_points`` points held in all (least recently
    used entries go first). One instance per reader (the API's)."""

    def __init__(
        self,
        reader: InfluxQuery,
        *,
        settle_ms: int = 120_000,
        max_age_ms: int = 60_000,
        max_points: int = 200_000,
        min_buckets: int = 8,
    ) -> None:
        self.reader = reader
        self.settle_ms = settle_ms
        self.max_age_ms = max_age_ms
        self.max_points = max_points
        self.min_buckets = min_buckets  # fewer settled buckets than this: not worth an entry
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def site_history(
        self,
        measurement: str,
        *,
        site: str,
        fields: Sequence[str],
        start_ms: int,
        end_ms: int,
        now_ms: int,
        max_points: int = 500,
        aggregate: Aggregate = "mean",
        devices: Collection[str] | None = None,
        with_quality: bool = False,
    ) -> CachedHistory:
        """``reader.site_history`` with the same arguments, its settled buckets from the cache when held."""
        interval = choose_interval_ms(start_ms, end_ms, max_points)
        first = _ceil(start_ms, interval)  # the first bucket wholly inside the range
        settled = min(_floor(now_ms - self.settle_ms, interval), _floor(end_ms, interval))
        wanted = sorted(set(devices)) if devices is not None else None

        async def read(a: int, b: int) -> dict[str, list[Point]]:
            return await self.reader.site_history(
                measurement,
                site=site,
                fields=fields,
                start_ms=a,
                end_ms=b,
                max_points=max_points,
                aggregate=aggregate,
                devices=wanted,
                with_quality=with_quality,
                interval_ms=interval,
            )

        if settled - first < self.min_buckets * interval:  # a short or recent range: one query, nothing kept
            return CachedHistory(await read(start_ms, end_ms), interval)
        key: _Key = (
            measurement,
            site,
            tuple(wanted) if wanted is not None else None,
            tuple(fields),
            aggregate,
            with_quality,
            interval,
            max_points,
        )
        entry = self._entries.get(key)
        if entry is None or not entry.lo_ms <= first < entry.hi_ms <= _floor(end_ms, interval):
            self.misses += 1
            answer = await read(start_ms, end_ms)
            self._keep(key, _entry(answer, first, settled, now_ms))
            return CachedHistory(answer, interval)
        self.hits += 1
        self._entries.move_to_end(key)
        if now_ms - entry.read_at_ms >= self.max_age_ms and entry.refresh is None:
            entry.refresh = asyncio.ensure_future(self._refresh(key, read, first, settled, now_ms))
        head, tail = await asyncio.gather(
            read(start_ms, first) if start_ms < first else _nothing(), read(entry.hi_ms, end_ms)
        )
        names = set(head) | set(tail) | (set(wanted) if wanted is not None else set())
        names |= {d for d, held in entry.buckets.items() if any(first <= t < entry.hi_ms for t in held)}
        out: dict[str, list[Point]] = {}
        for d in sorted(names):
            held = entry.buckets.get(d, {})
            middle = [held[t] for t in sorted(held) if first <= t < entry.hi_ms]
            out[d] = [*head.get(d, []), *middle, *tail.get(d, [])][:max_points]
        return CachedHistory(out, interval, entry.hi_ms, entry.read_at_ms)

    async def _refresh(
        self,
        key: _Key,
        read: Callable[[int, int], Awaitable[dict[str, list[Point]]]],
        first: int,
        settled: int,
        now_ms: int,
    ) -> None:
        """Read the settled buckets again (readings that came late), then replace the entry. An error keeps the old
        one (the next read that finds it old tries again): a background refresh has nobody to raise to."""
        try:
            answer = await read(first, settled)
        except Exception:  # noqa: BLE001 - unreachable InfluxDB, refused query: the entry stays, marked not refreshing
            old = self._entries.get(key)
            if old is not None:
                old.refresh = None
            return
        self._keep(key, _entry(answer, first, settled, now_ms))

    def _keep(self, key: _Key, entry: _Entry) -> None:
        self._entries.pop(key, None)
        self._entries[key] = entry
        total = sum(e.size for e in self._entries.values())
        while total > self.max_points and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            total -= dropped.size


async def _nothing() -> dict[str, list[Point]]:
    return {}


def _entry(answer: dict[str, list[Point]], lo_ms: int, hi_ms: int, read_at_ms: int) -> _Entry:
    buckets = {d: {p.time_ms: p for p in points if lo_ms <= p.time_ms < hi_ms} for d, points in answer.items()}
    return _Entry(lo_ms, hi_ms, read_at_ms, buckets, sum(len(b) for b in buckets.values()))
