"""A device's own changes to its profile (the site file's ``points:``) reach the centre, no stand-ins: Mosquitto, a
real edge agent polling simulated drives, the bridge into InfluxDB and the API (uvicorn) all read the same site file.

The pump drive of device_profiles/examples/pump_drive.yaml says 0.01 Hz and [0, 50] Hz for its frequency and its
frequency set point. Drive ``drive-60`` runs a 60 Hz motor: its parameters (P0-10 maximum frequency 60.00 Hz, a
resolution of 0.1 Hz) make the site file change both points to 0.1 Hz, [0, 60] Hz, one decimal. Drive ``drive-50``
keeps the profile as shipped. The API judges a set point by the device's own range, the bridge stores a reading
valid for it as good, and the API's device profile shows the device's decimals and range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api import ApiService
from api.auth import Role
from broker_bridge.bridge import Bridge
from broker_bridge.config import BridgeConfig
from edge_agent.config import load_site
from lifeline.bridge_cli import known_site
from lifeline.broker_auth import bridge_account, bridge_publisher_account, edge_account
from simulators import ModbusDevice
from simulators.behaviours import Behaviour, Value
from telemetry import Sample, Telemetry, encode, topics
from telemetry.keys import SiteKeyFiles, create_site_keys
from testing import Influxd, Mosquitto
from tests.helpers import LoopThread, account_for, wait_until
from tests.integration.conftest import StartAgent
from tests.integration.test_api_support import PASSWORD, RunningApi, login, make_config

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parents[2] / "device_profiles" / "examples"
SITE, OWN, PLAIN = "pump-station-3", "drive-60", "drive-50"
OVERRIDE = {
    "frequency_set": {"scale": 0.1, "range": [0, 60]},
    "frequency": {"scale": 0.1, "range": [0, 60], "decimals": 1},
}
VALUES: dict[str, dict[str, Value]] = {
    OWN: {"frequency_set": 55.0, "frequency": 55.0},  # above the profile's 50 Hz, inside the drive's 60 Hz
    PLAIN: {"frequency_set": 40.0, "frequency": 40.0},
}
COMMON: dict[str, Value] = {"run_command": 1, "current": 12.5, "voltage": 380, "fault_code": 0, "run_hours": 1234}


class Drive(Behaviour):
    """A drive that keeps what is written to it and reports it back."""

    profile = "pump_drive"

    def __init__(self, values: dict[str, Value]) -> None:
        super().__init__(0)
        self.values = dict(values)

    def step(self, now: float) -> dict[str, Value]:
        return dict(self.values)

    def write(self, point: str, value: Value, now: float) -> bool:
        self.values[point] = value
        return True


class Drives:
    """The two simulated drives, each serving the registers of the profile its site file gives it."""

    def __init__(self) -> None:
        self.behaviours = {d: Drive({**COMMON, **v}) for d, v in VALUES.items()}
        self.devices: dict[str, ModbusDevice] = {}

    def start(self, profiles: dict[str, Any]) -> None:
        self.devices = {d: ModbusDevice(d, profiles[d], self.behaviours[d], step_interval_s=0.02) for d in VALUES}

        async def main(stop: Any) -> None:
            for dev in self.devices.values():
                await dev.start()
            try:
                await stop.wait()
            finally:
                for dev in self.devices.values():
                    await dev.stop()

        self.thread = LoopThread(main)
        wait_until(lambda: all(d.port for d in self.devices.values()), what="simulated drives listening")


@pytest.fixture
def keys(tmp_path: Path) -> SiteKeyFiles:
    create_site_keys(tmp_path / "keys", [SITE])
    return SiteKeyFiles.of(tmp_path / "keys", SITE)


@pytest.fixture
def drives() -> Iterator[Drives]:
    d = Drives()
    yield d
    if d.devices:
        d.thread.stop()


def write_site_file(folder: Path, mosquitto: Mosquitto, keys: SiteKeyFiles, tmp_path: Path, drives: Drives) -> Path:
    """The site file, first with port 0, so that the sims can be given the profiles the edge's loader makes."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{SITE}.yaml"

    def device(device_id: str) -> dict[str, Any]:
        dev = drives.devices.get(device_id)
        out: dict[str, Any] = {
            "id": device_id,
            "profile": "pump_drive",
            "host": "127.0.0.1",
            "port": dev.port if dev is not None else 1,
            "poll_interval_s": 0.2,
            "control": {"points": {"frequency_set": {}}, "timeout_s": 5},
        }
        return out | ({"points": OVERRIDE} if device_id == OWN else {})

    site = {
        "site": SITE,
        "control_public_key": str(keys.control_public),
        "site_private_key": str(keys.site_private),
        "broker": account_for(mosquitto, edge_account(SITE), reconnect_initial_s=0.1).model_dump(mode="json"),
        "profile_paths": [str(EXAMPLES / "pump_drive.yaml")],
        "state_dir": str(tmp_path / "edge"),
        "modbus": {"timeout_s": 0.5, "connect_timeout_s": 0.5},
        "devices": [device(OWN), device(PLAIN)],
    }
    path.write_text(yaml.safe_dump(site, sort_keys=False), encoding="utf-8")
    return path


def bridge_config(broker: Mosquitto, influx: Influxd, tmp_path: Path, sites: Path) -> BridgeConfig:
    name = f"bridge-{tmp_path.name}"[:56]
    return BridgeConfig.model_validate(
        {
            "broker": broker.add(replace(bridge_account(), username=name)).model_dump(mode="json"),
            "publisher": broker.add(replace(bridge_publisher_account(), username=f"{name}-pub")).model_dump(
                mode="json"
            ),
            "subscription": {"client_id": name},
            "influx": {"url": influx.url, "database": "lifeline", "timeout_s": 2.0},
            "batch": {"max_points": 2000, "max_delay_s": 0.2},
            "retry": {"initial_s": 0.2, "max_s": 1.0},
            "dead_letter_path": str(tmp_path / "dead.sqlite"),
            "validation": {"sites": [str(sites)]},
        }
    )


def influx_rows(influx: Influxd, q: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{influx.url}/query", params={"db": "lifeline", "q": q, "epoch": "ms"}, timeout=10)
    resp.raise_for_status()
    out = []
    for result in resp.json()["results"]:
        for series in result.get("series", []):
            out += [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]
    return out


@pytest.fixture
def chain(
    mosquitto: Mosquitto,
    influxdb: Influxd,
    tmp_path: Path,
    keys: SiteKeyFiles,
    drives: Drives,
    start_agent: StartAgent,
) -> Iterator[tuple[RunningApi, Bridge]]:
    sites = tmp_path / "sites"
    first = load_site(write_site_file(sites, mosquitto, keys, tmp_path, drives))  # the edge's own loader
    drives.start({d.id: first.profile_of(d) for d in first.config.devices})  # each drive as its site file has it
    site = load_site(write_site_file(sites, mosquitto, keys, tmp_path, drives))

    holder: dict[str, Bridge] = {}

    async def run_bridge(stop: Any) -> None:
        holder["bridge"] = Bridge(bridge_config(mosquitto, influxdb, tmp_path, sites), load_site=known_site)
        await holder["bridge"].run(stop)

    bridge_thread = LoopThread(run_bridge)
    wait_until(lambda: "bridge" in holder and holder["bridge"].consumer.connected, 10, "bridge connected")
    config = make_config(
        tmp_path,
        mqtt=mosquitto,
        areas={"pumps": [SITE]},
        profile_paths=[str(EXAMPLES / "pump_drive.yaml")],
        site_keys={SITE: {"control_private_key": str(keys.control_private), "site_public_key": str(keys.site_public)}},
        sites=[str(sites)],
    )
    service = ApiService(config, load_site=known_site)  # as `lifeline api` builds it
    service.users.create("op", PASSWORD, Role.GATE_OPERATOR, ["pumps"])
    api = RunningApi(service)
    try:
        wait_until(service.link.connected.is_set, what="the API connected to the broker")
        start_agent(site.config)
        for dev in VALUES:
            wait_until(lambda d=dev: _has_values(api, d), 15, f"{dev} telemetry in the API")
        yield api, holder["bridge"]
    finally:
        api.stop()
        bridge_thread.stop()


def _has_values(api: RunningApi, device: str) -> bool:
    state = api.service.cache.get(SITE, device)
    return state is not None and state.has_values


def test_set_points_are_judged_by_the_device_range(chain: tuple[RunningApi, Bridge], drives: Drives) -> None:
    api, _ = chain
    h = login(api.client, "op")

    def write(device: str, value: float) -> httpx.Response:
        url = f"/api/devices/{SITE}/{device}/points/frequency_set/write"
        return api.client.post(url, headers=h, json={"value": value})

    above_own = write(OWN, 65)
    assert above_own.status_code == 409, above_own.text
    assert "above the highest value 60" in above_own.text
    above_plain = write(PLAIN, 55)  # the same value on a drive that keeps the profile's 50 Hz
    assert above_plain.status_code == 409, above_plain.text
    assert "above the highest value 50" in above_plain.text

    r = write(OWN, 57.5)  # above the profile's range, inside the drive's own; written at 0.1 Hz (raw 575)
    assert r.status_code == 201, r.text
    command_id = r.json()["id"]
    wait_until(
        lambda: api.client.get(f"/api/commands/{command_id}", headers=h).json().get("final"), 15, "the write final"
    )
    done = api.client.get(f"/api/commands/{command_id}", headers=h).json()
    assert done["state"] == "completed", done
    assert done["after"] == {"frequency_set": 57.5}
    assert drives.behaviours[OWN].values["frequency_set"] == pytest.approx(57.5)
    assert drives.behaviours[PLAIN].values["frequency_set"] == 40.0, "the refused write was never sent"


def test_the_api_shows_the_device_own_point_specs(chain: tuple[RunningApi, Bridge]) -> None:
    api, _ = chain
    h = login(api.client, "op")
    devices = {d["device"]: d for d in api.client.get(f"/api/sites/{SITE}/devices", headers=h).json()}
    assert devices[OWN]["own_profile"] is True
    assert devices[PLAIN]["own_profile"] is False

    own = api.client.get(f"/api/sites/{SITE}/devices/{OWN}/profile", headers=h)
    assert own.status_code == 200, own.text
    points = own.json()["points"]
    assert points["frequency"] == {"unit": "Hz", "decimals": 1, "states": None, "range": [0, 60]}
    assert points["frequency_set"]["range"] == [0, 60]
    assert points["current"]["decimals"] == 1  # not changed: the profile's

    shipped = api.client.get("/api/profiles/pump_drive", headers=h).json()["points"]
    assert shipped["frequency"] == {"unit": "Hz", "decimals": 2, "states": None, "range": [0, 50]}
    plain = api.client.get(f"/api/sites/{SITE}/devices/{PLAIN}/profile", headers=h).json()["points"]
    assert plain == shipped


def test_the_bridge_stores_a_reading_valid_for_the_device_as_good(
    chain: tuple[RunningApi, Bridge], influxdb: Influxd
) -> None:
    _, bridge = chain
    query = f"""SELECT * FROM "pump" WHERE "device" = '{OWN}'"""
    wait_until(lambda: influx_rows(influxdb, query), 15, f"{OWN} readings stored")
    rows = influx_rows(influxdb, query)
    assert {r["frequency"] for r in rows} == {55.0}  # outside the profile's [0, 50], inside the drive's [0, 60]
    assert all(r.get("frequency.q") is None for r in rows), "judged by the drive's range: good, not uncertain"
    assert bridge.counters.dead_lettered == 0
    assert bridge.registry.profile_of(SITE, OWN, "pump_drive") is not bridge.registry.profiles["pump_drive"]


def test_a_controller_channel_shows_its_own_unit_and_decimals(tmp_path: Path) -> None:
    """The gas controller of device_profiles/examples/gas_controller_8ch.yaml reads every channel in 0.1 %LEL; on
    this one channel 8 carries a CO detector (0-1000 ppm, whole numbers) and channel 1 a detector set to 0.01 %LEL.
    The API (its sites read by the edge's loader, no broker) answers that device's own specs, the other's as shipped."""
    sites = tmp_path / "sites"
    sites.mkdir()
    own = {"ch1_lel": {"scale": 0.01, "decimals": 2}, "ch8_lel": {"scale": 1, "unit": "ppm", "range": [0, 1000]}}
    devices = [
        {"id": "gas-ctl", "profile": "gas_controller_8ch", "host": "192.0.2.1", "unit_id": 247, "points": own},
        {"id": "gas-ctl-2", "profile": "gas_controller_8ch", "host": "192.0.2.2", "unit_id": 247},
    ]
    site = {"site": SITE, "profile_paths": [str(EXAMPLES / "gas_controller_8ch.yaml")], "devices": devices}
    (sites / f"{SITE}.yaml").write_text(yaml.safe_dump(site), encoding="utf-8")
    config = make_config(
        tmp_path, areas={"pumps": [SITE]}, profile_paths=[str(EXAMPLES / "gas_controller_8ch.yaml")], sites=[str(sites)]
    )
    service = ApiService(config, load_site=known_site)
    service.users.create("viewer", PASSWORD, Role.VIEWER, [])
    for device in ("gas-ctl", "gas-ctl-2"):  # one reading each, as the API hears it from the broker
        body = Telemetry(
            site=SITE,
            device=device,
            profile="gas_controller_8ch",
            measurement="gas_safety",
            seq=1,
            samples=[Sample(ts=service.clock(), values={"ch1_lel": 1.25, "ch8_lel": 35})],
        )
        service.handle_message(topics.telemetry(SITE, device), encode(body))
    api = RunningApi(service, connect=False)
    try:
        h = login(api.client, "viewer")
        detail = api.client.get(f"/api/sites/{SITE}/devices/gas-ctl", headers=h).json()
        assert detail["own_profile"] is True
        points = api.client.get(f"/api/sites/{SITE}/devices/gas-ctl/profile", headers=h).json()["points"]
        assert points["ch8_lel"] == {"unit": "ppm", "decimals": None, "states": None, "range": [0, 1000]}
        assert points["ch1_lel"] == {"unit": "%LEL", "decimals": 2, "states": None, "range": [0, 100]}
        assert points["ch2_lel"] == {"unit": "%LEL", "decimals": 1, "states": None, "range": [0, 100]}
        other = api.client.get(f"/api/sites/{SITE}/devices/gas-ctl-2/profile", headers=h).json()["points"]
        assert other["ch8_lel"] == {"unit": "%LEL", "decimals": 1, "states": None, "range": [0, 100]}
        assert api.client.get(f"/api/sites/{SITE}/devices/gas-ctl-2", headers=h).json()["own_profile"] is False
        refused = api.client.get(f"/api/sites/{SITE}/devices/nothing/profile", headers=h)
        assert refused.status_code == 404
    finally:
        api.stop()
