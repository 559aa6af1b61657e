"""The API's composition: stores, the live cache, the MQTT link, gate control and the InfluxDB reader, started and
stopped together. Request handlers reach it through ``request.app.state.service``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from pydantic import ValidationError
from sqlalchemy import make_url

from alerts.manager import alert_event
from alerts.store import AlertStore, StoredAlert
from api._command_alerts import ForgedAlerts, audited
from api.auth import LoginThrottle, Passwords
from api.config import ADMIN_PASSWORD_ENV, ApiConfig, load_site_keys
from api.db import make_engine
from api.gates import GateService
from api.live import (
    DEVICE_STATES,
    UNKNOWN,
    Event,
    EventHub,
    LiveCache,
    Thresholds,
    declared_devices,
    site_registry,
    thresholds_for,
)
from api.metrics import RequestCounter, collect
from api.mqtt_link import MqttLink
from api.password_policy import PasswordPolicy
from api.users import UserStore
from device_profiles import Profile, load_catalogue, load_profiles
from device_profiles.validate import SiteLoader
from infra.clock import MillisClock as Clock
from infra.clock import wall_ms
from infra.metrics import Metric, render
from rules import PACKS, Rule, load_rules
from storage.history_cache import SiteHistoryCache
from storage.reader import InfluxQuery
from telemetry import ContractError, TopicError, decode_agent_state, decode_status, decode_telemetry, topics
from telemetry.commands import CommandResult

log = logging.getLogger("lifeline.api")

SWEEP_INTERVAL_S = 0.2
_ALERT_EVENTS = topics.alert_events_filter().removesuffix("+")


class BootstrapError(ValueError):
    """The first admin cannot be made as asked."""


class ApiService:
    def __init__(
        self,
        config: ApiConfig,
        *,
        clock: Clock = wall_ms,
        store: AlertStore | None = None,
        load_site: SiteLoader | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.profiles: dict[str, Profile] = dict(load_catalogue())
        if config.profile_paths:
            self.profiles.update(load_profiles(config.profile_paths))
        self.rules: list[Rule] = load_rules(config.rules.paths or [PACKS])
        prepare_sqlite_file(config.store.url)
        self.engine = make_engine(config.store.url)  # alerts.db's engine, the same settings as the rules service's
        self.store = store or AlertStore(self.engine)
        self._own_store = store is None
        auth = config.auth
        self.login_throttle = LoginThrottle(clock, **auth.login_throttle.model_dump())
        self.password_policy = PasswordPolicy.with_words(
            auth.password.min_length, auth.password.min_character_classes, auth.password.blocked_words
        )
        self.users = UserStore(
            self.engine,
            Passwords(auth.argon2_time_cost, auth.argon2_memory_kib),
            clock,
            idle_timeout_ms=auth.idle_timeout_s * 1000,
        )
        # only devices the site files (config.sites, read with load_site) or an agent's birth know are listed
        self.site_files = site_registry(config.sites, load_site)
        self.cache = LiveCache(self.thresholds, declared_devices(self.site_files))
        self.hub = EventHub(config.stream.queue_size)
        self.link = MqttLink(config.broker, config.client_id, self.handle_message)
        keys = load_site_keys(config)  # ConfigError naming the file for a missing or unprotected key
        if not keys:
            log.warning(
                "no site keys configured: every gate command is refused and no result is recorded "
                "(site_keys; lifeline keys create)"
            )
        else:
            log.info("command signing keys sites=%s", ",".join(sorted(keys)))
        self.gates = GateService(
            config,
            self.engine,
            self.cache,
            self.link.publish,
            self.audit,
            self.hub.publish,
            clock,
            keys,
            self.profiles,
            audited=functools.partial(audited, self.store),
            profile_of=self.profile_of,
            alert=ForgedAlerts(self.store, config.area_of, clock, self.announce_alert),
        )
        self.influx = InfluxQuery(config.influx)
        self.history = SiteHistoryCache(self.influx)  # a site's settled history buckets (docs/api.md)
        self.requests = RequestCounter()
        self.bad_messages = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False

    # -- life cycle ----------------------------------------------------------------------------------------
    def bootstrap_admin(self, environ: dict[str, str] | None = None) -> str | None:
        """Create the first admin if there is no user; the generated one-time password, to print once, or None.
        A password from the environment must pass the password policy (BootstrapError says why not)."""
        env = os.environ if environ is None else environ
        secret = self.config.auth.bootstrap_password
        given = env.get(ADMIN_PASSWORD_ENV) or None
        name, source = self.config.auth.bootstrap_admin, ADMIN_PASSWORD_ENV
        if secret is not None and self.users.count() == 0:  # read only when it is needed (a file may be gone after)
            given, source = secret.reveal("bootstrap_password") or None, f"auth.bootstrap_password ({secret.where()})"
        if given is not None and self.users.count() == 0:
            problem = self.password_policy.problem(given, name)
            if problem:
                raise BootstrapError(f"{source}: {problem}")
        return self.users.bootstrap(name, given)

    async def start(self, *, connect: bool = True) -> None:
        if self._started:
            return
        self._started = True
        if connect:
            self.link.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="api-command-sweeper")

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self.hub.close()
        await self.link.close()
        await self.influx.aclose()
        if self._own_store:
            self.store.close()
        self.engine.dispose()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.announce_states()
            await asyncio.to_thread(self.gates.sweep)

    # -- live state --------------------------------------------------------------------------------------------
    def profile_of(self, site: str, device: str, profile: str) -> Profile | None:
        """The profile ``device`` has: with the changes its site file makes to its points (``points:``, applied by
        the edge's own ``LoadedSite.profile_of``) when the deployment's site files say so, else ``profile``."""
        own = self.site_files.own_profiles.get((site, device)) if self.site_files is not None else None
        return own if own is not None and own.name == profile else self.profiles.get(profile)

    def has_own_profile(self, site: str, device: str) -> bool:
        """Whether the site file changes this device's points (its own profile: ``profile_of``)."""
        return self.site_files is not None and (site, device) in self.site_files.own_profiles

    def thresholds(self, profile: str) -> Thresholds:
        """When a device of ``profile`` is stale and offline (docs/api.md, Device state)."""
        live = self.config.live
        given = live.stale_after_s.get(profile)
        if given is not None:
            stale_ms = round(given * 1000)
            return Thresholds(stale_ms, max(stale_ms, round(live.offline_after_s * 1000)))
        return thresholds_for(
            self.profiles.get(profile),
            stale_intervals=live.stale_intervals,
            min_stale_s=live.min_stale_s,
            hj212_stale_s=live.hj212_stale_s,
            offline_after_s=live.offline_after_s,
        )

    def state_counts(self) -> dict[str, int]:
        """How many devices are in each state now (online, stale, offline, unknown)."""
        counts = dict.fromkeys(DEVICE_STATES, 0)
        now = self.clock()
        for d in self.cache.devices():
            live = self.cache.live(d.site, d.device, now)
            counts[live.state if live is not None else UNKNOWN] += 1
        return counts

    def announce_states(self, site: str | None = None, device: str | None = None) -> int:
        """Publish a ``state`` event for every device whose state changed (by a message or by time alone, judged at
        this service's clock); how many."""
        changes = self.cache.changes(self.clock(), site, device)
        for st, dev, live in changes:
            data: dict[str, object] = {"site": st, "device": dev, **live.as_dict()}
            self.hub.publish(Event("state", self.config.area_of(st), st, data))
        return len(changes)

    # -- audit and events ------------------------------------------------------------------------------------
    def audit(
        self, *, who: str, action: str, target: str, source: str = "", detail: dict[str, object] | None = None
    ) -> None:
        with self.store.begin() as tx:
            tx.audit(ts_ms=self.clock(), who=who, action=action, target=target, source=source, detail=detail)

    def announce_alert(self, stored: StoredAlert) -> None:
        """Tell live views about an alert the API changed: on the broker (every API instance hears it), or
        straight to this instance's clients when the broker is away."""
        event = alert_event(stored)
        problem = self.link.publish(topics.alert_event(stored.id), orjson.dumps(event))
        if problem is not None:
            self.hub.publish(self._alert_event(event))

    def _alert_event(self, data: dict[str, object]) -> Event:
        site = data.get("site")
        site = site if isinstance(site, str) else None
        area = self.config.area_of(site) if site else None
        return Event("alert", area, site, data)

    # -- MQTT in (on the loop) ---------------------------------------------------------------------------------
    def handle_message(self, topic: str, payload: bytes) -> None:
        try:
            self._handle(topic, payload)
        except (ContractError, TopicError, ValidationError, orjson.JSONDecodeError) as exc:
            self.bad_messages += 1
            log.debug("api ignored a message it cannot read topic=%s error=%s", topic, exc)

    def _handle(self, topic: str, payload: bytes) -> None:
        if topic.startswith(_ALERT_EVENTS):
            data = orjson.loads(payload)
            if isinstance(data, dict):
                self.hub.publish(self._alert_event(data))
            return
        parsed = topics.parse(topic)
        if parsed.kind is topics.Kind.AGENT_STATE:
            agent = decode_agent_state(payload, topic)
            if agent.site != parsed.site:
                raise ContractError(f"agent state names {agent.site}, topic {topic!r}")
            self.cache.apply_agent(agent, self.clock())
            self.announce_states(agent.site)
            return
        if parsed.kind is topics.Kind.TELEMETRY:
            msg = decode_telemetry(payload, topic)
            if (msg.site, msg.device) != (parsed.site, parsed.device):
                raise ContractError(f"message names {msg.site}/{msg.device}, topic {topic!r}")
            if not self.cache.admits(msg.site, msg.device):  # not listed: its site files or birth do not know it
                return
            self.cache.apply_telemetry(msg)
            data = {
                "site": msg.site,
                "device": msg.device,
                "measurement": msg.measurement,
                "seq": msg.seq,
                "samples": [s.model_dump(mode="json", exclude_defaults=True) for s in msg.samples],
            }
            self.hub.publish(Event("reading", self.config.area_of(msg.site), msg.site, data))
            self.announce_states(msg.site, msg.device)
        elif parsed.kind is topics.Kind.STATUS:
            status = decode_status(payload, topic)
            if (status.site, status.device) != (parsed.site, parsed.device):
                raise ContractError(f"status names {status.site}/{status.device}, topic {topic!r}")
            if not self.cache.admits(status.site, status.device):
                return
            self.cache.apply_status(status)
            self.hub.publish(
                Event("status", self.config.area_of(status.site), status.site, status.model_dump(mode="json"))
            )
            self.announce_states(status.site, status.device)
        elif parsed.kind is topics.Kind.CMD_RESULT:
            result = CommandResult.model_validate_json(payload)
            if (result.site, result.device, result.id) != (parsed.site, parsed.device, parsed.command_id):
                raise ContractError(f"result names {result.site}/{result.device}/{result.id}, topic {topic!r}")
            self.gates.on_result(result, topic)

    # -- metrics -----------------------------------------------------------------------------------------------
    def metrics_text(self) -> str:
        return render(self)

    def collect(self) -> Iterator[Metric]:
        gauges = {
            "lifeline_api_broker_connected": float(self.link.connected.is_set()),
            "lifeline_api_devices_known": float(len(self.cache)),
            **{f"lifeline_api_devices_{state}": float(n) for state, n in self.state_counts().items()},
            "lifeline_api_stream_clients": float(self.hub.clients),
            "lifeline_api_stream_events_dropped_total": float(self.hub.dropped),
            "lifeline_api_mqtt_messages_total": float(self.link.received),
            "lifeline_api_mqtt_bad_messages_total": float(self.bad_messages),
            # command results handed again (the retained final one on every reconnect): neither recorded nor audited
            "lifeline_api_command_results_duplicate_total": float(self.gates.duplicates),
            "lifeline_api_unknown_device_messages_total": float(self.cache.refused),
        }
        yield from collect(
            self.requests.snapshot(),
            self.gates.results,
            self.gates.refusals,
            gauges,
            bad_results=self.gates.bad_results,
        )


PRIVATE_FILE = 0o600


def prepare_sqlite_file(url: str) -> None:
    """The SQLite file of ``url`` (its folder made 0700 if new), created 0600 before SQLite opens it, so that its
    -wal and -shm files, which SQLite creates with the database file's mode, are 0600 too; an existing file and
    its -wal and -shm with a looser mode are tightened. It holds password hashes and the audit log
    (GB/T 22239-2019 §8.1.4.8: confidentiality of stored authentication data)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(PRIVATE_FILE)


def service_from_file(path: Path, clock: Callable[[], int] = wall_ms) -> ApiService:
    from api.config import load_config

    return ApiService(load_config(path), clock=clock)
