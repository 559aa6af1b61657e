"""What the API knows live: the last state of every device (from retained status and telemetry), and the fan-out
of events (readings, status changes, alert changes, command steps) to live-stream clients.

Updated from the MQTT network thread, read from request handlers: every access holds the cache's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from telemetry import DeviceStatus, PointQuality, Quality, Telemetry, Value


@dataclass(slots=True)
class DeviceState:
    site: str
    device: str
    profile: str = ""
    measurement: str = ""
    online: bool | None = None  # None: no status seen yet
    status_reason: str = ""
    status_ms: int | None = None
    last_seen_ms: int | None = None  # newest sample time (or status time, if newer)
    seq: int | None = None
    values: dict[str, Value] = field(default_factory=dict)
    times_ms: dict[str, int] = field(default_factory=dict)
    quality: dict[str, PointQuality] = field(default_factory=dict)  # only points that are not good
    units: dict[str, str] = field(default_factory=dict)

    @property
    def has_values(self) -> bool:
        return bool(self.values)

    @property
    def overall_quality(self) -> str:
        """The worst quality among the newest values: good, uncertain or bad."""
        worst = Quality.GOOD
        for pq in self.quality.values():
            if pq.q is Quality.BAD:
                return Quality.BAD.value
            worst = Quality.UNCERTAIN
        return worst.value

    def copy(self) -> DeviceState:
        return DeviceState(
            self.site,
            self.device,
            self.profile,
            self.measurement,
            self.online,
            self.status_reason,
            self.status_ms,
            self.last_seen_ms,
            self.seq,
            dict(self.values),
            dict(self.times_ms),
            dict(self.quality),
            dict(self.units),
        )


class LiveCache:
    """The last known state of each device, merged point by point from every telemetry message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceState] = {}

    def apply_telemetry(self, msg: Telemetry) -> DeviceState:
        with self._lock:
            state = self._devices.setdefault((msg.site, msg.device), DeviceState(msg.site, msg.device))
            state.profile = msg.profile
            state.measurement = msg.measurement
            state.seq = msg.seq
            state.units.update(msg.units)
            for sample in sorted(msg.samples, key=lambda s: s.ts):
                for point, value in sample.values.items():
                    if sample.ts < state.times_ms.get(point, -1):
                        continue  # an older sample redelivered late must not overwrite a newer value
                    state.values[point] = value
                    state.times_ms[point] = sample.ts
                    pq = sample.quality.get(point)
                    if pq is None:
                        state.quality.pop(point, None)
                    else:
                        state.quality[point] = pq
                state.last_seen_ms = max(state.last_seen_ms or 0, sample.ts)
            return state.copy()

    def apply_status(self, status: DeviceStatus) -> DeviceState:
        with self._lock:
            state = self._devices.setdefault((status.site, status.device), DeviceState(status.site, status.device))
            if state.status_ms is not None and status.ts < state.status_ms:
                return state.copy()
            state.profile = state.profile or status.profile
            state.online = status.online
            state.status_reason = status.reason
            state.status_ms = status.ts
            return state.copy()

    def get(self, site: str, device: str) -> DeviceState | None:
        with self._lock:
            state = self._devices.get((site, device))
            return None if state is None else state.copy()

    def devices(self, site: str | None = None) -> list[DeviceState]:
        with self._lock:
            return [s.copy() for (st, _), s in sorted(self._devices.items()) if site is None or st == site]

    def sites(self) -> list[str]:
        with self._lock:
            return sorted({site for site, _ in self._devices})

    def __len__(self) -> int:
        with self._lock:
            return len(self._devices)


@dataclass(frozen=True, slots=True)
class Event:
    """One live-stream event; ``area`` decides who may see it (None: unscoped users only)."""

    kind: str  # reading | status | alert | command
    area: str | None
    site: str | None
    data: dict[str, object]


@dataclass(slots=True)
class _Client:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event | None]
    accepts: Callable[[Event], bool]
    dropped: int = 0


class EventHub:
    """Fans events out to the live-stream clients; callable from any thread. A client too slow to take its
    events loses the oldest (counted), never blocks the MQTT thread."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._clients: dict[int, _Client] = {}
        self._next = 0
        self.published = 0
        self.dropped = 0

    def subscribe(self, accepts: Callable[[Event], bool]) -> tuple[int, asyncio.Queue[Event | None]]:
        """Register a client on the running loop; its events arrive on the returned queue."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self.queue_size)
        with self._lock:
            self._next += 1
            self._clients[self._next] = _Client(asyncio.get_running_loop(), queue, accepts)
            return self._next, queue

    def unsubscribe(self, client_id: int) -> None:
        with self._lock:
            self._clients.pop(client_id, None)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, event: Event) -> None:
        with self._lock:
            clients = list(self._clients.values())
        self.published += 1
        for client in clients:
            if client.accepts(event):
                with contextlib.suppress(RuntimeError):  # RuntimeError: that client's loop is closed
                    client.loop.call_soon_threadsafe(self._put, client, event)

    def close(self) -> None:
        """End every client's stream (on shutdown)."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            with contextlib.suppress(RuntimeError):
                client.loop.call_soon_threadsafe(self._put, client, None)

    def _put(self, client: _Client, event: Event | None) -> None:
        if client.queue.full():
            client.queue.get_nowait()
            client.dropped += 1
            self.dropped += 1
        client.queue.put_nowait(event)
