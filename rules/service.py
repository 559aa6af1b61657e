"""The streaming rules service: live telemetry and device status in, alert transitions out.

It reads ``lifeline/v1/+/+/telemetry`` and ``.../status`` in its own shared-subscription group with a persistent
MQTT 5 session and manual acknowledgement. The transitions a batch of messages caused are stored by the sink (the
alert manager) in one transaction together with the engine's state after that batch (what changed since its last
whole state, which a periodic checkpoint saves: a batch costs what it changed); messages are acknowledged
only after that (or after a periodic checkpoint of the state when nothing changed). So the alert store and the
engine's saved state always agree: a crash replays the unacknowledged messages from that state, which produces
exactly the transitions that were not stored yet, neither fewer nor twice.

Every message is validated as the bridge validates it (``device_profiles.validate``): site and device are the
topic's (a body naming another is refused), the device must be one of the deployment's (``sites``; without them,
one its agent's birth listed, once a birth was seen) and its profile known, values of their declared types. A
refused message is counted, logged once per topic and kept in the engine's dead letters (source ``rules``): it
never makes an alert, so no alert is ever raised for a device that does not exist, and no deadman watches a device
that never sent a valid message.

The engine knows when it is itself cut off: while its broker link is down, and for ``reconnect_grace_s`` after it
is back (the backlog the edges kept arrives meanwhile), no site is judged lost by the wall clock; a device's
silence is judged by sample time in any case (``rules.evaluate``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from device_profiles import load_catalogue
from device_profiles.validate import (
    Invalid,
    Registry,
    SiteLoader,
    check_agent_state,
    check_status,
    check_telemetry,
)
from infra.deadletter import DeadLetterStore
from infra.metrics import Metric, counter, gauge, render
from infra.mqtt import Consumer, Incoming
from rules.config import STATE_NAME, RulesConfig, engine_filters
from rules.evaluate import Engine, Transition
from rules.schema import Rule
from telemetry import topics
from telemetry.wire import TelemetryLike, WireTelemetry

log = logging.getLogger("lifeline.rules")

__all__ = ["STATE_NAME", "RulesService", "Sink", "StateStore"]

# The alert manager: takes transitions and the engine's state to save with them (name, JSON-safe dict), in one
# transaction; raises when it could not save them.
Sink = Callable[[list[Transition], tuple[str, dict[str, Any]] | None], Awaitable[None]]


class StateStore(Protocol):
    """Where the engine's checkpoint lives (the alert store's named state blobs)."""

    def get_state(self, name: str) -> dict[str, Any] | None: ...

    def put_state(self, name: str, data: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class Counters:
    received: int = 0
    telemetry: int = 0
    status: int = 0
    invalid: int = 0
    dead_letters: int = 0
    dead_letters_lost: int = 0
    agent_states: int = 0
    other_partition: int = 0
    future_samples: int = 0
    transitions: int = 0
    checkpoints: int = 0
    acks_lost: int = 0
    evaluate_seconds: float = 0.0


class RulesService:
    def __init__(
        self,
        config: RulesConfig,
        rules: list[Rule],
        sink: Sink,
        state: StateStore,
        clock: Callable[[], float] = time.time,
        *,
        load_site: SiteLoader | None = None,
        registry: Registry | None = None,
    ) -> None:
        """``load_site`` reads the site files of ``config.sites`` (lifeline passes the edge's loader);
        ``registry`` replaces what they and the catalogue give (tests)."""
        self.config = config
        self.sink = sink
        self.state_store = state
        self.clock = clock
        part = config.partition
        # a partition has its own group and saved state: engines of other partitions never see its devices
        self.state_name = config.state_name
        self._owns = part.owns if part else None
        self.registry = registry or Registry.from_sites(load_catalogue(), list(config.sites), load_site)
        self.dead_letters = DeadLetterStore(config.dead_letter_path, source="rules")
        # the engine's whole state (``generation`` counts its saves), and what changed since it, saved with each
        # batch of transitions (``changes_name``): a batch costs what it changed, not the district's every state
        self.changes_name = f"{self.state_name}/changes"
        saved = state.get_state(self.state_name)
        changes = state.get_state(self.changes_name) if saved else None
        self._generation = int(saved.get("generation") or 0) if saved else 0
        # a whole state of this release is saved: a batch may save only what changed since (an older release's has
        # no generation: the first batch saves a whole one)
        self._based = saved is not None and saved.get("generation") is not None
        lag_ms = int(config.catchup_lag_s * 1000)
        if saved:
            self.engine = Engine.from_state(rules, saved, changes=changes, max_lag_ms=lag_ms)
        else:
            self.engine = Engine(rules, max_lag_ms=lag_ms)
        if saved:
            log.info("rules engine state restored active=%d", len(self.engine.active()))
        subscription = config.subscription.model_copy(update={"group": part.group}) if part else config.subscription
        self.consumer = Consumer(
            config.broker, subscription, topics=part.filters() if part else engine_filters(), name="rules"
        )
        self.intake_lag_s = 0.0  # how far behind the wall clock the last telemetry's newest sample was
        self.counters = Counters()
        self._unacked: list[Incoming] = []
        self._last_checkpoint = time.monotonic()
        self._bad_topics: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer.start()
        next_tick = time.monotonic() + self.config.tick_s
        try:
            while not stop.is_set():
                await self.consumer.wait(min(0.2, max(0.0, next_tick - time.monotonic())))
                await self.drain()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.config.tick_s
                    await self._emit(self.engine.tick(int(self.clock() * 1000), cut_off=self.cut_off()))
                if time.monotonic() - self._last_checkpoint >= self.config.checkpoint_s:
                    await self.checkpoint()
        finally:
            try:
                await self.checkpoint()  # may fail (the store away, the lease lost): the messages stay unacknowledged
            finally:
                await self.consumer.stop()
                self.dead_letters.close()

    def cut_off(self) -> bool:
        """The engine's own intake is down, or back for less than ``reconnect_grace_s`` (the backlog may still be
        on its way): a site's silence then says nothing about the site."""
        if not self.consumer.connected:
            return True
        return self.clock() - self.consumer.connected_since < self.config.reconnect_grace_s

    async def drain(self, limit: int = 5000) -> int:
        """Evaluate what has arrived (at most ``limit`` messages); return how many."""
        inbox = self.consumer.inbox
        out: list[Transition] = []
        n = 0
        started = time.perf_counter()
        while inbox and n < limit:
            item = inbox.popleft()
            n += 1
            out.extend(self._evaluate(item))
            self._unacked.append(item)
        self.counters.evaluate_seconds += time.perf_counter() - started
        await self._emit(out)
        if len(self._unacked) >= self.config.subscription.receive_maximum // 2:
            await self.checkpoint()  # hold no more than half the broker's window unacknowledged
        return n

    def _evaluate(self, item: Incoming) -> list[Transition]:
        self.counters.received += 1
        try:
            parsed = topics.parse(item.topic)
            if self._owns is not None and not self._owns(parsed.site):
                self.counters.other_partition += 1
                return []  # another partition's site: acknowledged with the rest, its own engine evaluates it
            kind = parsed.kind
            if kind is topics.Kind.TELEMETRY:
                msg = check_telemetry(item.topic, item.payload, self.registry)
                self._check_born(msg.site, msg.device, msg.profile)
                self.counters.telemetry += 1
                now_ms = int(self.clock() * 1000)
                horizon = now_ms + int(self.config.max_future_s * 1000)
                if any(s.ts > horizon for s in msg.samples):
                    msg = self._without_future(msg, horizon)
                    if not msg.samples:
                        return []
                self.intake_lag_s = (now_ms - max(s.ts for s in msg.samples)) / 1000
                return self.engine.observe(msg, now_ms)
            if kind is topics.Kind.STATUS:
                status = check_status(item.topic, item.payload, self.registry)
                self._check_born(status.site, status.device, status.profile)
                self.counters.status += 1
                return self.engine.status(status)
            if kind is topics.Kind.AGENT_STATE:
                agent = check_agent_state(item.topic, item.payload, self.registry)
                self.counters.agent_states += 1
                return self.engine.agent_state(agent, int(self.clock() * 1000))
            raise Invalid(f"topic {item.topic!r} is not one the rules engine reads")
        except (Invalid, topics.TopicError) as exc:
            self._refuse(item, str(exc))
        return []

    def _check_born(self, site: str, device: str, profile: str) -> None:
        """Without the deployment's site files, a site's devices are those its agent's birth listed (once one was
        seen), and the agent's own (a profile of protocol internal: its health)."""
        if self.registry.devices is not None:
            return  # the deployment's list was checked already
        born = self.engine.born_devices(site)
        if born is None or device in born or self.registry.profiles[profile].protocol == "internal":
            return
        raise Invalid(f"device {device!r} is not one that site {site!r}'s agent announced in its birth")

    def _refuse(self, item: Incoming, reason: str) -> None:
        """Count, keep in the dead letters, log once per topic."""
        self.counters.invalid += 1
        try:
            self.dead_letters.add(
                int(self.clock() * 1000), item.topic, item.payload, reason, stage="validate", replayable=False
            )
            self.counters.dead_letters += 1
        except sqlite3.Error as exc:  # the disk: counted as invalid all the same (no alert comes of it), and said
            self.counters.dead_letters_lost += 1
            if self.counters.dead_letters_lost in (1, 100) or self.counters.dead_letters_lost % 10_000 == 0:
                log.warning(
                    "rules cannot keep a dead letter topic=%s reason=%r lost=%d",
                    item.topic,
                    str(exc),
                    self.counters.dead_letters_lost,
                )
        if item.topic not in self._bad_topics and len(self._bad_topics) < 10_000:
            self._bad_topics.add(item.topic)
            log.warning(
                "rules refuse a message topic=%s reason=%s (kept in the dead letters; logged once per topic)",
                item.topic,
                reason,
            )

    def _without_future(self, msg: TelemetryLike, horizon: int) -> TelemetryLike:
        # A wrong edge clock must not push a device's state into the future, where it would ignore every later sample.
        keep = [s for s in msg.samples if s.ts <= horizon]
        self.counters.future_samples += len(msg.samples) - len(keep)
        if isinstance(msg, WireTelemetry):
            replaced: WireTelemetry = msgspec.structs.replace(msg, samples=keep)
            return replaced
        return msg.model_copy(update={"samples": keep})

    async def _emit(self, transitions: list[Transition]) -> None:
        """Hand transitions over together with the engine's state that produced them (saved in the same
        transaction), then acknowledge the messages that state includes."""
        if transitions:
            self.counters.transitions += len(transitions)
            if self._based:  # the saved whole state and these changes are what the engine knows now
                await self.sink(transitions, (self.changes_name, self.engine.changes(self._generation)))
            else:
                data, mark = self._whole()
                await self.sink(transitions, (self.state_name, data))
                self._saved(mark)
            self.counters.checkpoints += 1
            self._ack_all()

    async def checkpoint(self) -> None:
        """Save the engine's state, then acknowledge what it has seen. The save runs off the event loop (a SQLite
        write may wait seconds for the lock, and MQTT must go on meanwhile)."""
        self._last_checkpoint = time.monotonic()
        if not self._unacked and not self.engine.has_changes() and self.counters.checkpoints:
            return
        data, mark = self._whole()
        await asyncio.to_thread(self.state_store.put_state, self.state_name, data)
        self._saved(mark)
        self.counters.checkpoints += 1
        self._ack_all()

    def _whole(self) -> tuple[dict[str, Any], int]:
        """The engine's whole state to save as the next generation (older changes do not apply to it)."""
        data, mark = self.engine.snapshot()
        data["generation"] = self._generation + 1
        return data, mark

    def _saved(self, mark: int) -> None:
        self._generation += 1
        self._based = True
        self.engine.saved(mark)

    def _ack_all(self) -> None:
        for item in self._unacked:
            if not self.consumer.ack(item):
                self.counters.acks_lost += 1
        self._unacked.clear()

    def metrics_text(self) -> str:
        return render(self)

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        rows = [
            ("lifeline_rules_broker_connected", "gauge", int(self.consumer.connected)),
            ("lifeline_rules_messages_received_total", "counter", c.received),
            ("lifeline_rules_telemetry_total", "counter", c.telemetry),
            ("lifeline_rules_status_total", "counter", c.status),
            ("lifeline_rules_invalid_total", "counter", c.invalid),
            ("lifeline_rules_dead_letters_total", "counter", c.dead_letters),
            ("lifeline_rules_dead_letters_lost_total", "counter", c.dead_letters_lost),
            ("lifeline_rules_agent_states_total", "counter", c.agent_states),
            ("lifeline_rules_cut_off", "gauge", int(self.cut_off())),
            ("lifeline_rules_intake_lag_seconds", "gauge", self.intake_lag_s),
            ("lifeline_rules_future_samples_total", "counter", c.future_samples),
            ("lifeline_rules_transitions_total", "counter", c.transitions),
            ("lifeline_rules_checkpoints_total", "counter", c.checkpoints),
            ("lifeline_rules_evaluate_seconds_total", "counter", c.evaluate_seconds),
            ("lifeline_rules_active_alerts", "gauge", len(self.engine.active())),
            ("lifeline_rules_rules", "gauge", len(self.engine.rules)),
        ]
        for name, kind, value in rows:
            yield (counter if kind == "counter" else gauge)(name, "", value)
