"""``lifeline rules``: the rules engine and the alert manager in one process; ``lifeline alerts``: look at alerts.

The configuration file composes each component's own model::

    broker: {host: 127.0.0.1, port: 1883}
    rules: {packs: [rules/packs], tick_s: 1, checkpoint_s: 2}
    # several engines sharing a district: rules.partition {index: 0, count: 2} (or {name: north, sites: [...]})
    alerts:
      store_url: sqlite:///var/alerts.db
      areas: {north: [yunzaobang, lianqi]}
      escalation: [{audience: safety, levels: [{after_s: 300, targets: [safety-duty]}]}]
      notify: {channels: {...}, routes: [...]}
    influx: {url: http://127.0.0.1:8086, database: lifeline}   # for the hourly and daily window rules
    metrics_port: 9103
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.config import AlertServiceConfig
from device_profiles import field_error
from infra import logs
from infra.config_loader import ConfigError, read_yaml, validate
from infra.gc_tuning import tune_for_throughput
from infra.mqtt import BrokerConfig
from lifeline._alerts_notifications import add_arguments as outbox_arguments
from lifeline._run import Subparsers, run_until_signal
from lifeline.bridge_cli import known_site
from lifeline.profiles_cli import validate_files
from rules import load_rules
from rules.config import RulesConfig
from storage.connection import InfluxConfig

log = logging.getLogger("lifeline.rules")


class RulesServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    publisher: BrokerConfig | None = Field(
        None,
        description="the connection that publishes alert events and notifications (an account of its own: "
        "rules-N-pub); none: the broker section's",
    )
    rules: RulesConfig = Field(default_factory=RulesConfig)
    alerts: AlertServiceConfig = Field(default_factory=AlertServiceConfig)
    influx: InfluxConfig | None = Field(
        None,
        description="InfluxDB the window rules read and the derived series "
        "are written to (v1 or v2 transport); none: not run",
    )
    metrics_port: int | None = Field(None, ge=0, le=65535)

    @model_validator(mode="after")
    def _one_broker(self) -> RulesServiceConfig:
        if "broker" in self.rules.model_fields_set:  # it would be replaced by the service's broker: say so
            why = "would be ignored: the service's broker section is the engine's broker"
            raise field_error(why, "rules", "broker")
        return self

    def rules_with_broker(self) -> RulesConfig:
        return self.rules.model_copy(update={"broker": self.broker})


def load_rules_service_config(path: Path) -> RulesServiceConfig:
    """Load and validate; ConfigError names file, line and field. Rule packs, site files and the dead-letter file
    are taken relative to the file."""
    config = validate(RulesServiceConfig, read_yaml(path), "rules service config")
    rules = config.rules
    packs = [p if p.is_absolute() else path.parent / p for p in rules.packs]
    sites = [p if p.is_absolute() else path.parent / p for p in rules.sites]
    dead = rules.dead_letter_path
    if dead is not None and not dead.is_absolute():
        dead = path.parent / dead
    update = {"packs": packs, "sites": sites, "dead_letter_path": dead}
    return config.model_copy(update={"rules": rules.model_copy(update=update)})


class _StoreState:
    """The rules engine's checkpoint in the alert store's named state; ``fence`` (the partition's lease) is checked
    first in each write."""

    def __init__(self, store: Any, fence: Callable[[Any], None] | None = None) -> None:
        self.store = store
        self.fence = fence

    def get_state(self, name: str) -> dict[str, Any] | None:
        with self.store.begin() as tx:
            data: dict[str, Any] | None = tx.get_state(name)
            return data

    def put_state(self, name: str, data: dict[str, Any]) -> None:
        with self.store.begin() as tx:
            if self.fence is not None:
                self.fence(tx)
            tx.put_state(name, data)


async def run_service(
    config: RulesServiceConfig, stop: asyncio.Event, on_start: Callable[[Any, Any], None] | None = None
) -> None:
    """Run the rules service until ``stop``; ``on_start(service, manager)`` is called once both exist.

    With ``rules.lease`` the engine first waits for its partition's lease (a hot standby: nothing subscribed, nothing
    written), runs while it holds it, and raises :class:`alerts.lease.LeaseLost` when another engine took it over."""
    from alerts.db import make_engine
    from alerts.lease import LeaseKeeper, guard_engine
    from alerts.store import AlertStore

    url = config.alerts.store_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    lease = config.rules.lease
    engine = make_engine(url)
    if lease is not None:
        guard_engine(engine, lease.ttl_s)  # a paused engine's transaction does not hold the lease row for ever
    store = AlertStore(engine)
    try:
        if lease is None:
            await _run_engine(config, store, stop, on_start, None)
            return
        keeper = LeaseKeeper(
            store,
            config.rules.state_name,
            config.rules.subscription.client_id,
            ttl_s=lease.ttl_s,
            renew_s=lease.renew_s,
            poll_s=lease.poll_s,
        )
        if await keeper.acquire(stop) is None:
            return  # stopped while standing by
        await _run_engine(config, store, stop, on_start, keeper)
    finally:
        store.close()
        engine.dispose()


async def _run_engine(
    config: RulesServiceConfig,
    store: Any,
    stop: asyncio.Event,
    on_start: Callable[[Any, Any], None] | None,
    keeper: Any,
) -> None:
    import os

    from alerts.manager import AlertManager
    from alerts.notify import Notifier
    from device_profiles import load_catalogue
    from infra.metrics import Collecting, bound_port, registry, serve_metrics
    from infra.mqtt import Publisher
    from rules.service import RulesService

    rules = config.rules.load()
    halt = asyncio.Event()  # stop, a lost lease, or a part that failed: every part ends
    publisher = Publisher(config.publisher or config.broker, f"lifeline-rules-pub-{os.getpid()}")
    publisher.start()
    notifier = Notifier(config.alerts.notify, publish=publisher.publish, connected=lambda: publisher.connected)
    manager = AlertManager(config.alerts, store, rules, load_catalogue(), notifier, publisher.publish_nowait)
    fence = keeper.fence if keeper is not None else None
    manager.fence = fence
    state = _StoreState(store, fence)
    # the rules engine knows the district's devices from the same site files as the bridge, read by the edge's loader
    service = RulesService(config.rules_with_broker(), rules, manager.on_transitions, state, load_site=known_site)
    windows = _windows(config, rules, manager, state)
    parts = [service.run(halt), manager.run(halt)]
    if windows is not None:
        parts.append(windows.run(halt))
    if keeper is not None:
        parts.append(keeper.keep(halt, halt.set))
    if on_start is not None:
        on_start(service, manager)
    metrics = None
    if config.metrics_port is not None:
        collectors: list[Collecting] = [service, manager, notifier]
        if windows is not None:
            collectors.append(windows.scheduled)
        metrics = await serve_metrics(registry(*collectors), config.metrics_port)
        log.info("rules metrics port=%d", bound_port(metrics))
    log.info(
        "rules service started rules=%d store=%s window_rules=%s lease=%s",
        len(rules),
        _safe_url(config.alerts.store_url),
        "on" if windows else "off (no InfluxDB configured)",
        f"epoch {keeper.lease.epoch}" if keeper is not None else "none",
    )

    try:
        await _together(parts, stop, halt, keeper, config.rules.state_name)
    finally:
        await notifier.aclose()
        await publisher.close()
        if metrics is not None:
            metrics.close()


async def _together(parts: list[Any], stop: asyncio.Event, halt: asyncio.Event, keeper: Any, name: str) -> None:
    """Run the service's parts until ``stop``; one part ending (a lost lease, a failure) ends them all. Raises
    ``LeaseLost`` when the partition was taken over, else a part's error."""
    from alerts.lease import LeaseLost

    async def until_stopped() -> None:
        await stop.wait()
        halt.set()

    async def part(coro: Any) -> None:
        try:
            await coro
        finally:
            halt.set()

    watcher = asyncio.ensure_future(until_stopped())
    try:
        results = await asyncio.gather(*(part(p) for p in parts), return_exceptions=True)
    finally:
        watcher.cancel()
    errors = [r for r in results if isinstance(r, BaseException)]
    if keeper is not None and errors and not keeper.lost:
        await keeper.still_held()  # a failed write (a session the server ended) may mean it was taken over
    if keeper is not None and not keeper.lost:
        await keeper.release()  # a clean stop: the standby need not wait for the lease to run out
    if (keeper is not None and keeper.lost) or any(isinstance(e, LeaseLost) for e in errors):
        raise LeaseLost(f"partition {name!r} was taken over by another engine")
    if errors:
        raise errors[0]


WINDOWS_STATE = "rules.windows"
MEANS_STATE = "rules.valid_means"


class _Windows:
    """The scheduled window rules, their InfluxDB reader, and their state kept in the alert store."""

    def __init__(self, config: RulesServiceConfig, rules: list[Any], manager: Any, state: _StoreState) -> None:
        from rules.scheduled import ScheduledRules, WindowEvaluator
        from rules.valid_means import ValidMeans, load_means_config
        from storage import InfluxQuery, derived_writer

        assert config.influx is not None
        self.state = state
        self.query = InfluxQuery(config.influx)
        window_rules = [r for r in rules if r.kind == "window"]
        saved = state.get_state(WINDOWS_STATE)
        self.evaluator = (
            WindowEvaluator.from_state(window_rules, self.query, saved)
            if saved
            else WindowEvaluator(window_rules, self.query)
        )
        # valid hourly and daily means (rules/means.yaml), stored before the window rules that read them
        self.writer = derived_writer(config.influx)  # either transport, storage's retry policy
        self.means = ValidMeans(load_means_config(), self.query, self.writer)
        saved_means = state.get_state(MEANS_STATE)
        if saved_means:
            self.means.restore(saved_means)
        self.scheduled = ScheduledRules(self.evaluator, manager.on_transitions, means=self.means)
        self._saved: dict[str, Any] | None = saved
        self._saved_means: dict[str, Any] | None = saved_means

    def save(self) -> None:
        data = self.evaluator.state()
        if data != self._saved:
            self.state.put_state(WINDOWS_STATE, data)
            self._saved = data
        means = self.means.state()
        if means != self._saved_means:
            self.state.put_state(MEANS_STATE, means)
            self._saved_means = means

    async def run(self, stop: asyncio.Event) -> None:
        self.scheduled.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5.0)
                await asyncio.to_thread(self.save)  # store work off the event loop
        finally:
            await self.scheduled.stop()
            await asyncio.to_thread(self.save)
            await self.query.aclose()
            await self.writer.close()


def _windows(config: RulesServiceConfig, rules: list[Any], manager: Any, state: _StoreState) -> _Windows | None:
    part = config.rules.partition
    if part is not None and not part.runs_windows:
        return None  # the scheduled rules are district-wide with one saved state: one partition runs them
    if config.influx is None or not any(r.kind == "window" for r in rules):
        return None
    return _Windows(config, rules, manager, state)


def _safe_url(url: str) -> str:
    return url.rsplit("@", maxsplit=1)[-1]


def run(args: argparse.Namespace) -> int:
    try:
        config = load_rules_service_config(Path(args.config)) if args.config else RulesServiceConfig()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    if getattr(args, "partition", None):
        config = _with_partition(config, args.partition)
    if getattr(args, "standby", False) and config.rules.lease is None:
        from rules.config import LeaseConfig

        config = config.model_copy(update={"rules": config.rules.model_copy(update={"lease": LeaseConfig()})})
    logs.setup(args.log_level)
    tune_for_throughput()  # this process is the service (run_service itself also runs inside tests)
    from alerts.lease import LeaseLost, LeaseRefused

    try:
        return run_until_signal(lambda stop: run_service(config, stop))
    except LeaseRefused as exc:
        raise SystemExit(f"lifeline rules: {exc}") from exc
    except LeaseLost as exc:
        # nothing was written after the loss (each write checks the lease); a supervisor starts it again as standby
        log.warning("rules engine stopped: %s", exc)
        return LEASE_LOST_EXIT


LEASE_LOST_EXIT = 3  # the exit code of an engine whose partition another engine took over


def _with_partition(config: RulesServiceConfig, value: str) -> RulesServiceConfig:
    """``--partition INDEX/COUNT``: this engine's hash partition, over the configuration's ``rules.partition``."""
    from pydantic import ValidationError

    from rules.config import PartitionConfig

    index, sep, count = value.partition("/")
    try:
        if not sep or not index.isdigit() or not count.isdigit():
            raise ValueError("expected INDEX/COUNT, e.g. 0/2")
        part = PartitionConfig(index=int(index), count=int(count))
    except (ValueError, ValidationError) as exc:
        detail = "; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
        raise SystemExit(f"--partition {value!r}: {detail}") from exc
    return config.model_copy(update={"rules": config.rules.model_copy(update={"partition": part})})


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alerts_cmd(args: argparse.Namespace) -> int:
    """List alerts, one alert's history, or the notification log, straight from the store."""
    from alerts.store import AlertStore

    try:
        config = load_rules_service_config(Path(args.config)) if args.config else RulesServiceConfig()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    store = AlertStore(args.store or config.alerts.store_url)
    try:
        if args.action == "list":
            rows = store.list_alerts(active_only=not args.all, limit=args.limit)
            print(f"{len(rows)} alert(s){'' if args.all else ' active'}; newest first:")
            for s in rows:
                a = s.alert
                print(
                    f"{s.id:>6} {_when(a.last_ms)} {a.state.value:<13} {a.severity.name:<8} {a.key}  "
                    f"x{a.count}  {s.meta.title}"
                )
        elif args.action == "show":
            stored = store.get(args.id)
            if stored is None:
                print(f"no alert {args.id}")
                return 1
            print(f"alert {stored.id}: {stored.alert.key} {stored.alert.state.value} — {stored.meta.title}")
            for h in store.history(args.id):
                print(f"  {_when(h.ts_ms)} {h.who:<10} {h.action:<16} {h.from_state} -> {h.to_state}  {h.reason}")
            for e in store.evidence(args.id):
                print(f"  evidence of {e.severity.value} at {_when(e.ts_ms)}:")
                for r in e.readings:
                    shown = ", ".join(f"{k}={v}" for k, v in r["values"].items())
                    bad = f"  ({r['quality']})" if r.get("quality") else ""
                    print(f"    {_when(r['ts'])} {shown}{bad}")
                if e.window is not None:
                    print(f"    window {e.window}")
        else:
            from lifeline import _alerts_notifications

            return _alerts_notifications.show(store, args)
    finally:
        store.close()
    return 0


def validate_rules(args: argparse.Namespace) -> int:
    def load(paths: list[Path]) -> str:
        rules = load_rules(paths)
        return f"{len(rules)} rule(s) are valid: {', '.join(r.id for r in rules)}"

    return validate_files(args.paths, load)


def add_parsers(sub: Subparsers) -> None:
    """``lifeline rules [run|validate]`` and ``lifeline alerts list|show|notifications``."""
    rules = sub.add_parser("rules", help="alert rules: run the engine and alert manager (default), or validate")
    rules.add_argument("--config", help="service configuration (YAML) when run without an action")
    part_help = "this engine's hash partition of the sites (CRC-32 of the site id), over rules.partition"
    standby_help = (
        "run under the partition's lease in the alert store (rules.lease, valid 5 s, renewed every 1.5 s): "
        "start the same config on two machines, one runs, the other stands by and takes over when the lease runs out"
    )
    rules.add_argument("--partition", metavar="INDEX/COUNT", help=part_help)
    rules.add_argument("--standby", action="store_true", help=standby_help)
    rules.set_defaults(func=run)
    rules_sub = rules.add_subparsers(dest="action", required=False)
    rval = rules_sub.add_parser("validate", help="validate rule files or folders")
    rval.add_argument("paths", nargs="+", metavar="PATH")
    rval.set_defaults(func=validate_rules)
    run_p = rules_sub.add_parser("run", help="run the rules engine and the alert manager")
    run_p.add_argument("--config", help="service configuration (YAML); default: local broker, shipped packs")
    run_p.add_argument("--partition", metavar="INDEX/COUNT", help=part_help)
    run_p.add_argument("--standby", action="store_true", help=standby_help)
    run_p.set_defaults(func=run)

    al = sub.add_parser("alerts", help="alerts in the alert store")
    al.add_argument("--config", help="rules service configuration (for the store URL)")
    al.add_argument("--store", help="alert store URL (overrides the configuration)")
    al_sub = al.add_subparsers(dest="action", required=True)
    lst = al_sub.add_parser("list", help="active alerts (--all: every alert)")
    lst.add_argument("--all", action="store_true")
    lst.add_argument("--limit", type=int, default=50)
    show = al_sub.add_parser("show", help="one alert and its history")
    show.add_argument("id", type=int)
    notes = al_sub.add_parser("notifications", help="notifications pending or failed, and why (--log: the log)")
    outbox_arguments(notes)
    al.set_defaults(func=alerts_cmd)
