"""``lifeline simulate``: run a simulated district against a broker, and write each site's edge config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from device_profiles import ConfigError
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


async def _run(scenario: Scenario, host: str, port: int, sites_dir: Path, duration: float | None) -> None:
    from lifeline.cli import install_stop_signals

    stop = install_stop_signals()
    district = District(scenario, host, port)
    await district.start()
    try:
        paths = district.write_site_configs(sites_dir)
        print(f"scenario {scenario.name!r} (seed {scenario.seed}): {len(district.modbus)} Modbus devices, "
              f"{len(district.sensors.sensors)} MQTT sensors publishing to {host}:{port}")  # fmt: skip
        for site, path in sorted(paths.items()):
            print(f"  site {site:<22} lifeline edge --config {path}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await district.stop()


def simulate(args: argparse.Namespace) -> int:
    scenario = load(args.scenario, args.seed)
    host, port = parse_hostport(args.broker)
    asyncio.run(_run(scenario, host, port, Path(args.sites_dir), args.duration))
    return 0
