"""``lifeline simulate``: run a simulated district against a broker, and write each site's edge config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

import yaml

from infra.config_loader import ConfigError
from infra.mqtt import BrokerConfig, TlsConfig
from infra.secret import CredentialError, write_secret_file
from lifeline._run import install_stop_signals
from lifeline.broker_auth import credential
from simulators import District, load_scenario
from simulators.scenario import Scenario


def parse_hostport(text: str, default_port: int = 1883) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    try:
        return host, int(port)
    except ValueError:
        raise SystemExit(f"--broker {text!r}: the port must be a number") from None


def load(name: str, seed: int | None) -> Scenario:
    try:
        scenario = load_scenario(name)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    return scenario if seed is None else scenario.model_copy(update={"seed": seed})


def site_accounts(site: str, folder: Path, broker: BrokerConfig) -> dict[str, BrokerConfig]:
    """A site's edge accounts from ``folder`` (``lifeline broker config``): ``broker``, the uplink as ``edge-<site>``,
    and ``sensor_broker``, the sensor link as ``edge-<site>-sensors`` if the site has MQTT sensors."""
    out = {"broker": credential(folder, f"edge-{site}", broker)}
    if (folder / f"edge-{site}-sensors.password").exists():
        out["sensor_broker"] = credential(folder, f"edge-{site}-sensors", broker)
    return out


def give_site_credentials(path: Path, folder: Path, broker: BrokerConfig, **extra: object) -> None:
    """Rewrite a site's edge config with the accounts of ``folder`` (``site_accounts``); ``extra`` keys too."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, account in site_accounts(config["site"], folder, broker).items():
        config[key] = account.model_dump(mode="json", exclude_defaults=True)
    config.update(extra)
    write_secret_file(path, yaml.safe_dump(config, sort_keys=False))


async def _run(
    scenario: Scenario, broker: BrokerConfig, sites_dir: Path, duration: float | None, credentials: Path | None
) -> None:
    stop = install_stop_signals()
    host, port = broker.host, broker.port
    sim = credential(credentials, "sim-sensors", broker) if credentials else None
    district = District(scenario, host, port, sensor_credentials=sim)
    await district.start()
    try:
        paths = district.write_site_configs(sites_dir)
        if credentials is not None:
            for path in paths.values():
                give_site_credentials(path, credentials, broker)
        print(
            f"scenario {scenario.name!r} (seed {scenario.seed}): {len(district.modbus)} Modbus devices, "
            f"{len(district.sensors.sensors)} MQTT sensors publishing to {host}:{port}"
        )
        for site, path in sorted(paths.items()):
            print(f"  site {site:<22} lifeline edge --config {path}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await district.stop()


def simulate(args: argparse.Namespace) -> int:
    scenario = load(args.scenario, args.seed)
    host, port = parse_hostport(args.broker)
    tls = TlsConfig(ca_file=Path(args.ca_file).resolve()) if args.ca_file else None
    credentials = Path(args.credentials) if args.credentials else None
    try:
        asyncio.run(
            _run(
                scenario, BrokerConfig(host=host, port=port, tls=tls), Path(args.sites_dir), args.duration, credentials
            )
        )
    except CredentialError as exc:
        raise SystemExit(str(exc)) from exc
    return 0
