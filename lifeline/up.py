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
import dataclasses
import logging
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel

from alerts.config import AlertServiceConfig
from alerts.notify.config import NotifyConfig
from api.config import (
    ApiConfig,
    DistrictConfig,
    DistrictSite,
    GateOverride,
    GatesConfig,
    SiteKeysConfig,
    StoreConfig,
)
from api.config import ListenConfig as ApiListen
from api.config import ListenTls as ApiTls
from api.config import RulesConfig as ApiRules
from broker_bridge.config import BridgeConfig, OverwriteConfig, ValidationConfig
from device_profiles import load_catalogue
from edge_agent.config import DeviceConfig, EdgeConfig, LoadedSite, load_site
from edge_agent.hj212.config import Hj212Config, StationConfig
from edge_agent.hj212.config import ListenConfig as Hj212Listen
from infra.config_loader import ConfigError
from infra.mqtt import BrokerConfig, TlsConfig
from infra.secret import CredentialError, Secret, read_secret_file, write_secret_file
from lifeline._run import install_stop_signals
from lifeline.broker_auth import (
    credential,
    hj212_site,
    keep_passwords,
    platform_accounts,
    scenario_deployment,
    write_client_certs,
    write_credentials,
)
from lifeline.deployment import DeploymentSpec, load_spec
from lifeline.rules_cli import RulesServiceConfig
from lifeline.runners import Influxd, Mosquitto, ServiceError, free_port, wait_for_port
from lifeline.simulate import load, site_accounts
from lifeline.tls import ensure_ca, ensure_crl, issue
from lifeline.write_gateway import WriteGateway
from rules.config import PartitionConfig
from simulators import District
from simulators.hj212 import Hj212Fleet, demo_fleet
from simulators.scenario import Scenario, SourcesSpec
from storage import influxql
from storage.connection import InfluxConfig
from storage.connection import WriteGateway as GatewayAccount
from storage.schema import DEVICE, WATER
from telemetry import topics
from telemetry.keys import KeyFileError, SiteKeyFiles, create_site_keys

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
    metrics_scheme: str = "http"  # the API's metrics are on its own port, over HTTPS

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


def _add_local_settings(site: str, site_file: Path, state_dir: Path, stack: Stack, keys_dir: Path) -> int:
    """Give a site's agent its broker accounts, its keys, a dead-letter file, a state folder and a metrics port;
    return the port. The site file is read by the edge's own loader and written back typed. It holds no password
    (they are in the 0600 credential files) but is 0600 all the same."""
    config = load_site(site_file).config
    keys = SiteKeyFiles.of(keys_dir, site)
    port = free_port()
    config = config.model_copy(
        update={
            **site_accounts(site, stack.credentials, stack.broker),
            "dead_letter_path": state_dir / "deadletter.sqlite",
            "state_dir": state_dir,  # remembered command ids: a repeated command is never executed twice
            "metrics_port": port,
            "control_public_key": keys.control_public.resolve(),  # verifies the API's commands
            "site_private_key": keys.site_private.resolve(),  # signs this site's results
        }
    )
    _write_config(site_file, EdgeConfig.model_validate(config.model_dump()))
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
                log.error(
                    "child exited name=%s code=%s log=%s action=restart in %gs",
                    child.name,
                    proc.returncode,
                    child.log_path,
                    RESTART_PAUSE_S,
                )
                child.proc = None
                child.restarts += 1
            elif proc is None and child.restarts and not stop.is_set():
                await asyncio.sleep(RESTART_PAUSE_S)
                if not stop.is_set():
                    child.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _write_config(path: Path, config: BaseModel) -> Path:
    """A service's typed config as YAML, 0600 (it names the service's credential files; every password is a file
    reference, none is in it). Only what differs from the model's defaults is written, so a service's own defaults
    stay its own."""
    data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    text = "# Written by lifeline up; rewritten on every run.\n" + yaml.safe_dump(data, sort_keys=False)
    write_secret_file(path, text)
    return path


def _bridge_config(data_dir: Path, stack: Stack, deploy: DeploymentSpec, metrics_port: int, n: int = 1) -> Path:
    """Bridge ``n`` of the deployment's shared group (its own account pair, ``bridge-n`` and ``bridge-n-pub``)."""
    config = BridgeConfig(
        broker=stack.account(f"bridge-{n}"),
        publisher=stack.account(f"bridge-{n}-pub"),
        influx=stack.influx_as("bridge"),
        batch=deploy.batch,
        retry=deploy.retry,
        validation=ValidationConfig(sites=[(data_dir / "sites").resolve()]),
        # one bridge: a sample after the newest it let through is new; several share a device's samples
        overwrite=OverwriteConfig(trust_mark=deploy.bridges == 1),
        dead_letter_path=data_dir / "bridge" / "deadletter.sqlite",
        metrics_port=metrics_port,
    )
    return _write_config(data_dir / ("bridge.yaml" if n == 1 else f"bridge-{n}.yaml"), config)


def _hj212(data_dir: Path, stack: Stack, scenario: str, sources: SourcesSpec | None = None) -> tuple[Child, Hj212Fleet]:
    """The HJ 212 ingest server as a child, and the district's simulated stations (a CEMS and a wastewater outlet)
    that push to it; a site file lists the stations so that the bridge knows them as devices. The CEMS's tags are
    the scenario's (``hj212.cems_tags``: its source and reference O2)."""
    cems_tags = (sources or SourcesSpec()).cems_tags
    port = free_port()
    site = hj212_site(scenario)
    # the wastewater outlet speaks HJ 212-2025 with its CP encrypted by SM4 (its key a 0600 file, as in production)
    fleet = demo_fleet("127.0.0.1", port, dict(load_catalogue()), site=site, sm4=True)
    keys = fleet.write_keys(data_dir / "credentials" / "hj212-keys")
    passwords = data_dir / "credentials" / "hj212-stations.yaml"
    write_secret_file(passwords, yaml.safe_dump(fleet.passwords()))
    metrics = free_port()
    stations = [StationConfig.model_validate(st) for st in fleet.server_stations(keys)]
    # the emissions pack selects on the CEMS's source tag; its o2_ref gives the O2-corrected values
    stations = [st.model_copy(update={"tags": dict(cems_tags)}) if st.device == "cems-1" else st for st in stations]
    config = Hj212Config(
        listen=Hj212Listen(host="127.0.0.1", port=port),
        broker=stack.account("hj212"),
        passwords_file=passwords.resolve(),
        dead_letter_path=(data_dir / "hj212" / "deadletter.sqlite").resolve(),
        metrics_port=metrics,
        stations=stations,
    )
    path = _write_config(data_dir / "hj212.yaml", config)
    # for the bridge's validation (which devices exist): no edge agent runs for this site
    devices = [DeviceConfig(id=st.device, profile=st.profile, tags=dict(st.tags)) for st in stations]
    _write_config(data_dir / "sites" / f"{site}.yaml", EdgeConfig(site=site, devices=devices))
    argv = [sys.executable, "-m", "lifeline", "hj212", "--config", str(path)]
    return Child("hj212", argv, data_dir / "logs" / "hj212.log", metrics_port=metrics), fleet


def _rules_config(
    data_dir: Path,
    stack: Stack,
    deploy: DeploymentSpec,
    metrics_port: int,
    sites: Sequence[str] = (),
    partition: PartitionConfig | None = None,
) -> Path:
    """A rules engine's config: the deployment's packs and alert settings, the areas of ``sites``, and its partition
    (its own accounts ``rules-<label>``; the single engine of an unsplit deployment is ``rules-1``)."""
    alerts = deploy.alerts
    if alerts is None:  # local default: the alert store in the data folder, every notification on the MQTT channel
        alerts = AlertServiceConfig(
            store_url=f"sqlite:///{(data_dir / 'alerts.db').resolve()}",
            notify=NotifyConfig.model_validate(
                {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"channels": ["bus"]}]}
            ),
        )
    alerts = alerts.model_copy(update={"areas": deploy.areas_of(sites)})
    influx = stack.influx_as("rules")
    label = partition.label if partition is not None else "1"
    config = RulesServiceConfig(
        broker=stack.account(f"rules-{label}"),
        publisher=stack.account(f"rules-{label}-pub"),
        rules=deploy.rules_config(partition),
        alerts=alerts,
        influx=influx,  # reads InfluxQL and writes the derived series on either transport
        metrics_port=metrics_port,
    )
    return _write_config(data_dir / ("rules.yaml" if partition is None else f"rules-{label}.yaml"), config)


def _gate_limits(sites: dict[str, LoadedSite]) -> list[GateOverride]:
    """The API's limits of each controllable gate, from the edge's ``control`` sections (one model, one source of
    truth), resolved as the edge resolves them: a gate without ``full_opening_m`` has the top of its profile's
    ``gate_opening`` range."""
    out: list[GateOverride] = []
    for name, site in sorted(sites.items()):
        for device in site.config.devices:
            control = device.control
            if control is None or site.profile_of(device).kind != "sluice_gate":
                continue  # set points only (control.points): no gate limits
            # load_site has checked that these resolve (else its ConfigError names the file, line and field)
            lim = control.limits(site.profile_of(device))
            out.append(
                GateOverride(
                    site=name,
                    device=device.id,
                    full_opening_m=lim.full_opening_m,
                    min_opening_m=lim.min_opening_m,
                    max_opening_m=lim.max_opening_m,
                    tolerance_m=lim.tolerance_m,
                    max_head_open_m=lim.max_head_open_m,
                    max_head_close_m=lim.max_head_close_m,
                )
            )
    return out


def _longest_movement_s(sites: dict[str, LoadedSite]) -> float:
    timeouts = [d.control.timeout_s for s in sites.values() for d in s.config.devices if d.control is not None]
    return max(timeouts, default=120.0)


def _district(scenario: Scenario, sources: Sequence[str] = ()) -> DistrictConfig:
    """The console overview's layout: each simulated site's title, river, area and place along the river, and the
    site of the HJ 212 stations (``sources``; where it lies: the scenario's ``hj212``)."""
    sites = {s.site: DistrictSite(title=s.title, river=s.river, area=s.area, km=s.km) for s in scenario.sites}
    h = scenario.hj212
    sites.update({site: DistrictSite(title=h.title, river=h.river, area=h.area, km=h.km) for site in sources})
    return DistrictConfig(title=scenario.title or scenario.name, sites=sites)


def _api_config(
    data_dir: Path,
    stack: Stack,
    site_files: dict[str, Path],
    keys_dir: Path,
    scenario: Scenario | None = None,
    deploy: DeploymentSpec | None = None,
    sources: Sequence[str] = (),
    source_files: Sequence[Path] = (),
    tls: ApiTls | None = None,
) -> Path:
    """The API's config: the deployment's areas and rule packs (the same the engines run), and each gate's limits
    from its edge site file. ``sources`` are the sites of the HJ 212 stations: in the areas like any site (their
    readings are read by area), with no keys and no gates (no edge agent runs for them). ``tls``: serve HTTPS."""
    deploy = deploy or DeploymentSpec()
    sites = {site: load_site(path) for site, path in site_files.items()}  # the edge's own loader
    influx = stack.influx_as("api")
    keys = {site: SiteKeyFiles.of(keys_dir, site) for site in sorted(sites)}
    config = ApiConfig(
        areas=deploy.areas_of(sorted({*sites, *sources})),  # a site in no area is its own (the alert manager's too)
        rules=ApiRules(paths=[p.resolve() for p in deploy.rule_packs]),  # what the engines run
        listen=ApiListen(host="127.0.0.1", port=stack.api_port, tls=tls),
        broker=stack.account("api"),
        influx=influx.read_only(),
        # the API signs commands with each site's control key and checks results against each site's public key
        site_keys={
            site: SiteKeysConfig(
                control_private_key=k.control_private.resolve(), site_public_key=k.site_public.resolve()
            )
            for site, k in keys.items()
        },
        # one store for alerts, users and the audit log: the rules service and the API meet there
        store=StoreConfig(url=f"sqlite:///{(data_dir / 'alerts.db').resolve()}"),
        # a command's final result may take as long as the slowest gate's movement time-out at the edge
        gates=GatesConfig(edge_timeout_s=_longest_movement_s(sites) + 30, devices=_gate_limits(sites)),
        district=_district(scenario, sources) if scenario is not None else DistrictConfig(),
        permits_file=_permits(data_dir, [s.config for s in (*sites.values(), *(load_site(p) for p in source_files))]),
        # the devices it lists: those of the site files (the bridge's), not any a telemetry topic names (issue 24)
        sites=[(data_dir / "sites").resolve()],
    )
    return _write_config(data_dir / "api.yaml", config)


def _api_tls(data_dir: Path) -> ApiTls:
    """The API's HTTPS certificate (for 127.0.0.1 and localhost) from the deployment's CA (``data_dir/tls``, the
    broker's): clients verify it with ``tls/ca.pem`` (curl --cacert). Kept across runs, as the CA is."""
    folder = data_dir / "tls"
    files = issue(folder, ensure_ca(folder), "api-server")
    return ApiTls(cert_file=files.cert_file.resolve(), key_file=files.key_file.resolve())


# The permit each simulated source holds, by its `source` tag (the tag the emissions pack selects its limits by):
# a real deployment writes its sources' permits itself (rules/standards/permits.py, docs/reports.md).
SIMULATED_PERMITS = {"coal_power": "gb13223_coal_new", "sinter": "sinter_machine_head"}


def _permits(data_dir: Path, sites: Sequence[EdgeConfig]) -> Path | None:
    """A permit file for the simulated district's pollution sources (None when it has none)."""
    sources = [
        {"site": site.site, "device": dev.id, "template": SIMULATED_PERMITS[dev.tags["source"]]}
        for site in sites
        for dev in site.devices
        if dev.tags.get("source") in SIMULATED_PERMITS
    ]
    if not sources:
        return None
    path = data_dir / "permits.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False), encoding="utf-8")
    return path.resolve()


def _admin_password(password_file: Path, api_port: int, timeout_s: float = 90.0) -> str:
    """What to print about the admin. The API hands the first admin's one-time password over in ``password_file``
    (``--bootstrap-password-file``): written whole (renamed into place), 0600, before it listens. So: the file, as
    soon as it is there (read, then deleted: shown here, on the terminal, and kept nowhere); else, once the API
    listens on ``api_port`` without having written it, the admin is from an earlier run. The wait is long: on a loaded
    2-core machine the API took 20 s from its config to the password file."""
    deadline = time.monotonic() + timeout_s
    while True:
        listening = wait_for_port("127.0.0.1", api_port, 0.05)
        if password_file.exists():
            password = password_file.read_text(encoding="utf-8").strip()
            password_file.unlink()
            return f"user 'admin', one-time password {password} (change it at login)"
        if listening:
            return "user 'admin' exists from an earlier run (password as set then)"
        if time.monotonic() >= deadline:
            return f"not known yet: the API does not listen on port {api_port} (see its log)"
        time.sleep(0.2)


@dataclass
class Stack:
    """The running stack, not a config model (the deployment is :class:`~lifeline.deployment.DeploymentSpec`): where
    the platform's servers are, started here (``mosquitto``, ``influxd``) or external. ``broker`` has the host, port
    and TLS but no account: each client takes its own from ``credentials`` (``account``); ``influx_users`` are the
    local InfluxDB's password files, one a service (``influx_as``)."""

    broker: BrokerConfig
    influx: InfluxConfig
    credentials: Path
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    api_port: int = 8080
    influx_users: dict[str, Secret] = field(default_factory=dict)  # local InfluxDB: service -> its password file
    gateway: WriteGateway | None = None  # the local InfluxDB's write-only path (the writing services write there)
    gateway_users: dict[str, Secret] = field(default_factory=dict)  # service -> its gateway password file

    def account(self, username: str) -> BrokerConfig:
        return credential(self.credentials, username, self.broker)

    def influx_as(self, service: str) -> InfluxConfig:
        """The InfluxDB connection of ``service`` on the local InfluxDB: its own account, which only reads; the
        writing services (bridge, rules) also the write gateway's account."""
        password = self.influx_users.get(service)
        if password is None:
            return self.influx
        update: dict[str, object] = {"username": f"lifeline-{service}", "password": password}
        gateway = self.gateway_users.get(service)
        if gateway is not None and self.gateway is not None:
            update["gateway"] = GatewayAccount(url=self.gateway.url, username=service, password=gateway)
        return self.influx.model_copy(update=update)


def _service_children(data_dir: Path, stack: Stack, deploy: DeploymentSpec, sites: Sequence[str]) -> list[Child]:
    """The deployment's bridges and rules engines (one per partition), each with its config and metrics port."""
    out: list[Child] = []
    for n in range(1, deploy.bridges + 1):
        name = "bridge" if n == 1 else f"bridge-{n}"
        port = free_port()
        path = _bridge_config(data_dir, stack, deploy, port, n)
        argv = [sys.executable, "-m", "lifeline", "bridge", "--config", str(path)]
        out.append(Child(name, argv, data_dir / "logs" / f"{name}.log", metrics_port=port))
    for partition in deploy.partitions():
        name = "rules" if partition is None else f"rules-{partition.label}"
        port = free_port()
        path = _rules_config(data_dir, stack, deploy, port, sites, partition)
        argv = [sys.executable, "-m", "lifeline", "rules", "run", "--config", str(path)]
        out.append(Child(name, argv, data_dir / "logs" / f"{name}.log", metrics_port=port))
    return out


async def _run(deploy: DeploymentSpec, stack: Stack, duration: float | None) -> None:
    stop = install_stop_signals()
    data_dir = deploy.data_dir
    scenario = load(deploy.scenario, None)
    district = District(scenario, stack.broker.host, stack.broker.port, sensor_credentials=stack.account("sim-sensors"))
    await district.start()
    children: list[Child] = []
    try:
        paths = district.write_site_configs(data_dir / "sites")
        keys_dir = data_dir / "keys"
        create_site_keys(keys_dir, sorted(paths))  # kept when present: the edges and the API stay paired
        for site, path in sorted(paths.items()):
            metrics = _add_local_settings(site, path, data_dir / "edge" / site, stack, keys_dir)
            argv = [sys.executable, "-m", "lifeline", "edge", "--config", str(path)]
            children.append(Child(f"edge {site}", argv, data_dir / "logs" / f"edge-{site}.log", metrics_port=metrics))
        services = _service_children(data_dir, stack, deploy, [*paths, hj212_site(scenario.name)])
        children[:0] = services
        hj212_child, fleet = _hj212(data_dir, stack, scenario.name, scenario.hj212)
        children.append(hj212_child)
        sources = hj212_site(scenario.name)
        source_file = data_dir / "sites" / f"{sources}.yaml"  # written by _hj212 for the bridge's validation
        api_tls = _api_tls(data_dir)  # HTTPS with a certificate of the deployment's CA; HSTS on its answers
        api_yaml = _api_config(data_dir, stack, paths, keys_dir, scenario, deploy, [sources], [source_file], api_tls)
        password_file = data_dir / "api" / "admin-password"
        api_argv = [
            sys.executable,
            "-m",
            "lifeline",
            "api",
            "--config",
            str(api_yaml),
            "--bootstrap-password-file",
            str(password_file),
        ]
        api = Child("api", api_argv, data_dir / "logs" / "api.log", metrics_port=stack.api_port, metrics_scheme="https")
        children.insert(len(services), api)
        for child in children:
            child.start()
        admin = await asyncio.to_thread(_admin_password, password_file, stack.api_port)
        _print_table(stack, district, children, data_dir)
        ca = (data_dir / "tls" / "ca.pem").resolve()
        print(f"api: https://127.0.0.1:{stack.api_port}/docs (OpenAPI; CA {ca}), admin: {admin}", flush=True)
        supervisor = asyncio.ensure_future(_supervise(children, stop))
        stations = asyncio.ensure_future(fleet.run(stop))  # they reconnect until the ingest server listens
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        stop.set()
        await supervisor
        await stations
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
    if stack.gateway is not None:  # influxd has no address of its own: the gateway is its only door
        where += "; through its write gateway, which takes writes from the bridge and rules only"
    print(f"  storage     influxd on {i.url}, database {i.database!r} ({where})")
    print(
        f"  district    scenario {district.scenario.name!r}: {len(district.modbus)} Modbus devices on "
        f"127.0.0.1, {len(district.sensors.sensors)} MQTT sensors"
    )
    for child in children:
        pid = child.proc.pid if child.proc else "-"
        where = f"{child.metrics_scheme}://127.0.0.1:{child.metrics_port}/metrics"
        metrics = f", metrics {where}" if child.metrics_port else ""
        print(f"  {child.name:<30} pid {pid}, log {child.log_path}{metrics}")
    print(f"  site configs in {data_dir / 'sites'}")
    observer = stack.account("observer")
    if observer.tls is not None and observer.tls.cert_file is not None:  # the broker takes the user from the cert
        who = f" --cafile {observer.tls.ca_file} --cert {observer.tls.cert_file} --key {observer.tls.key_file}"
    else:
        tls = f" --cafile {b.tls.ca_file}" if b.tls else ""
        who = f'{tls} -u observer -P "$(cat {stack.credentials / "observer.password"})"'
    # the observer may subscribe to what it may read, not to lifeline/v1/# (the broker refuses a wider filter)
    watched = " ".join(f"-t '{f}'" for f in (topics.telemetry_filter(), topics.status_filter(), "lifeline/v1/alerts/#"))
    print(f"watch: mosquitto_sub -h {b.host} -p {b.port}{who} {watched} -v")
    print(f"alerts: lifeline alerts --config {data_dir / 'rules.yaml'} list")
    if i.transport == "v1":
        auth = ""
        if stack.influx_users:
            auth = f'-u lifeline-api:"$(cat {stack.credentials / "influx-api.password"})" '
        example = influxql.select([influxql.call("last", "ph")], influxql.source(WATER), group_by=(DEVICE,))
        print(f"query: curl -sG {auth}{i.url}/query --data-urlencode db={i.database} --data-urlencode 'q={example}'")
    print("Ctrl-C stops everything.", flush=True)


def _deployment(args: argparse.Namespace) -> DeploymentSpec:
    deploy = load_spec(Path(args.config)) if args.config else DeploymentSpec()
    update: dict[str, object] = {}
    if args.scenario is not None:
        update["scenario"] = args.scenario
    if args.data_dir is not None:
        update["data_dir"] = Path(args.data_dir)
    return deploy.model_copy(update=update)


def _local_broker(
    deploy: DeploymentSpec, args: argparse.Namespace, credentials: Path
) -> tuple[Mosquitto, BrokerConfig]:
    """A Mosquitto of the deployment's own: an account per client of the district (passwords in 0600 files, kept
    from an earlier run on the same data folder), MQTT over TLS with a certificate of a local CA unless the
    deployment asks for plain TCP. The broker's accounts file is written from these accounts at every start, so the
    broker and the credential files agree whatever an earlier run left."""
    scenario = load(deploy.scenario, None)
    district = scenario_deployment(scenario)
    accounts = platform_accounts(
        deploy.inventory(district.sites, district.sensor_topics, district.hj212_sites, simulated_sensors=True)
    )
    accounts = keep_passwords(credentials, accounts)
    write_credentials(credentials, accounts)
    tls_files = None
    if not deploy.broker_plain_tcp:
        ca = ensure_ca(deploy.data_dir / "tls")
        write_client_certs(credentials, accounts, ca)  # each client's identity: <user>.pem (CN = user) and .key
        # and the certificates revoked (lifeline keys revoke): the broker refuses them (made again above)
        tls_files = dataclasses.replace(issue(deploy.data_dir / "tls", ca, "mosquitto"), crl_file=ensure_crl(ca))
    port = choose_port(args.mqtt_port)
    # over TLS every client shows its own certificate and the broker takes the user name from it: a stolen password
    # alone connects nobody, and nobody can take over another account's session (its client id is its user name)
    broker = Mosquitto(
        deploy.data_dir / "mosquitto", port=port, accounts=accounts, tls=tls_files, require_certificate=bool(tls_files)
    )
    tls = TlsConfig(ca_file=tls_files.ca_file.resolve()) if tls_files else None
    return broker, BrokerConfig(port=port, tls=tls)


# Every service's own InfluxDB account only reads: a 1.x account that may write may also DELETE and DROP SERIES. The
# writer's account is the write gateway's alone; the writing services (the bridge; the rules engine, which writes the
# derived series) write through the gateway with accounts of the gateway's own (docs/storage.md).
INFLUX_USERS = {"bridge": "READ", "rules": "READ", "api": "READ"}
GATEWAY_USERS = ("bridge", "rules")
WRITER = "lifeline-writer"


def _secret(path: Path) -> str:
    """The password kept in ``path`` (0600), made on first use: InfluxDB keeps its users across runs."""
    if path.exists():
        return read_secret_file(path, "InfluxDB password")
    password = secrets.token_urlsafe(24)
    write_secret_file(path, password + "\n")
    return password


@dataclass
class LocalInflux:
    """The local InfluxDB: influxd (no network of its own) and the write gateway in front of it, the only way in."""

    server: Influxd
    gateway: WriteGateway
    users: dict[str, Secret]  # service -> its InfluxDB password file (READ)
    gateway_users: dict[str, Secret]  # writing service -> its gateway password file


def _local_influxd(deploy: DeploymentSpec, args: argparse.Namespace, credentials: Path) -> LocalInflux:
    """influxd with authentication, in a network namespace of its own (its RPC port and /debug/vars out of every
    other process's reach) and serving HTTP on a 0600 Unix socket; an admin made at the first start, the writer (the
    gateway's alone) and a read-only user per service; the write gateway on loopback (``--influx-port``), which
    takes writes from the bridge and the rules engine and passes reads on. Passwords in 0600 files under the data
    folder."""
    server = Influxd(deploy.data_dir / "influxdb", auth_enabled=True, private_network=True)
    server.start()
    try:
        admin = ("lifeline-admin", _secret(credentials / "influx-admin.password"))
        files = {s: credentials / f"influx-{s}.password" for s in INFLUX_USERS}
        users = {f"lifeline-{s}": (_secret(path), INFLUX_USERS[s]) for s, path in files.items()}
        writer = (WRITER, _secret(credentials / "influx-writer.password"))
        server.set_up_users(DATABASE, {**users, writer[0]: (writer[1], "WRITE")}, admin)
        clients = {s: credentials / f"gateway-{s}.password" for s in GATEWAY_USERS}
        gateway = WriteGateway(
            deploy.data_dir / "gateway",
            server.socket_path,
            writer,
            {s: _secret(path) for s, path in clients.items()},
            database=DATABASE,
            port=choose_port(args.influx_port),
        )
        gateway.start()
    except BaseException:
        server.stop()  # the caller never gets it to stop: a failed set-up must not leave influxd running
        raise
    # the services read the files themselves
    return LocalInflux(
        server,
        gateway,
        {s: Secret(file=path) for s, path in files.items()},
        {s: Secret(file=path) for s, path in clients.items()},
    )


def _private_data_dir(data_dir: Path) -> None:
    """The data folder 0700 and what an earlier run left in it closed to group and others (this run makes its files
    0600 and folders 0700: ``up`` sets the umask 077, which its children inherit)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for root, dirs, files in os.walk(data_dir):
        for name in (root, *(os.path.join(root, n) for n in (*dirs, *files))):
            with contextlib.suppress(OSError):  # gone meanwhile, or another user's (the broker's state folder)
                mode = os.lstat(name).st_mode
                if mode & 0o077 and not stat.S_ISLNK(mode) and os.lstat(name).st_uid == os.geteuid():
                    os.chmod(name, stat.S_IMODE(mode) & 0o700)


def up(args: argparse.Namespace) -> int:
    try:
        deploy = _deployment(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    data_dir = deploy.data_dir
    credentials = (data_dir / "credentials").resolve()
    try:
        if deploy.sites:  # lifeline up runs the simulated scenario's sites: these would be ignored
            raise deploy.refuse(
                ["sites"],
                "would be ignored: lifeline up runs the scenario's sites (real sites' "
                "files are for lifeline broker config --deployment and their own lifeline edge)",
                Path(args.config) if args.config else None,
            )
        if deploy.hj212 is not None:  # the same for the real HJ 212 stations: the scenario's simulated ones run
            raise deploy.refuse(
                ["hj212"],
                "would be ignored: lifeline up runs the scenario's simulated HJ 212 stations (a real district's "
                "config is for lifeline up --configs-only and lifeline broker config --deployment)",
                Path(args.config) if args.config else None,
            )
        district = scenario_deployment(load(deploy.scenario, None))
        deploy.check_sites([*district.sites, *district.hj212_sites], Path(args.config) if args.config else None)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    # nothing under the data folder is for another user (logs, outboxes, stores, InfluxDB's data, configs): every
    # file 0600 and folder 0700, the services' and servers' too (they inherit the umask)
    os.umask(0o077)
    _private_data_dir(data_dir)
    stack = Stack(
        broker=deploy.broker or BrokerConfig(),
        influx=deploy.influx or InfluxConfig(url="", database=DATABASE, create_database=False),
        credentials=deploy.broker_credentials.resolve() if deploy.broker_credentials else credentials,
        api_port=choose_port(args.api_port),
    )
    try:
        if deploy.broker is None:
            stack.mosquitto, stack.broker = _local_broker(deploy, args, credentials)
            stack.mosquitto.start()
        if deploy.influx is None:
            local = _local_influxd(deploy, args, credentials)
            stack.influxd, stack.gateway = local.server, local.gateway
            stack.influx_users, stack.gateway_users = local.users, local.gateway_users
            # readers query through the gateway too: influxd has no address outside its network namespace
            stack.influx = stack.influx.model_copy(update={"url": local.gateway.url})
        asyncio.run(_run(deploy, stack, args.duration))
    except (ServiceError, CredentialError, KeyFileError, ConfigError) as exc:
        print(f"lifeline up: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack.gateway is not None:
            stack.gateway.stop()
        if stack.influxd is not None:
            stack.influxd.stop()
        if stack.mosquitto is not None:
            stack.mosquitto.stop()
        print("stopped")
    return 0
