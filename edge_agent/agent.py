"""The edge agent of one site: Modbus pollers, MQTT sensors, the outbox and the uplink, composed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version

from device_profiles import Profile
from edge_agent._outbox_writer import OutboxWriter, SampleJournal, make_outbox, new_run_id
from edge_agent.commands import CommandExecutor, make_controls
from edge_agent.config import HEALTH_DEVICE, HEALTH_PROFILE, DeviceConfig, LoadedSite
from edge_agent.deadletter import DeadLetters
from edge_agent.health import (
    BROKER_UPTIME_TOPIC,
    LinkWatch,
    OutboxCondition,
    OutboxFault,
    TakeoverWatch,
    free_bytes,
    modbus_values,
    parse_uptime,
    quota_problem,
    write_problem,
)
from edge_agent.modbus_poller import ModbusPoller, SampleSink, StatusSink
from edge_agent.mqtt_sensors import SensorHub
from edge_agent.outbox import Entry, OutMessage
from edge_agent.planner import plan
from edge_agent.stats import DeviceStats, collect
from edge_agent.workers import WorkerPool, resolve_workers, shard
from infra.clock import Clock, SystemClock
from infra.metrics import Metric, bound_port, registry, render, serve_metrics
from infra.mqtt import Link
from telemetry import (
    AgentState,
    ContractError,
    DeviceStatus,
    PointQuality,
    Sample,
    Value,
    decode_stored,
    encode,
    encode_telemetry,
    topics,
)

SENSOR_SESSION_EXPIRY_S = 7 * 86400  # how long the broker queues the sensors' readings for an edge that is away


log = logging.getLogger("lifeline.edge")

try:
    AGENT_VERSION = version("lifeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    AGENT_VERSION = "0+source"


class EdgeAgent:
    """Everything one site's agent does; ``run`` until the stop event is set."""

    def __init__(
        self,
        site: LoadedSite,
        *,
        clock: Clock | None = None,
        keep_lateness: int = 0,
    ) -> None:
        cfg = site.config
        self.site = site
        self.clock: Clock = clock or SystemClock()
        self.run_id = new_run_id(self.clock.time())
        self.outbox = make_outbox(cfg)
        self.stats: dict[str, DeviceStats] = {d.id: DeviceStats() for d in cfg.devices if d.enabled}
        self.seq: dict[str, int] = {}
        self._envelopes: dict[str, tuple[Profile, dict[str, str], str, dict[str, str], dict[str, str]]] = {}
        self.dead_letters = DeadLetters(cfg.dead_letter_path, source=f"edge/{cfg.site}")
        self.metrics_port: int | None = None  # known once running (metrics_port 0 picks a free one)
        self.health_unsent = 0  # health messages sent around a failing outbox that the link could not take
        enabled = [(d, site.profile_of(d)) for d in cfg.devices if d.enabled]
        modbus = [(d, p) for d, p in enabled if p.protocol == "modbus"]
        mqtt_devices = [(d, p) for d, p in enabled if p.protocol == "mqtt"]
        phased = [
            (d, p, (i / max(1, len(modbus))) * (d.poll_interval_s or p.poll_interval_s))
            for i, (d, p) in enumerate(modbus)
        ]
        # the gates are polled here, next to the command executor and its interlocks; the rest may go to workers
        shardable = [x for x in phased if not (x[0].control and x[0].control.enabled)]
        self.workers: WorkerPool | None = None
        n_workers = resolve_workers(cfg.workers, len(shardable))
        if n_workers > 1:
            self._profile_by_device = {d.id: p for d, p, _ in shardable}
            shards = shard(shardable, n_workers, cfg.modbus, cfg.site, keep_lateness)
            self.workers = WorkerPool(shards, self._on_worker_sample, self._on_worker_status, self.stats)
            in_workers = {d.id for d, _, _ in shardable}
            phased = [x for x in phased if x[0].id not in in_workers]
        self.pollers = [
            ModbusPoller(
                d,
                p,
                cfg.modbus,
                on_sample=self._sink(d, p),
                on_status=self._status_sink(d, p),
                clock=self.clock,
                stats=self.stats[d.id],
                site=cfg.site,
                phase_s=phase,
                keep_lateness=keep_lateness,
            )
            for d, p, phase in phased
        ]
        self._device_by_id = {d.id: d for d in cfg.devices}
        self.sensors = SensorHub(
            mqtt_devices, self._on_sensor_sample, self._on_sensor_status, self.dead_letters, self.clock, self.stats
        )
        gates, writers = make_controls([(d, p) for d, p in modbus if d.control and d.control.enabled], cfg.modbus)
        self.commands = CommandExecutor(
            cfg.site,
            gates,
            self._queue,
            self.dead_letters,
            self.clock,
            state_dir=cfg.state_dir,
            disabled=frozenset(d.id for d in cfg.devices if d.control and not (d.enabled and d.control.enabled)),
            keys=site.keys,
            writers=writers,
            delivery_window_s=cfg.command_delivery_window_s,
        )
        state_topic = topics.agent_state(cfg.site)
        self._stored_topic = topics.stored(cfg.site)
        self.uplink: Link[Entry] = Link(
            "uplink",
            cfg.broker,
            cfg.client_id,
            window=self.outbox,
            # made again on every (re)connect, QoS 1: commands, and what the centre has stored
            # and the broker's uptime: tells a session taken over from a broker restart (edge_agent.health)
            subscriptions=[topics.command_filter(cfg.site), self._stored_topic, BROKER_UPTIME_TOPIC],
            on_message=self._on_uplink_message,
            # the last will names no devices (the birth does): MQTT gives a will payload a two-byte length, at
            # most 65,535 bytes, which the ids of some 8,000 devices pass, and the client then cannot even connect
            will=OutMessage(state_topic, self._state(False, "connection lost", devices=False), retain=True),
            birth=lambda: OutMessage(state_topic, self._state(True, ""), retain=True),
            goodbye=lambda: OutMessage(state_topic, self._state(False, "stopped"), retain=True),
            clock=self.clock,
            on_state=self._on_uplink_state,
            v5=True,  # MQTT 5: the broker says why it ended a connection (a session taken over, 0x8E)
        )
        self.takeovers = TakeoverWatch(cfg.broker.where)
        self.journal = SampleJournal(cfg.sample_journal) if cfg.sample_journal is not None else None
        self.writer = OutboxWriter(
            self.outbox,
            self.uplink.notify,
            self.clock,
            cfg.site,
            self.journal,
            min_free_bytes=cfg.publish.outbox_min_free_bytes,
            health_interval_s=cfg.publish.health_interval_s,
        )
        self.sensor_link: Link[Entry] | None = None
        sensor_cfg = cfg.sensor_broker or cfg.broker
        self.sensor_watch = LinkWatch(sensor_cfg.where)
        if mqtt_devices:
            # a persistent session (fixed client id, clean start false, QoS 1 subscriptions): while the link is
            # away, a restarted broker (persistence on) keeps the subscriptions and queues the sensors' readings,
            # and hands them over when the link is back; it comes back within seconds, as the sensors do
            self.sensor_link = Link(
                "sensors",
                sensor_cfg,
                f"{cfg.client_id}-sensors",
                subscriptions=self.sensors.topics,
                on_message=self.sensors.handle,
                session_expiry_s=SENSOR_SESSION_EXPIRY_S,
                on_state=self._on_sensor_link,
                clock=self.clock,
            )

    # -- producing messages ----------------------------------------------------------------------------------
    def _state(self, online: bool, reason: str, devices: bool = True) -> bytes:
        cfg = self.site.config
        return encode(
            AgentState(
                site=cfg.site,
                agent=cfg.client_id,
                online=online,
                ts=int(self.clock.time() * 1000),
                version=AGENT_VERSION,
                devices=[d.id for d in cfg.devices if d.enabled] if devices else [],
                reason=reason,
                run=self.run_id,
            )
        )

    def publish_sample(self, device: DeviceConfig, profile: Profile, sample: Sample) -> None:
        """Wrap a sample in a telemetry message and queue it for the broker."""
        self._publish(device.id, device.tags, profile, sample.ts, sample.values, sample.quality)

    def _publish(
        self,
        device: str,
        tags: dict[str, str],
        profile: Profile,
        ts: int,
        values: dict[str, Value],
        quality: dict[str, PointQuality],
    ) -> None:
        self._queue(self._message(device, tags, profile, ts, values, quality))

    def _message(
        self,
        device: str,
        tags: dict[str, str],
        profile: Profile,
        ts: int,
        values: dict[str, Value],
        quality: dict[str, PointQuality],
    ) -> OutMessage:
        seq = self.seq.get(device, 0) + 1  # counts from 1 within this run (contract: Telemetry.seq, .run)
        self.seq[device] = seq
        envelope = self._envelopes.get(device)
        if envelope is None or envelope[0] is not profile or envelope[1] is not tags:
            # what every message of the device repeats, made once: its topic, tags and units
            envelope = (
                profile,
                tags,
                topics.telemetry(self.site.config.site, device),
                {**profile.tags, **tags},
                profile.units,
            )
            self._envelopes[device] = envelope
        _, _, topic, all_tags, units = envelope
        payload = encode_telemetry(
            self.site.config.site,
            device,
            profile.name,
            profile.measurement,
            seq,
            self.run_id,
            all_tags,
            units,
            ts,
            values,
            quality,
        )
        return OutMessage(topic, payload, key=(device, self.run_id, seq))

    def publish_health(self) -> None:
        """The agent's own health as telemetry of its pseudo-device (profile ``edge_agent``; rules/packs/edge.yaml).

        While the outbox file cannot be written the health goes straight to the broker (QoS 1, not kept: the next
        one supersedes it), since what waits for the file is not sent: so a full disk is still reported. So it goes
        while the fault is held too (a disk still short: the next write may fail)."""
        now_ms = int(self.clock.time() * 1000)
        message = self._message(
            HEALTH_DEVICE, {}, self.site.profiles[HEALTH_PROFILE], now_ms, self.health_values(now_ms), {}
        )
        if self.writer.failing or self.writer.health.fault is not None:
            if not self.uplink.publish_nowait(message.topic, message.payload):
                self.health_unsent += 1
            return
        self._queue(message)

    def outbox_condition(self) -> OutboxCondition:
        """The outbox as a health report says it: the fault latched since the last report (edge_agent.health
        OutboxFaultLatch), so calling this is a report."""
        o = self.outbox
        folder = o.store.folder
        free = free_bytes(folder)
        fault = self.writer.health.report(self.clock.monotonic(), free)
        return OutboxCondition(
            fault=fault,
            error=self.writer.health.error,
            folder=folder,
            free_bytes=free,
            unwritten=o.unwritten,
            memory_dropped=o.stats.memory_dropped,
            quota_full=o.quota_full,
            messages=len(o),
            max_messages=o.max_messages,
            bytes=o.bytes,
            max_bytes=o.max_bytes,
            dropped=o.stats.dropped,
        )

    def health_values(self, now_ms: int) -> dict[str, Value]:
        """The health points (device_profiles/catalogue/edge_agent.yaml) as of now."""
        o = self.outbox
        condition = self.outbox_condition()
        free = condition.free_bytes
        values: dict[str, Value] = {
            "outbox_messages": len(o),
            "outbox_bytes": o.bytes,
            "outbox_dropped": o.stats.dropped,
            "outbox_resent": o.stats.resent,
            "oldest_unconfirmed_age_s": round(o.oldest_age_s(now_ms), 3),
            "outbox_fault": condition.fault.value if condition.fault is not None else "",
            "outbox_write_failures": sum(self.writer.failures.values()),
            "outbox_unwritten": o.unwritten,
            "outbox_memory_dropped": o.stats.memory_dropped,
            "outbox_quota_full": o.quota_full,
            "outbox_write_problem": write_problem(condition),
            "outbox_quota_problem": quota_problem(condition),
            "uplink_sessions_taken_over": self.takeovers.count,
            "uplink_takeover_problem": self.takeovers.problem(self.clock.monotonic()),
        }
        if free is not None:
            values["outbox_disk_free_bytes"] = free
        values |= modbus_values(self.stats)  # each Modbus device's answers, exceptions, retries, last error
        if self.sensor_link is not None:
            w, now = self.sensor_watch, self.clock.monotonic()
            values |= {
                "sensor_readings_missed": self.sensors.readings_missed,
                "sensor_link_connected": w.connected,
                "sensor_link_down_s": round(w.down_s(now), 1),
                "sensor_link_losses": w.losses,
                "sensor_link_sessions_lost": w.sessions_lost,
                "sensor_link_problem": w.problem(now) if self._sensor_link_own_problem() else "",
            }
        return values

    def _on_uplink_state(self, up: bool) -> None:
        if up:
            return
        link = self.uplink
        if self.takeovers.connection_ended(self.clock.monotonic(), link.down_code, link.down_by_broker):
            self._log_takeover("the broker's DISCONNECT: Session taken over (0x8E)")

    def _on_broker_uptime(self, payload: bytes) -> None:
        uptime = parse_uptime(payload)
        if uptime is not None and self.takeovers.broker_uptime(uptime, self.clock.monotonic()):
            self._log_takeover(f"the broker closed the connection and did not restart (up {uptime} s)")

    def _log_takeover(self, reason: str) -> None:
        log.error(
            "uplink session taken over site=%s client_id=%s broker=%s reason=%r count=%d: another client connected "
            "with this edge's identity (its certificate and key, or password, are known elsewhere)",
            self.site.config.site,
            self.site.config.client_id,
            self.site.config.broker.where,
            reason,
            self.takeovers.count,
        )

    def _sensor_link_own_problem(self) -> bool:
        """Whether a sensor link that is down is a problem of its own: not while the one broker it shares with the
        uplink is away (a broker outage, which the centre sees by itself: no alert per edge for it)."""
        return self.site.config.sensor_broker is not None or self.uplink.connected

    def _on_sensor_link(self, up: bool) -> None:
        assert self.sensor_link is not None
        self.sensor_watch.changed(up, self.clock.monotonic(), self.sensor_link.session_present)
        self.sensors.link_changed(up)  # no sensor is judged quiet while the link cannot hear it

    def publish_status(self, device: DeviceConfig, profile: Profile, online: bool, reason: str) -> None:
        status = DeviceStatus(
            site=self.site.config.site,
            device=device.id,
            profile=profile.name,
            online=online,
            ts=int(self.clock.time() * 1000),
            reason=reason,
        )
        self._queue(OutMessage(topics.status(self.site.config.site, device.id), encode(status), retain=True))

    def _queue(self, message: OutMessage) -> None:
        self.outbox.put(message, int(self.clock.time() * 1000))
        self.writer.schedule()

    def flush(self) -> None:
        """Write what was queued now (the link sends only what is written); outside a loop, before returning."""
        self.writer.flush()

    def _on_uplink_message(self, topic: str, payload: bytes) -> None:
        if topic == BROKER_UPTIME_TOPIC:
            self._on_broker_uptime(payload)
            return
        if topic != self._stored_topic:
            self.commands.handle(topic, payload)
            return
        try:
            stored = decode_stored(payload, topic)
        except ContractError as exc:
            self.dead_letters.add(int(self.clock.time() * 1000), topic, payload, str(exc), stage="stored")
            return
        if stored.site != self.site.config.site:
            reason = f"Stored for site {stored.site!r} came on this site's topic {topic!r}"
            self.dead_letters.add(int(self.clock.time() * 1000), topic, payload, reason, stage="stored")
            return
        self.outbox.stored((r.device, r.run, r.first, r.last) for r in stored.ranges)
        self.writer.schedule()

    def _sink(self, device: DeviceConfig, profile: Profile) -> SampleSink:
        return lambda sample: self.publish_sample(device, profile, sample)

    def _status_sink(self, device: DeviceConfig, profile: Profile) -> StatusSink:
        return lambda online, reason: self.publish_status(device, profile, online, reason)

    def _on_worker_sample(
        self, device: str, ts: int, values: dict[str, Value], quality: dict[str, PointQuality]
    ) -> None:
        config = self._device_by_id[device]
        self._publish(device, config.tags, self._profile_by_device[device], ts, values, quality)

    def _on_worker_status(self, device: str, online: bool, reason: str) -> None:
        self.publish_status(self._device_by_id[device], self._profile_by_device[device], online, reason)

    def _on_sensor_sample(self, device: DeviceConfig, profile: Profile, sample: Sample) -> None:
        self.publish_sample(device, profile, sample)

    def _on_sensor_status(self, device: DeviceConfig, profile: Profile, online: bool, reason: str) -> None:
        self.publish_status(device, profile, online, reason)

    # -- running ---------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Poll, listen and publish until ``stop`` is set; then say goodbye and close everything."""
        cfg = self.site.config
        log.info(
            "edge agent starting site=%s modbus_devices=%d mqtt_sensors=%d controllable_gates=%d broker=%s:%d",
            cfg.site,
            len(self.pollers) + (self.workers.device_count if self.workers else 0),
            len(self.sensors.presence),
            len(self.commands.gates),
            cfg.broker.host,
            cfg.broker.port,
        )
        keys = self.site.keys
        if keys is None:  # secure by default: nothing proves a command came from the API
            log.warning(
                "commands refused: no keys configured site=%s controllable_gates=%d (set control_public_key "
                "and site_private_key; lifeline keys create)",
                cfg.site,
                len(self.commands.gates),
            )
        else:
            log.info("commands signed site=%s control_key=%s site_key=%s", cfg.site, keys.control.kid, keys.site.kid)
        if cfg.state_dir is None:
            log.warning(
                "outbox and command ids kept in memory only site=%s (set state_dir to keep them on disk "
                "across restarts)",
                cfg.site,
            )
        log.info("edge agent run=%s site=%s outbox_recovered=%d", self.run_id, cfg.site, self.outbox.recovered)
        self.commands.start()
        if self.workers is not None:
            self.workers.start()
            log.info(
                "modbus polling in %d worker processes site=%s devices_in_workers=%d",
                len(self.workers.workers),
                cfg.site,
                self.workers.device_count,
            )
        if self.sensor_link is not None:
            self.sensor_watch.down_since = self.clock.monotonic()  # down until its first connection
            self.sensors.link_changed(False)
        tasks = [asyncio.ensure_future(p.run()) for p in self.pollers]
        tasks.append(asyncio.ensure_future(self._watch_sensors()))
        tasks.append(asyncio.ensure_future(self._maintain()))
        links = [asyncio.ensure_future(self.uplink.run(stop))]
        if self.sensor_link is not None:
            links.append(asyncio.ensure_future(self.sensor_link.run(stop)))
        metrics = await self._serve_metrics() if cfg.metrics_port is not None else None
        try:
            await stop.wait()
        finally:
            for poller in self.pollers:
                poller.request_stop()
            if self.workers is not None:
                self.workers.close()
            await _cancel_all(tasks, "pollers", timeout_s=5.0)
            await self.commands.close()
            await self._drain(stop_wait_s=2.0)
            stop.set()
            await _cancel_all(links, "broker links", timeout_s=10.0, cancel=False)
            if metrics is not None:
                metrics.close()
            await self.writer.close()
            if self.journal is not None:
                self.journal.close()
            log.info(
                "edge agent stopped site=%s run=%s unconfirmed=%d unacknowledged=%d",
                cfg.site,
                self.run_id,
                len(self.outbox),
                self.outbox.unacked,
            )

    async def _drain(self, stop_wait_s: float) -> None:
        """Give the uplink a moment to send what is queued before the agent goes (the rest stays in the file)."""
        self.flush()
        deadline = self.clock.monotonic() + stop_wait_s
        while self.outbox.unacked and self.uplink.connected and self.clock.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # bounded: acknowledgements arrive from the link's thread

    async def _maintain(self) -> None:
        """Once a second: messages due again (no Stored in time), the outbox file; health at its interval."""
        interval = self.site.config.publish.health_interval_s
        next_health = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            if now >= next_health:
                next_health = now + interval
                self.publish_health()
            if self.outbox.tick(now):
                self.uplink.notify()  # due again: the sender may be waiting for a change
            if self.outbox.dirty:
                self.flush()
            await asyncio.sleep(min(1.0, max(0.01, next_health - now)))

    async def _watch_sensors(self) -> None:
        while True:
            self.sensors.check_stale()
            await asyncio.sleep(1.0)

    def metrics_text(self) -> str:
        return render(self)

    def collect(self) -> Iterator[Metric]:
        o = self.outbox.stats
        gauges = {
            "outbox_messages": float(len(self.outbox)),
            "outbox_bytes": float(self.outbox.bytes),
            "outbox_unacknowledged": float(self.outbox.unacked),
            "outbox_inflight": float(self.outbox.inflight),
            "outbox_queued_total": float(o.queued),
            "outbox_sent_total": float(o.sent),
            "outbox_acked_total": float(o.acked),
            "outbox_stored_total": float(o.stored),
            "outbox_resent_total": float(o.resent),
            "outbox_dropped_total": float(o.dropped),
            "outbox_unwritten": float(self.outbox.unwritten),
            "outbox_memory_dropped_total": float(o.memory_dropped),
            "outbox_quota_full": 1.0 if self.outbox.quota_full else 0.0,
            "outbox_write_failing": 1.0 if self.writer.failing else 0.0,
            "outbox_disk_full": 1.0 if self.writer.health.fault is OutboxFault.DISK_FULL else 0.0,
            **{f"outbox_{f.value}_total": float(n) for f, n in self.writer.failures.items()},
            "health_unsent_total": float(self.health_unsent),
            "dead_letters_total": float(self.dead_letters.count),
            "broker_connected": 1.0 if self.uplink.connected else 0.0,
            "uplink_sessions_taken_over_total": float(self.takeovers.count),
            **{f"commands_{name}_total": float(n) for name, n in self.commands.counts.items()},
        }
        if self.sensor_link is not None:
            w = self.sensor_watch
            gauges |= {
                "sensor_link_connected": 1.0 if w.connected else 0.0,
                "sensor_link_losses_total": float(w.losses),
                "sensor_link_sessions_lost_total": float(w.sessions_lost),
            }
        yield from collect(self.site.config.site, self.stats, gauges)

    async def _serve_metrics(self) -> asyncio.Server:
        port = self.site.config.metrics_port
        server = await serve_metrics(registry(self), port or 0)
        self.metrics_port = bound_port(server)
        log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics_port)
        return server


async def _cancel_all(tasks: Sequence[asyncio.Future[None]], what: str, timeout_s: float, cancel: bool = True) -> None:
    """End ``tasks`` (cancelling them first, or letting them finish) and wait at most ``timeout_s``.

    A stop must always finish: a task that swallowed its cancellation (Python 3.11's ``asyncio.wait_for``, which
    pymodbus uses for every request, can when the answer arrives at the same moment; seen at 3,000 devices) is
    cancelled again and counted in the log, not waited on forever.
    """
    if cancel:
        for task in tasks:
            task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=timeout_s) if tasks else (set(), set())
    if pending:
        log.warning("tasks did not stop in time what=%s count=%d action=cancel again", what, len(pending))
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=2.0)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("task failed what=%s error=%r", what, task.exception())


def plan_report(site: LoadedSite) -> str:
    """Each Modbus device's request plan, as ``lifeline edge --plan`` prints it."""
    lines: list[str] = []
    for device in site.config.devices:
        profile = site.profile_of(device)
        if profile.modbus is None:
            topic = (profile.mqtt.topic if profile.mqtt else "").replace("{device}", device.vendor_id)
            lines.append(f"{device.id} ({profile.name}, MQTT): subscribes to {topic}")
            continue
        requests = plan(profile.modbus)
        interval = device.poll_interval_s or profile.poll_interval_s
        lines.append(
            f"{device.id} ({profile.name}, {device.host}:{device.port} unit {device.unit_id}, every {interval:g} s): "
            f"{len(requests)} request(s) for {len(profile.modbus.points)} points"
        )
        lines.extend(f"  {r.describe()}" for r in requests)
    return "\n".join(lines)
