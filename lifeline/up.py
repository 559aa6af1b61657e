"""``lifeline up``: the whole platform on one machine, on its local default stack.

Mosquitto and InfluxDB run as child processes with their data under ``--data-dir``; the bridge (MQTT to
InfluxDB) runs as a child process; the simulated district runs in this
process; each site's edge agent runs as a child process of its own (``lifeline edge --config ...``), so that one
agent's crash takes nothing else down; an agent that exits is started again after a pause. Ctrl-C (or SIGTERM)
stops everything, agents and bridge first, broker and InfluxDB last, so that every goodbye reaches the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from broker_bridge.config import InfluxConfig
from device_profiles import ConfigError
from lifeline.config import DeploymentConfig, load_deployment
from lifeline.services import Influxd, Mosquitto, free_port, wait_for_port
from lifeline.simulate import load
from simulators import District
from telemetry.mqtt_config import BrokerConfig

log = logging.getLogger("lifeline.up")

RESTART_PAUSE_S = 5.0
DATABASE = "lifeline"  # the local InfluxDB's database


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    metrics_port: int | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


def _add_local_settings(site_file: Path, state_dir: Path, broker: BrokerConfig) -> int:
    """Give a site's agent the broker's credentials, a dead-letter file, a state folder and a metrics port; return
    the port."""
    config = yaml.safe_load(site_file.read_text(encoding="utf-8"))
    config["broker"] = broker.model_dump(mode="json", exclude_defaults=True)
    config["dead_letter_path"] = str(state_dir / "deadletter.jsonl")
    config["state_dir"] = str(state_dir)  # remembered command ids: a repeated command is never executed twice
    config["metrics_port"] = port = free_port()
    site_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return port


def choose_port(wanted: int) -> int:
    """``wanted`` if it is free on loopback, else a free port (a system broker may hold 1883)."""
    if wanted and not wait_for_port("127.0.0.1", wanted, 0.05):
        return wanted
    port = free_port()
    if wanted:
        print(f"port {wanted} is taken (a system service?): the platform uses {port} instead")
    return port


async def _supervise(children: list[Child], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for child in children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                log.error("child exited name=%s code=%s log=%s action=restart in %gs", child.name, proc.returncode,
                          child.log_path, RESTART_PAUSE_S)  # fmt: skip
                child.proc = None
                child.restarts += 1
            elif proc is None and child.restarts and not stop.is_set():
                await asyncio.sleep(RESTART_PAUSE_S)
                if not stop.is_set():
                    child.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _bridge_config(data_dir: Path, broker: BrokerConfig, influx: InfluxConfig, deploy: DeploymentConfig,
                   metrics_port: int) -> Path:  # fmt: skip
    path = data_dir / "bridge.yaml"
    config = {
        "broker": broker.model_dump(mode="json"),
        "influx": influx.model_dump(mode="json"),
        "batch": deploy.batch.model_dump(mode="json"),
        "retry": deploy.retry.model_dump(mode="json"),
        "validation": {"sites": [str((data_dir / "sites").resolve())]},
        "dead_letter_path": str(data_dir / "bridge" / "deadletter.sqlite"),
        "metrics_port": metrics_port,
    }
    path.write_text("# Written by lifeline up; rewritten on every run.\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def _rules_config(data_dir: Path, broker: BrokerConfig, influx: InfluxConfig, deploy: DeploymentConfig,
                  metrics_port: int) -> Path:  # fmt: skip
    path = data_dir / "rules.yaml"
    if deploy.alerts is not None:
        alerts = deploy.alerts.model_dump(mode="json", by_alias=True)
    else:  # local default: the alert store in the data folder, every notification on the MQTT channel
        alerts = {
            "store_url": f"sqlite:///{(data_dir / 'alerts.db').resolve()}",
            "notify": {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"channels": ["bus"]}]},
        }
    config = {
        "broker": broker.model_dump(mode="json"),
        "rules": {"packs": [str(Path(p).resolve()) for p in deploy.rule_packs]},
        "alerts": alerts,
        "influx": {"url": influx.url, "database": influx.database} if influx.transport == "v1" else None,
        "metrics_port": metrics_port,
    }
    path.write_text("# Written by lifeline up; rewritten on every run.\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def _gate_limits(site_files: dict[str, Path]) -> list[dict[str, object]]:
    """The API's limits of each controllable gate, from the edge's ``control`` sections (one source of truth)."""
    out: list[dict[str, object]] = []
    for site, path in sorted(site_files.items()):
        for device in yaml.safe_load(path.read_text(encoding="utf-8")).get("devices", []):
            control = device.get("control")
            if control:
                full = control["full_opening_m"]
                out.append({"site": site, "device": device["id"], "full_opening_m": full,
                            "min_pct": round(100 * control.get("min_opening_m", 0.0) / full, 3),
                            "max_pct": round(100 * control.get("max_opening_m", full) / full, 3),
                            "max_head_open_m": control["max_head_open_m"],
                            "max_head_close_m": control.get("max_head_close_m")})  # fmt: skip
    return out


def _longest_movement_s(site_files: dict[str, Path]) -> float:
    timeouts = [
        float(d["control"].get("timeout_s", 120))
        for path in site_files.values()
        for d in yaml.safe_load(path.read_text(encoding="utf-8")).get("devices", [])
        if d.get("control")
    ]
    return max(timeouts, default=120.0)


def _api_config(data_dir: Path, broker: BrokerConfig, influx: InfluxConfig, port: int,
                site_files: dict[str, Path]) -> Path:  # fmt: skip
    path = data_dir / "api.yaml"
    sites = sorted(site_files)
    config = {
        "areas": {site: [site] for site in sites},  # each site its own area (the alert manager's default too)
        "listen": {"host": "127.0.0.1", "port": port},
        "broker": broker.model_dump(mode="json"),
        "influx": {"url": influx.url, "database": influx.database},
        # one store for alerts, users and the audit log: the rules service and the API meet there
        "store": {"url": f"sqlite:///{(data_dir / 'alerts.db').resolve()}"},
        # a command's final result may take as long as the slowest gate's movement time-out at the edge
        "gates": {"edge_timeout_s": _longest_movement_s(site_files) + 30, "devices": _gate_limits(site_files)},
    }
    path.write_text("# Written by lifeline up; rewritten on every run.\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def _admin_password(password_file: Path, log_path: Path, timeout_s: float = 15.0) -> str:
    """What to print about the admin: the one-time password the API wrote to ``password_file`` at its first start
    (read, then deleted: it is shown here, on the terminal, and kept nowhere), if it did now."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if password_file.exists():
            password = password_file.read_text().strip()
            password_file.unlink()
            return f"user 'admin', one-time password {password} (change it at login)"
        lines = (log_path.read_text(errors="replace") if log_path.exists() else "").splitlines()
        if any("Uvicorn running" in line for line in lines):
            return "user 'admin' exists from an earlier run (password as set then)"
        time.sleep(0.2)
    return f"not known yet: see {log_path}"


@dataclass
class Stack:
    """Where the platform's servers are: started here (``mosquitto``, ``influxd``) or external."""

    broker: BrokerConfig
    influx: InfluxConfig
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    api_port: int = 8080


async def _run(deploy: DeploymentConfig, stack: Stack, duration: float | None) -> None:
    from lifeline.cli import install_stop_signals

    stop = install_stop_signals()
    data_dir = deploy.data_dir
    scenario = load(deploy.scenario, None)
    district = District(scenario, stack.broker.host, stack.broker.port)
    await district.start()
    children: list[Child] = []
    try:
        paths = district.write_site_configs(data_dir / "sites")
        for site, path in sorted(paths.items()):
            metrics = _add_local_settings(path, data_dir / "edge" / site, stack.broker)
            argv = [sys.executable, "-m", "lifeline", "edge", "--config", str(path)]
            children.append(Child(f"edge {site}", argv, data_dir / "logs" / f"edge-{site}.log", metrics_port=metrics))
        bridge_metrics = free_port()
        bridge_yaml = _bridge_config(data_dir, stack.broker, stack.influx, deploy, bridge_metrics)
        bridge_argv = [sys.executable, "-m", "lifeline", "bridge", "--config", str(bridge_yaml)]
        children.insert(0, Child("bridge", bridge_argv, data_dir / "logs" / "bridge.log", metrics_port=bridge_metrics))
        rules_metrics = free_port()
        rules_yaml = _rules_config(data_dir, stack.broker, stack.influx, deploy, rules_metrics)
        rules_argv = [sys.executable, "-m", "lifeline", "rules", "run", "--config", str(rules_yaml)]
        children.insert(1, Child("rules", rules_argv, data_dir / "logs" / "rules.log", metrics_port=rules_metrics))
        api_yaml = _api_config(data_dir, stack.broker, stack.influx, stack.api_port, paths)
        password_file = data_dir / "api" / "admin-password"
        api_argv = [sys.executable, "-m", "lifeline", "api", "--config", str(api_yaml),
                    "--bootstrap-password-file", str(password_file)]  # fmt: skip
        children.insert(2, Child("api", api_argv, data_dir / "logs" / "api.log", metrics_port=stack.api_port))
        for child in children:
            child.start()
        admin = await asyncio.to_thread(_admin_password, password_file, data_dir / "logs" / "api.log")
        _print_table(stack, district, children, data_dir)
        print(f"api: http://127.0.0.1:{stack.api_port}/docs (OpenAPI), admin: {admin}", flush=True)
        supervisor = asyncio.ensure_future(_supervise(children, stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        stop.set()
        await supervisor
    finally:
        print("stopping: bridge, rules, api, edge agents, simulated district, then the servers")
        for child in children:
            child.stop()
        await district.stop()


def _print_table(stack: Stack, district: District, children: list[Child], data_dir: Path) -> None:
    b, i = stack.broker, stack.influx
    where = f"data and log in {stack.mosquitto.data_dir}" if stack.mosquitto else "external"
    print("Lifeline is up:")
    print(f"  broker      mosquitto on {b.host}:{b.port} ({where})")
    where = f"data and log in {stack.influxd.data_dir}" if stack.influxd else "external"
    print(f"  storage     influxd on {i.url}, database {i.database!r} ({where})")
    print(f"  district    scenario {district.scenario.name!r}: {len(district.modbus)} Modbus devices on "
          f"127.0.0.1, {len(district.sensors.sensors)} MQTT sensors")  # fmt: skip
    for child in children:
        pid = child.proc.pid if child.proc else "-"
        metrics = f", metrics http://127.0.0.1:{child.metrics_port}/metrics" if child.metrics_port else ""
        print(f"  {child.name:<30} pid {pid}, log {child.log_path}{metrics}")
    print(f"  site configs in {data_dir / 'sites'}")
    print(f"watch: mosquitto_sub -h {b.host} -p {b.port} -t 'lifeline/v1/#' -v")
    print(f"alerts: lifeline alerts --config {data_dir / 'rules.yaml'} list")
    if i.transport == "v1":
        print(f"query: curl -sG {i.url}/query --data-urlencode db={i.database} "
              """--data-urlencode 'q=SELECT last("ph") FROM water_quality GROUP BY device'""")  # fmt: skip
    print("Ctrl-C stops everything.", flush=True)


def _deployment(args: argparse.Namespace) -> DeploymentConfig:
    deploy = load_deployment(Path(args.config)) if args.config else DeploymentConfig()
    update: dict[str, object] = {}
    if args.scenario is not None:
        update["scenario"] = args.scenario
    if args.data_dir is not None:
        update["data_dir"] = Path(args.data_dir)
    return deploy.model_copy(update=update)


def up(args: argparse.Namespace) -> int:
    try:
        deploy = _deployment(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    data_dir = deploy.data_dir
    stack = Stack(
        broker=deploy.broker or BrokerConfig(port=choose_port(args.mqtt_port)),
        influx=deploy.influx or InfluxConfig(url="", database=DATABASE, create_database=True),
        api_port=choose_port(args.api_port),
    )
    try:
        if deploy.broker is None:
            stack.mosquitto = Mosquitto(data_dir / "mosquitto", port=stack.broker.port)
            stack.mosquitto.start()
        if deploy.influx is None:
            stack.influxd = Influxd(data_dir / "influxdb", port=choose_port(args.influx_port))
            stack.influxd.start()
            stack.influxd.create_database(DATABASE)
            stack.influx = stack.influx.model_copy(update={"url": stack.influxd.url})
        asyncio.run(_run(deploy, stack, args.duration))
    finally:
        if stack.influxd is not None:
            stack.influxd.stop()
        if stack.mosquitto is not None:
            stack.mosquitto.stop()
        print("stopped")
    return 0
