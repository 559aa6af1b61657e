"""A running district: every Modbus device and MQTT sensor of a scenario in this process, and the edge configs
that point each site's agent at them.

``District`` is the handle tests and ``lifeline up`` hold (``district.modbus["yzb-gate-01"].stop_answering()``,
``district.sensors.leak("ent003-gas-1", 60)``); ``run_district`` runs one until an event is set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import yaml

from device_profiles import Profile, load_catalogue
from infra.clock import WallClock
from infra.mqtt import BrokerConfig
from simulators.behaviours import make_behaviour
from simulators.behaviours.sluice_gate_plc import GateParams
from simulators.modbus import ModbusDevice
from simulators.mqtt_sensors import Sensor, SensorFleet
from simulators.scenario import PlannedDevice, Scenario, plan

log = logging.getLogger("lifeline.sim")

SiteConfig = dict[str, object]


class District:
    """The devices of ``scenario``; Modbus devices listen once ``start`` returns, sensors publish to the broker."""

    def __init__(
        self,
        scenario: Scenario,
        broker_host: str,
        broker_port: int,
        *,
        profiles: dict[str, Profile] | None = None,
        clock: WallClock = time.time,
        step_interval_s: float = 0.2,
        sensor_tick_s: float = 0.1,
        sensor_credentials: BrokerConfig | None = None,
    ) -> None:
        self.scenario = scenario
        self.broker_host, self.broker_port = broker_host, broker_port
        self.planned: list[PlannedDevice] = plan(scenario, profiles or load_catalogue())
        self.modbus: dict[str, ModbusDevice] = {}
        sensors: list[Sensor] = []
        for d in self.planned:
            behaviour = make_behaviour(d.profile.name, d.seed, d.params)
            if d.is_modbus:
                self.modbus[d.id] = ModbusDevice(
                    d.id,
                    d.profile,
                    behaviour,
                    host=scenario.host,
                    port=d.port,
                    unit_id=d.unit_id,
                    step_interval_s=step_interval_s,
                    clock=clock,
                )
            else:
                sensors.append(Sensor(d.id, d.profile, behaviour, d.source_id or "", d.interval_s))
        self.sensors = SensorFleet(
            sensors,
            broker_host,
            broker_port,
            clock=clock,
            tick_s=sensor_tick_s,
            client_id=f"sim-{scenario.name}-{id(self):x}",
            credentials=sensor_credentials,
        )
        self._stop_sensors = asyncio.Event()
        self._sensor_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen on every Modbus port (ports 0 get free ones) and start the sensors."""
        started: list[ModbusDevice] = []
        try:
            for device in self.modbus.values():
                await device.start()
                started.append(device)
        except BaseException:
            for device in started:
                await device.stop()
            raise
        self._stop_sensors.clear()
        self._sensor_task = asyncio.create_task(self.sensors.run(self._stop_sensors), name="sim-sensors")
        log.info(
            "district=%s modbus=%d sensors=%d started", self.scenario.name, len(self.modbus), len(self.sensors.sensors)
        )

    async def stop(self) -> None:
        self._stop_sensors.set()
        if self._sensor_task is not None:
            await self._sensor_task
            self._sensor_task = None
        for device in self.modbus.values():
            await device.stop()
        log.info("district=%s stopped", self.scenario.name)

    async def __aenter__(self) -> District:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def sites(self) -> list[str]:
        return [s.site for s in self.scenario.sites]

    def site_config(self, site: str) -> SiteConfig:
        """The edge agent's config for ``site`` (what ``edge_agent.config.load_site`` reads), for this broker."""
        host = "127.0.0.1" if self.scenario.host in ("0.0.0.0", "") else self.scenario.host
        devices: list[dict[str, object]] = []
        for d in self.planned:
            if d.site != site:
                continue
            entry: dict[str, object] = {"id": d.id, "profile": d.profile.name}
            if d.is_modbus:
                entry.update(host=host, port=self.modbus[d.id].port, unit_id=d.unit_id)
                if d.profile.name == "sluice_gate_plc":
                    entry["control"] = gate_control(GateParams.model_validate(d.params))
            elif d.source_id and d.source_id != d.id:
                entry["source_id"] = d.source_id
            if d.tags:
                entry["tags"] = dict(d.tags)
            devices.append(entry)
        if not devices:
            raise KeyError(f"scenario {self.scenario.name!r} has no site {site!r}")
        return {"site": site, "broker": {"host": self.broker_host, "port": self.broker_port}, "devices": devices}

    def write_site_configs(self, folder: Path) -> dict[str, Path]:
        """One ``<site>.yaml`` per site in ``folder``; call after ``start`` (ports are known then)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for site in self.sites:
            path = folder / f"{site}.yaml"
            text = f"# Written by the simulator for scenario {self.scenario.name!r}; rewritten on every run.\n"
            path.write_text(text + yaml.safe_dump(self.site_config(site), sort_keys=False), encoding="utf-8")
            paths[site] = path
        return paths


def gate_control(params: GateParams) -> dict[str, object]:
    """The ``control:`` section of a simulated gate: its travel, and a time-out of 1.2 full strokes (10 s at least).

    ``max_head_open_m`` is a demonstration value; a real station's allowed head comes from its flood-control rules.
    """
    stroke_s = params.max_opening_m / params.speed_m_s
    return {
        "full_opening_m": params.max_opening_m,
        "min_opening_m": 0.0,
        "max_opening_m": params.max_opening_m,
        "tolerance_m": 0.02,
        "timeout_s": round(min(3600.0, max(10.0, 1.2 * stroke_s)), 1),
        "readback_interval_s": 1.0,
        "max_head_open_m": 3.0,
    }


async def run_district(
    scenario: Scenario,
    broker_host: str,
    broker_port: int,
    stop: asyncio.Event,
    sites_dir: Path | None = None,
    *,
    sensor_credentials: BrokerConfig | None = None,
) -> None:
    """Run every device of ``scenario`` until ``stop`` is set; write the site configs into ``sites_dir``."""
    district = District(scenario, broker_host, broker_port, sensor_credentials=sensor_credentials)
    await district.start()
    try:
        if sites_dir is not None:
            paths = district.write_site_configs(sites_dir)
            log.info("district=%s site configs in %s: %s", scenario.name, sites_dir, ", ".join(sorted(paths)))
        await stop.wait()
    finally:
        await district.stop()
