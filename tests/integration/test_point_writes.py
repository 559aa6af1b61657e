"""Set points end to end, no stand-ins: API (uvicorn) -> Mosquitto -> a real edge agent -> Modbus writes on simulated
devices -> read back -> signed results -> API and its audit.

Two devices as their manuals describe them: a gas-detector controller whose level-1 alarm threshold is one holding
register written with function 06, and a pump drive whose frequency set point is a float32 in two holding registers
written with function 16. The simulator records the function codes it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from api import ApiService
from api.auth import Role
from device_profiles import load_profiles
from edge_agent import EdgeConfig
from lifeline.broker_auth import edge_account
from lifeline.cli import parser as cli_parser
from lifeline.write_cli import EXIT_REFUSED, PASSWORD_ENV
from simulators import ModbusDevice
from simulators.behaviours import Behaviour, Value
from telemetry.keys import SiteKeyFiles, create_site_keys
from testing import Mosquitto
from tests.helpers import LoopThread, account_for, wait_until
from tests.integration.conftest import StartAgent
from tests.integration.test_api_support import PASSWORD, RunningApi, login, make_config

pytestmark = pytest.mark.integration

SITE, GAS, DRIVE = "plant-7", "gas-ctl", "drive-3"
PROFILES = {
    "gas_controller_8ch.yaml": """
name: gas_controller_8ch
title: 8-channel gas-detector controller
kind: gas_controller
protocol: modbus
measurement: gas_safety
poll_interval_s: 0.2
modbus:
  points:
    - {name: ch1_lel, function: holding_register, address: 0, type: uint16, scale: 0.1, unit: "%LEL", range: [0, 100]}
    - {name: alarm_l1, function: holding_register, address: 16, type: uint16, unit: "%LEL", range: [5, 60], step: 1,
       writable: true, write_function: 6, description: "level-1 alarm threshold (manual: 0x10, write with 06)"}
""",
    "pump_drive.yaml": """
name: pump_drive
title: Pump drive (frequency converter)
kind: drive
protocol: modbus
measurement: pumps
poll_interval_s: 0.2
modbus:
  points:
    - {name: output_hz, function: holding_register, address: 4096, type: float32, unit: Hz, range: [0, 60]}
    - {name: freq_setpoint, function: holding_register, address: 8192, type: float32, unit: Hz, range: [0, 60],
       step: 0.01, writable: true, write_function: 16, description: "frequency set point (manual: 2000H, 16)"}
""",
}


class SetPoints(Behaviour):
    """A device that keeps what is written to it and reports it back."""

    profile = "any"

    def __init__(self, values: dict[str, Value]) -> None:
        super().__init__(0)
        self.values = dict(values)
        self.ignored: set[str] = set()  # points whose writes the device accepts on the wire and then ignores

    def step(self, now: float) -> dict[str, Value]:
        return dict(self.values)

    def write(self, point: str, value: Value, now: float) -> bool:
        if point in self.ignored:
            return False
        self.values[point] = value
        return True


@dataclass
class Sim:
    device: ModbusDevice
    behaviour: SetPoints
    functions: list[int] = field(default_factory=list)


class Plant:
    """The two simulated devices on one loop thread, each recording the Modbus function codes written to it."""

    def __init__(self, profiles: dict[str, Any]) -> None:
        self.sims = {
            GAS: self._sim(GAS, profiles["gas_controller_8ch"], {"ch1_lel": 0.4, "alarm_l1": 20}),
            DRIVE: self._sim(DRIVE, profiles["pump_drive"], {"output_hz": 0.0, "freq_setpoint": 0.0}),
        }

        async def main(stop: Any) -> None:
            for s in self.sims.values():
                await s.device.start()
            try:
                await stop.wait()
            finally:
                for s in self.sims.values():
                    await s.device.stop()

        self.thread = LoopThread(main)
        wait_until(lambda: all(s.device.port for s in self.sims.values()), what="simulated devices listening")

    @staticmethod
    def _sim(device_id: str, profile: Any, values: dict[str, Value]) -> Sim:
        behaviour = SetPoints(values)
        sim = Sim(ModbusDevice(device_id, profile, behaviour, step_interval_s=0.02), behaviour)
        original = sim.device.write

        async def write(unit: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]) -> Any:
            sim.functions.append(func_code)
            return await original(unit, func_code, address, values)

        sim.device.write = write  # type: ignore[method-assign]
        return sim

    def stop(self) -> None:
        self.thread.stop()


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name, text in PROFILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def keys(tmp_path: Path) -> SiteKeyFiles:
    create_site_keys(tmp_path / "keys", [SITE])
    return SiteKeyFiles.of(tmp_path / "keys", SITE)


@pytest.fixture
def plant(profiles_dir: Path) -> Iterator[Plant]:
    p = Plant(load_profiles([profiles_dir]))
    yield p
    p.stop()


@pytest.fixture
def api(mosquitto: Mosquitto, tmp_path: Path, keys: SiteKeyFiles, profiles_dir: Path) -> Iterator[RunningApi]:
    config = make_config(
        tmp_path,
        mqtt=mosquitto,
        areas={"plant": [SITE]},
        profile_paths=[str(profiles_dir)],
        site_keys={SITE: {"control_private_key": str(keys.control_private), "site_public_key": str(keys.site_public)}},
    )
    service = ApiService(config)
    service.users.create("op-li", PASSWORD, Role.GATE_OPERATOR, ["plant"])
    service.users.create("op-far", PASSWORD, Role.GATE_OPERATOR, ["elsewhere"])
    service.users.create("watcher", PASSWORD, Role.VIEWER, [])
    service.users.create("boss", PASSWORD, Role.ADMIN, [])
    running = RunningApi(service)
    wait_until(service.link.connected.is_set, what="the API connected to the broker")
    yield running
    running.stop()


def edge_config(
    mosquitto: Mosquitto, tmp_path: Path, keys: SiteKeyFiles, profiles_dir: Path, plant: Plant
) -> EdgeConfig:
    def device(device_id: str, profile: str, points: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": device_id,
            "profile": profile,
            "host": "127.0.0.1",
            "port": plant.sims[device_id].device.port,
            "control": {"points": points, "timeout_s": 5},
        }

    return EdgeConfig.model_validate(
        {
            "site": SITE,
            "control_public_key": str(keys.control_public),
            "site_private_key": str(keys.site_private),
            "broker": account_for(mosquitto, edge_account(SITE), reconnect_initial_s=0.1).model_dump(mode="json"),
            "profile_paths": [str(profiles_dir)],
            "state_dir": str(tmp_path / "edge"),
            "modbus": {"timeout_s": 0.5, "connect_timeout_s": 0.5},
            "devices": [
                device(GAS, "gas_controller_8ch", {"alarm_l1": {}}),
                device(DRIVE, "pump_drive", {"freq_setpoint": {"max": 50}}),  # the drive's own limit, below the range
            ],
        }
    )


@pytest.fixture
def running(
    api: RunningApi,
    plant: Plant,
    start_agent: StartAgent,
    mosquitto: Mosquitto,
    tmp_path: Path,
    keys: SiteKeyFiles,
    profiles_dir: Path,
) -> RunningApi:
    start_agent(edge_config(mosquitto, tmp_path, keys, profiles_dir, plant))
    for dev in (GAS, DRIVE):
        wait_until(lambda d=dev: _has_values(api, d), 15, f"{dev} telemetry in the API")
    return api


def _has_values(api: RunningApi, device: str) -> bool:
    state = api.service.cache.get(SITE, device)
    return state is not None and state.has_values


def write(api: RunningApi, headers: dict[str, str], device: str, point: str, value: object) -> Any:
    return api.client.post(f"/api/devices/{SITE}/{device}/points/{point}/write", headers=headers, json={"value": value})


def final(api: RunningApi, headers: dict[str, str], command_id: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    got: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = api.client.get(f"/api/commands/{command_id}", headers=headers).json()
        if got.get("final"):
            return got
        time.sleep(0.1)
    raise AssertionError(f"command {command_id} not final within {timeout} s: {got}")


def audit(api: RunningApi, prefix: str) -> list[dict[str, Any]]:
    r = api.client.get("/api/audit", headers=login(api.client, "boss"), params={"target_prefix": prefix})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()))


@pytest.mark.parametrize(
    ("device", "point", "value", "function", "other"),
    [
        (GAS, "alarm_l1", 25, 6, {"ch1_lel": 0.4}),
        (DRIVE, "freq_setpoint", 37.5, 16, {"output_hz": 0.0}),
    ],
    ids=["gas-controller-alarm-threshold-fc06", "drive-frequency-set-point-fc16"],
)
def test_a_set_point_is_written_with_its_function_read_back_and_audited(
    running: RunningApi, plant: Plant, device: str, point: str, value: float, function: int, other: dict[str, Any]
) -> None:
    h = login(running.client, "op-li")
    r = write(running, h, device, point, value)
    assert r.status_code == 201, r.text
    done = final(running, h, r.json()["id"])
    assert done["state"] == "completed", done
    assert [s["state"] for s in done["steps"]] == ["received", "accepted", "completed"]
    assert done["after"] == {point: value}  # read back from the device
    assert (done["action"], done["point"], done["value"]) == ("write", point, value)
    sim = plant.sims[device]
    assert sim.functions == [function], "the function the profile names, once"
    assert sim.behaviour.values[point] == pytest.approx(value)
    assert {k: sim.behaviour.values[k] for k in other} == other, "nothing else written"
    rows = audit(running, f"point:{SITE}/{device}/{point}/cmd/{done['id']}")
    assert [a["action"] for a in rows] == [
        "point.write",
        "point.write.received",
        "point.write.accepted",
        "point.write.completed",
    ]
    assert {a["who"] for a in rows} == {"op-li"}
    assert rows[0]["detail"]["value"] == value
    assert rows[-1]["detail"]["after"] == {point: value}


REFUSED: list[tuple[str, str, str, object, int, str, str]] = [
    ("above-range", "op-li", "alarm_l1", 80, 409, "out_of_limits", "above the highest value 60"),
    ("below-range", "op-li", "alarm_l1", 2, 409, "out_of_limits", "below the lowest value 5"),
    ("off-step", "op-li", "alarm_l1", 25.5, 409, "out_of_limits", "not a multiple of the step 1"),
    ("boolean-for-number", "op-li", "alarm_l1", True, 409, "out_of_limits", "takes a number"),
    ("read-only-point", "op-li", "ch1_lel", 10, 409, "not_writable", "does not mark it writable"),
    ("no-such-point", "op-li", "alarm_l9", 10, 409, "not_writable", "has no such point"),
    ("viewer-role", "watcher", "alarm_l1", 25, 403, "role", "may not operate"),
    ("outside-areas", "op-far", "alarm_l1", 25, 403, "area", "outside your areas"),
]


@pytest.mark.parametrize(
    ("user", "point", "value", "status", "interlock", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_write_the_api_refuses_is_audited_with_its_reason_and_never_sent(
    running: RunningApi, plant: Plant, user: str, point: str, value: object, status: int, interlock: str, words: str
) -> None:
    h = login(running.client, user)
    r = write(running, h, GAS, point, value)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail["interlock"] == interlock
    assert words in detail["reason"]
    rows = [a for a in audit(running, f"point:{SITE}/{GAS}/{point}") if a["action"] == "point.write.refused"]
    assert len(rows) == 1
    assert rows[0]["detail"]["interlock"] == interlock
    assert plant.sims[GAS].functions == [], "nothing reached the device"


def test_the_edge_refuses_a_value_beyond_the_devices_own_limit(running: RunningApi, plant: Plant) -> None:
    h = login(running.client, "op-li")
    r = write(running, h, DRIVE, "freq_setpoint", 55)  # within the profile's range [0, 60]: the API sends it
    assert r.status_code == 201, r.text
    done = final(running, h, r.json()["id"])
    assert (done["state"], done["interlock"]) == ("rejected", "out_of_limits"), done
    assert "above the highest value 50" in done["reason"]
    assert plant.sims[DRIVE].functions == [], "nothing written"
    assert plant.sims[DRIVE].behaviour.values["freq_setpoint"] == 0.0


def test_the_cli_writes_a_set_point_through_the_api(
    running: RunningApi, plant: Plant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    args = cli_parser().parse_args(["write", SITE, GAS, "alarm_l1", "30", "--api", running.url, "--user", "op-li"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "received" in out
    assert out.rstrip().endswith("completed: function 6")
    assert plant.sims[GAS].behaviour.values["alarm_l1"] == 30
    args = cli_parser().parse_args(["write", SITE, GAS, "alarm_l1", "90", "--api", running.url, "--user", "op-li"])
    assert args.func(args) == EXIT_REFUSED
    assert "refused (409): 90 is above the highest value 60" in capsys.readouterr().out


def test_a_value_the_device_does_not_take_fails_naming_what_was_read_back(running: RunningApi, plant: Plant) -> None:
    plant.sims[GAS].behaviour.ignored.add("alarm_l1")  # e.g. a controller that takes set points only in its menu
    h = login(running.client, "op-li")
    r = write(running, h, GAS, "alarm_l1", 30)
    done = final(running, h, r.json()["id"])
    assert done["state"] == "failed", done
    assert "read back 20" in done["reason"]
    assert "did not take the value" in done["reason"]
    assert plant.sims[GAS].functions == [6], "written once, never retried blindly"


def test_select_before_operate_when_the_api_asks_for_it(running: RunningApi, plant: Plant) -> None:
    svc = running.service.gates
    svc.gates = svc.gates.model_copy(update={"write_selection": True})
    h = login(running.client, "op-li")
    r = write(running, h, GAS, "alarm_l1", 30)
    assert (r.status_code, r.json()["detail"]["interlock"]) == (409, "selection"), r.text
    selection = running.client.post(f"/api/devices/{SITE}/{GAS}/select", headers=h).json()["selection"]
    path = f"/api/devices/{SITE}/{GAS}/points/alarm_l1/write"
    r = running.client.post(path, headers=h, json={"value": 30, "selection": selection})
    assert r.status_code == 201, r.text
    assert final(running, h, r.json()["id"])["state"] == "completed"
    r = running.client.post(path, headers=h, json={"value": 31, "selection": selection})
    assert (r.status_code, r.json()["detail"]["code"]) == (409, "interlock.selection.used"), r.text


def test_a_write_to_a_device_the_api_has_no_telemetry_of_is_refused_as_no_data(running: RunningApi) -> None:
    r = write(running, login(running.client, "op-li"), "no-such-device", "alarm_l1", 25)
    assert r.status_code == 409, r.text
    assert (r.json()["detail"]["interlock"], r.json()["detail"]["code"]) == (
        "no_data",
        "interlock.no_data.no_telemetry",
    )
