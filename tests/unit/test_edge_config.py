"""The edge agent's site file: a valid site loads; a broken one is refused naming file:line, device and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from device_profiles import CATALOGUE
from edge_agent.config import load_site
from infra.config_loader import ConfigError

SITE = """\
# Test site: one Modbus device, one MQTT sensor
site: plant-1
broker:
  host: 127.0.0.1
  port: 1883
devices:
  - id: gate-1
    profile: sluice_gate_plc
    host: 127.0.0.2
    port: 502
    unit_id: 3
  - id: gas-1
    profile: gas_detector
    source_id: GD0001x
"""


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_site_loads(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, SITE.replace("GD0001x", "gd0001")))
    gate, gas = site.config.devices
    assert (site.config.site, site.config.client_id, site.config.broker.port) == ("plant-1", "edge-plant-1", 1883)
    assert (gate.id, gate.host, gate.port, gate.unit_id) == ("gate-1", "127.0.0.2", 502, 3)
    assert (gas.id, gas.host, gas.vendor_id) == ("gas-1", None, "gd0001")
    assert site.profile_of(gate).protocol == "modbus"
    assert site.profile_of(gas).protocol == "mqtt"
    assert site.path == tmp_path / "site.yaml"


def test_mqtt_device_vendor_id_defaults_to_its_id(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, SITE.replace("    source_id: GD0001x\n", "")))
    assert site.config.devices[1].vendor_id == "gas-1"


def test_site_profile_paths_are_relative_to_the_site_file(tmp_path: Path) -> None:
    text = (CATALOGUE / "noise_meter.yaml").read_text(encoding="utf-8").replace("name: noise_meter", "name: my_noise")
    (tmp_path / "profiles").mkdir()
    write(tmp_path / "profiles", text, "my_noise.yaml")
    site_text = SITE.replace("broker:", "profile_paths: [profiles]\nbroker:")
    site_text += "  - id: noise-1\n    profile: my_noise\n"
    site = load_site(write(tmp_path, site_text))
    assert site.profile_of(site.config.devices[2]).name == "my_noise"
    assert "sluice_gate_plc" in site.profiles  # the catalogue is still there


@dataclass(frozen=True)
class Broken:
    old: str  # text of SITE replaced
    new: str
    bad_line: str  # text on the line the error must name (unique in the broken file)
    where: str  # device and field, as the error names them
    reason: str


BROKEN = [
    pytest.param(
        Broken(
            "profile: gas_detector",
            "profile: gas_detectr",
            "profile: gas_detectr",
            "device 'gas-1', field profile",
            "unknown profile 'gas_detectr' (known: air_quality_station, ",
        ),
        id="unknown-profile-lists-known-ones",
    ),
    pytest.param(
        Broken(
            "    host: 127.0.0.2\n", "", "id: gate-1", "device 'gate-1', field host", "a Modbus device needs a host"
        ),
        id="modbus-device-without-host",
    ),
    pytest.param(
        Broken(
            "id: gas-1",
            "id: agent",
            "id: agent",
            "site config, field devices[1] (agent).id",
            "device id 'agent' is reserved",
        ),
        id="device-id-agent",
    ),
    pytest.param(
        Broken(
            "port: 502",
            "port: 70000",
            "port: 70000",
            "site config, field devices[0] (gate-1).port",
            "less than or equal to 65535",
        ),
        id="device-port-above-65535",
    ),
    pytest.param(
        Broken(
            "port: 502",
            "port: 0",
            "port: 0",
            "site config, field devices[0] (gate-1).port",
            "greater than or equal to 1",
        ),
        id="device-port-zero",
    ),
    pytest.param(
        Broken(
            "port: 502", "port: modbus", "port: modbus", "site config, field devices[0] (gate-1).port", "valid integer"
        ),
        id="device-port-not-a-number",
    ),
    pytest.param(
        Broken(
            "port: 1883",
            "port: 188300",
            "port: 188300",
            "site config, field broker.port",
            "less than or equal to 65535",
        ),
        id="broker-port-above-65535",
    ),
    pytest.param(
        Broken(
            "unit_id: 3",
            "unit_id: 3\n    hostname: plc-1",
            "hostname: plc-1",
            "site config, field devices[0] (gate-1).hostname",
            "Extra inputs are not permitted",
        ),
        id="unknown-key-in-a-device",
    ),
    pytest.param(
        Broken("broker:", "brokers:", "brokers:", "site config, field brokers", "Extra inputs are not permitted"),
        id="unknown-top-level-key",
    ),
    pytest.param(
        Broken(
            "id: gas-1", "id: Gas 1", "id: Gas 1", "site config, field devices[1] (Gas 1).id", "should match pattern"
        ),
        id="device-id-not-an-id",
    ),
    pytest.param(
        Broken("site: plant-1", "site: Plant/1", "site: Plant/1", "site config, field site", "should match pattern"),
        id="site-id-not-an-id",
    ),
]


def write_broken(tmp_path: Path, case: Broken) -> tuple[Path, int]:
    assert SITE.count(case.old) == 1, f"{case.old!r} must occur once in SITE"
    text = SITE.replace(case.old, case.new)
    lines = [n for n, line in enumerate(text.splitlines(), 1) if case.bad_line in line]
    assert len(lines) == 1, f"{case.bad_line!r} must occur on one line"
    return write(tmp_path, text), lines[0]


@pytest.mark.parametrize("case", BROKEN)
def test_broken_site_error_names_file_line_device_and_field(tmp_path: Path, case: Broken) -> None:
    path, line = write_broken(tmp_path, case)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:{line}: {case.where}: ")
    assert case.reason in err.value.problems[0]


def test_duplicate_device_ids(tmp_path: Path) -> None:
    path = write(tmp_path, SITE.replace("id: gas-1", "id: gate-1"))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:")
    assert "device id 'gate-1' is used twice" in problem


def test_duplicate_device_id_names_the_line_of_the_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, SITE.replace("id: gas-1", "id: gate-1"))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert err.value.problems[0].startswith(f"{path}:12: ")


def test_every_device_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, SITE.replace("    host: 127.0.0.2\n", "").replace("profile: gas_detector", "profile: x"))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert [p.split(": ")[1] for p in err.value.problems] == [
        "device 'gate-1', field host",
        "device 'gas-1', field profile",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "site: s\ndevices: []\n",
            ":2: site config, field devices: List should have at least 1 item",
            id="no-devices",
        ),
        pytest.param("site: s\n", ":1: site config, field devices: Field required", id="devices-missing"),
        pytest.param("site: s\ndevices:\n  - {id: a, profile: noise_meter\n", ":4: not valid YAML", id="yaml-syntax"),
        pytest.param("- site: s\n", ":1: site config must be a mapping", id="not-a-mapping"),
    ],
)
def test_malformed_site_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{path}{message}"):
        load_site(path)


def test_broken_extra_profile_is_reported_with_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    text = (CATALOGUE / "noise_meter.yaml").read_text(encoding="utf-8").replace("name: noise_meter", "name: Noise")
    profile = write(tmp_path / "profiles", text, "noise.yaml")
    with pytest.raises(ConfigError, match=f"^{profile}:3: profile 'Noise', field name: String should match pattern"):
        load_site(write(tmp_path, SITE.replace("broker:", "profile_paths: [profiles]\nbroker:")))


# -- keys (decision record 009) -------------------------------------------------------------------------------------
def _with_keys(tmp_path: Path, control: str = "keys/plant-1/control.pub", site: str = "keys/plant-1/site.key") -> Path:
    from telemetry.keys import create_site_keys

    create_site_keys(tmp_path / "keys", ["plant-1"])
    return write(tmp_path, SITE.replace("broker:", f"control_public_key: {control}\nsite_private_key: {site}\nbroker:"))


def test_keys_load_relative_to_the_site_file(tmp_path: Path) -> None:
    from telemetry.keys import load_verify_key

    site = load_site(_with_keys(tmp_path))
    assert site.keys is not None
    assert site.keys.control.kid == load_verify_key(tmp_path / "keys/plant-1/control.pub").kid
    assert site.keys.site.verify_key.kid == load_verify_key(tmp_path / "keys/plant-1/site.pub").kid


def test_no_keys_is_allowed_and_means_none(tmp_path: Path) -> None:
    assert load_site(write(tmp_path, SITE.replace("GD0001x", "gd0001"))).keys is None


def test_one_key_without_the_other_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SITE.replace("broker:", "control_public_key: control.pub\nbroker:"))
    with pytest.raises(ConfigError, match=r"site_private_key.*go together"):
        load_site(path)


def test_a_group_readable_site_key_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    path = _with_keys(tmp_path)
    key = tmp_path / "keys/plant-1/site.key"
    key.chmod(0o640)
    with pytest.raises(ConfigError) as info:
        load_site(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:4: field site_private_key: {key}: private key file is accessible by group")


def test_a_missing_control_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _with_keys(tmp_path, control="keys/plant-1/nowhere.pub")
    with pytest.raises(ConfigError, match=r"site\.yaml:3: field control_public_key: .*nowhere\.pub: cannot read"):
        load_site(path)
