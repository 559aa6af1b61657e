"""The shared validation (bridge and rules engine) knows a device's own profile: the site file's ``points:`` changes
applied by the edge's loader (``LoadedSite.profile_of``), read through ``lifeline.bridge_cli.known_site`` as both
services read their ``sites``. A drive of device_profiles/examples/pump_drive.yaml runs a 60 Hz motor: its site file
makes its frequency 0.1 Hz and [0, 60] Hz."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from device_profiles import load_catalogue
from device_profiles.validate import Invalid, Registry, check_telemetry
from infra.mqtt import Incoming
from lifeline.bridge_cli import known_site
from rules import RuleFile
from rules.config import RulesConfig
from rules.evaluate import Transition
from rules.service import RulesService
from telemetry import Sample, Telemetry, encode, topics
from tests.helpers import FakeStateTx

EXAMPLES = Path(__file__).parents[2] / "device_profiles" / "examples"
SITE, OWN, PLAIN = "pump-station-3", "drive-60", "drive-50"
NOW = 1_760_000_000_000
OVERRIDE = {"frequency": {"scale": 0.1, "range": [0, 60], "decimals": 1}, "frequency_set": {"range": [0, 60]}}


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    folder = tmp_path / "sites"
    folder.mkdir()
    devices = [
        {"id": OWN, "profile": "pump_drive", "host": "192.0.2.1", "points": OVERRIDE},
        {"id": PLAIN, "profile": "pump_drive", "host": "192.0.2.2"},
    ]
    site = {"site": SITE, "profile_paths": [str(EXAMPLES / "pump_drive.yaml")], "devices": devices}
    (folder / f"{SITE}.yaml").write_text(yaml.safe_dump(site), encoding="utf-8")
    return folder


def reading(device: str, **values: Any) -> bytes:
    body = Telemetry(
        site=SITE,
        device=device,
        profile="pump_drive",
        measurement="pump",
        seq=1,
        samples=[Sample(ts=NOW, values=values)],
    )
    return encode(body)


def test_the_registry_gives_each_device_its_own_profile(sites: Path) -> None:
    registry = Registry.from_sites(dict(load_catalogue()), [sites], known_site)
    own = registry.profile_of(SITE, OWN, "pump_drive")
    assert own is not None
    assert own.modbus is not None
    frequency = {p.name: p for p in own.modbus.points}["frequency"]
    assert (frequency.scale, frequency.range, frequency.decimals) == (0.1, (0, 60), 1)
    assert registry.profile_of(SITE, PLAIN, "pump_drive") is registry.profiles["pump_drive"]
    assert registry.profile_of("elsewhere", OWN, "pump_drive") is registry.profiles["pump_drive"]
    assert registry.profile_of(SITE, OWN, "gas_detector") is registry.profiles["gas_detector"]  # not its profile


def test_a_reading_is_judged_by_the_device_own_profile(sites: Path) -> None:
    registry = Registry.from_sites(dict(load_catalogue()), [sites], known_site)
    msg = check_telemetry(topics.telemetry(SITE, OWN), reading(OWN, frequency=55.0, frequency_set=55.0), registry)
    assert msg.samples[0].values["frequency"] == 55.0
    assert (SITE, OWN) in registry.own_types
    assert (SITE, PLAIN) not in registry.own_types
    assert any(key == f"{SITE}/{OWN}" for key, _, _ in registry.checked), "checked against the device's own types"
    with pytest.raises(Invalid, match="declared uint16"):  # the own profile is still a profile: types hold
        check_telemetry(topics.telemetry(SITE, OWN), reading(OWN, frequency="55 Hz"), registry)
    with pytest.raises(Invalid, match="not in profile"):
        check_telemetry(topics.telemetry(SITE, OWN), reading(OWN, speed=1.0), registry)


def test_the_rules_engine_reads_the_device_own_profile_from_its_sites(sites: Path, tmp_path: Path) -> None:
    async def sink(transitions: list[Transition], checkpoint: tuple[str, dict[str, Any]] | None) -> None:
        return None  # the transitions are read from feed() below

    rules = RuleFile.model_validate(
        {
            "rules": [
                {
                    "id": "drive.fast",
                    "title": "Drive above 58 Hz",
                    "select": {"profile": "pump_drive"},
                    "threshold": {
                        "point": "frequency",
                        "direction": "high",
                        "levels": [{"severity": "warning", "value": 58}],
                    },
                }
            ]
        }
    ).rules
    config = RulesConfig(dead_letter_path=tmp_path / "dead.sqlite", sites=[sites])
    service = RulesService(config, rules, sink, FakeStateTx(), clock=lambda: NOW / 1000, load_site=known_site)

    def feed(device: str, hz: float) -> list[Transition]:
        return service._evaluate(Incoming(1, 1, topics.telemetry(SITE, device), reading(device, frequency=hz), 1))

    assert feed(OWN, 55.0) == []  # above the profile's range, inside the drive's: valid, below the rule's 58 Hz
    (t,) = feed(OWN, 59.0)
    assert (t.rule, t.device, t.severity) == ("drive.fast", OWN, "warning")
    assert service.counters.invalid == 0
    assert service.registry.profile_of(SITE, OWN, "pump_drive") is not service.registry.profiles["pump_drive"]


@pytest.mark.parametrize(("limit", "problem"), [(58, None), (65, "within the profile's range [0, 60]")])
def test_a_device_control_limit_is_checked_against_its_own_range(
    tmp_path: Path, limit: float, problem: str | None
) -> None:
    """The edge's own check of ``control.points``: a drive's limit of 58 Hz is inside its own [0, 60] range."""
    from edge_agent.config import load_site
    from infra.config_loader import ConfigError

    device = {
        "id": OWN,
        "profile": "pump_drive",
        "host": "192.0.2.1",
        "points": OVERRIDE,
        "control": {"points": {"frequency_set": {"max": limit}}},
    }
    path = tmp_path / "site.yaml"
    site = {"site": SITE, "profile_paths": [str(EXAMPLES / "pump_drive.yaml")], "devices": [device]}
    path.write_text(yaml.safe_dump(site), encoding="utf-8")
    if problem is None:
        loaded = load_site(path)
        assert loaded.config.devices[0].control is not None
    else:
        with pytest.raises(ConfigError, match=re.escape(problem)):
            load_site(path)
