"""What the API knows live: the last state of every device (from retained status and telemetry), and the fan-out
of events (readings, status changes, alert changes, command steps) to live-stream clients.

Updated from the MQTT network thread, read from request handlers: every access holds the cache's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from device_profiles import Profile
from device_profiles.validate import Registry, SiteLoader
from telemetry import AgentState, DeviceStatus, PointQuality, Quality, Telemetry, Value

log = logging.getLogger("lifeline.api")

ONLINE, STALE, OFFLINE, UNKNOWN = "online", "stale", "offline", "unknown"
DEVICE_STATES = (ONLINE, STALE, OFFLINE, UNKNOWN)
# why a device is in its state (codes the console translates: api/console/i18n)
STATE_REASONS = ("sampling", "no_sample", "agent_offline", "device_offline", "never_heard", "silent_too_long")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """No sample for ``stale_ms``: stale; for ``offline_ms``: offline."""

    stale_ms: int
    offline_ms: int


def thresholds_for(
    profile: Profile | None,
    *,
    stale_intervals: float = 3.0,
    min_stale_s: float = 5.0,
    hj212_stale_s: float = 180.0,
    offline_after_s: float = 300.0,
) -> Thresholds:
    """A device's thresholds from its profile: MQTT ``stale_after_s``; HJ 212 its upload period (``hj212_stale_s``,
    or ``stale_intervals`` periods if longer); Modbus and internal ``stale_intervals`` polls, never below
    ``min_stale_s``. Offline never comes before stale."""
    if profile is None:
        stale_s = max(min_stale_s, stale_intervals)
    elif profile.mqtt is not None:
        stale_s = profile.mqtt.stale_after_s
    elif profile.hj212 is not None:
        stale_s = max(hj212_stale_s, stale_intervals * profile.poll_interval_s)
    else:
        stale_s = max(min_stale_s, stale_intervals * profile.poll_interval_s)
    stale_ms = round(stale_s * 1000)
    return Thresholds(stale_ms, max(stale_ms, round(offline_after_s * 1000)))


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """A site agent's last word: birth (online) or death (its last will, or a clean stop)."""

    online: bool
    ts: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LiveState:
    """A device's honest state, as every view shows it."""

    state: str  # online | stale | offline | unknown
    reason: str  # one of STATE_REASONS
    since_ms: int | None
    last_sample_ms: int | None
    stale_after_ms: int
    offline_after_ms: int
    agent_online: bool | None

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "state_reason": self.reason,
            "since_ms": self.since_ms,
            "last_sample_ms": self.last_sample_ms,
            "stale_after_ms": self.stale_after_ms,
            "offline_after_ms": self.offline_after_ms,
            "agent_online": self.agent_online,
        }


def judge(
    device: DeviceState, agent: AgentInfo | None, limits: Thresholds, now_ms: int, online_since_ms: int | None = None
) -> LiveState:
    """The state of ``device`` at ``now_ms``: offline on its agent's death or its own offline status (newer than its
    newest sample), else by the age of its newest sample (its own time, not the time of receipt): online, stale
    after ``limits.stale_ms``, offline after ``limits.offline_ms``; unknown when nothing was heard."""
    last = device.last_seen_ms
    agent_online = None if agent is None else agent.online

    def out(state: str, reason: str, since: int | None) -> LiveState:
        return LiveState(state, reason, since, last, limits.stale_ms, limits.offline_ms, agent_online)

    if agent is not None and not agent.online:
        return out(OFFLINE, "agent_offline", agent.ts)
    if device.online is False and device.status_ms is not None and (last is None or device.status_ms >= last):
        return out(OFFLINE, "device_offline", device.status_ms)
    ref = last if last is not None else (device.status_ms if device.online else None)
    if ref is None:
        return out(UNKNOWN, "never_heard", None)
    silent = now_ms - ref
    if silent >= limits.offline_ms:
        return out(OFFLINE, "silent_too_long", ref + limits.offline_ms)
    if silent >= limits.stale_ms:
        return out(STALE, "no_sample", ref + limits.stale_ms)
    return out(ONLINE, "sampling", ref if online_since_ms is None else online_since_ms)


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


# Devices refused are logged once each; past this many different ones only the count goes on (a flood of invented
# ids must not grow memory or the log without end).
MAX_REFUSED_LOGGED = 10_000


def site_registry(site_paths: Sequence[Path], load_site: SiteLoader | None) -> Registry | None:
    """The deployment's site files read as the bridge reads them (``device_profiles.validate.Registry``: their
    devices, and the effective profile of each device whose site file changes its points); None without site files."""
    if not site_paths:
        return None
    if load_site is None:  # the API does not import the edge: `lifeline api` passes the edge's loader
        raise ValueError("the API's sites need a site loader (lifeline api passes the edge's)")
    return Registry.from_sites({}, list(site_paths), load_site)


def declared_devices(registry: Registry | None) -> dict[str, set[str]] | None:
    """Each site's devices from the deployment's site files (with the agent's own health pseudo-device); None
    without site files (``site_registry``)."""
    if registry is None:
        return None
    out: dict[str, set[str]] = {}
    for site, device in registry.devices or {}:
        out.setdefault(site, set()).add(device)
    return out


class LiveCache:
    """The last known state of each device, merged point by point from every telemetry message, and the agents'
    births and deaths; :meth:`live` judges a device's state at a given time (the clock is the caller's).

    Only known devices are taken (:meth:`admits`, issue 24: one edge account's telemetry of 2,000 invented devices
    made the device list 2,204 long). ``declared`` is the deployment's site files (site -> its devices): a declared
    site's devices are those and no others, whatever its agent's birth says; a site the files do not declare has the
    devices its agent's last birth names. Without site files (``declared`` None) a site whose agent has not been
    born yet takes any device, as the bridge does without ``validation.sites``."""

    def __init__(
        self,
        thresholds: Callable[[str], Thresholds] | None = None,
        declared: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceState] = {}
        self._agents: dict[str, AgentInfo] = {}
        self._declared = None if declared is None else {site: frozenset(d) for site, d in declared.items()}
        self._born: dict[str, frozenset[str]] = {}  # site -> the devices its agent's last birth names
        self._refused_logged: set[tuple[str, str]] = set()
        self.refused = 0  # telemetry and status messages of unknown devices (lifeline_api_unknown_device_messages)
        self._thresholds = thresholds or (lambda _profile: thresholds_for(None))
        self._judged: dict[tuple[str, str], LiveState] = {}  # the last judgement (keeps "online since")
        self._published: dict[tuple[str, str], tuple[str, str]] = {}  # state and reason last announced

    def apply_agent(self, agent: AgentState, received_ms: int) -> None:
        """Record a birth or death in the order they arrive, not by ts: the last will's payload is made when the
        agent connects, so its ts is older than the birth it follows. A death counts from ``received_ms``. The
        devices a birth lists become known (state unknown until they are heard)."""
        with self._lock:
            self._agents[agent.site] = AgentInfo(agent.online, agent.ts if agent.online else received_ms, agent.reason)
            if not agent.online:
                return
            self._born[agent.site] = frozenset(agent.devices)
            for device in agent.devices:  # a birth names its devices: known, maybe unheard
                if self._known(agent.site, device):
                    self._devices.setdefault((agent.site, device), DeviceState(agent.site, device))
                else:
                    self._refuse(agent.site, device, "its site's files do not declare it (a birth cannot add one)")

    def _known(self, site: str, device: str) -> bool:
        declared = None if self._declared is None else self._declared.get(site)
        if declared is not None:
            return device in declared
        born = self._born.get(site)
        if born is not None:
            return device in born
        return self._declared is None

    def _refuse(self, site: str, device: str, why: str) -> None:
        self.refused += 1
        key = (site, device)
        if key not in self._refused_logged and len(self._refused_logged) < MAX_REFUSED_LOGGED:
            self._refused_logged.add(key)
            log.warning("api ignores an unknown device site=%s device=%s why=%s (logged once)", site, device, why)

    def admits(self, site: str, device: str) -> bool:
        """Whether telemetry or status of ``device`` of ``site`` may be taken; a refusal is counted (``refused``)
        and logged once per device."""
        with self._lock:
            if self._known(site, device):
                return True
            if self._declared is not None and site in self._declared:
                why = "its site's files do not declare it"
            elif site in self._born:
                why = "its agent's birth does not name it"
            else:
                why = "neither the site files nor an agent's birth name its site"
            self._refuse(site, device, why)
            return False

    def agent(self, site: str) -> AgentInfo | None:
        with self._lock:
            return self._agents.get(site)

    def _judge(self, key: tuple[str, str], state: DeviceState, now_ms: int) -> LiveState:
        before = self._judged.get(key)
        since = before.since_ms if before is not None and before.state == ONLINE else None
        live = judge(state, self._agents.get(key[0]), self._thresholds(state.profile), now_ms, since)
        self._judged[key] = live
        return live

    def live(self, site: str, device: str, now_ms: int) -> LiveState | None:
        """The device's state at ``now_ms``, None for a device never heard of."""
        with self._lock:
            state = self._devices.get((site, device))
            return None if state is None else self._judge((site, device), state, now_ms)

    def changes(
        self, now_ms: int, site: str | None = None, device: str | None = None
    ) -> list[tuple[str, str, LiveState]]:
        """Devices (``device`` of ``site``, every device of ``site``, or all) whose state or reason changed since
        the last call: to announce."""
        out: list[tuple[str, str, LiveState]] = []
        with self._lock:
            if site is not None and device is not None:
                one = self._devices.get((site, device))
                items = [] if one is None else [((site, device), one)]
            else:
                items = sorted(kv for kv in self._devices.items() if site is None or kv[0][0] == site)
            for key, state in items:
                live = self._judge(key, state, now_ms)
                if self._published.get(key) != (live.state, live.reason):
                    self._published[key] = (live.state, live.reason)
                    out.append((key[0], key[1], live))
        return out

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
