"""The shipped scenarios give every water station the tags its daily class needs (water body, target class) and
every noise meter its GB 3096-2008 functional zone."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.indices import water_station
from rules.standards import NoiseZone
from simulators.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "simulators" / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_env_stations_are_tagged(path: Path) -> None:
    devices = [(site.site, d) for site in load_scenario(path).sites for d in site.devices]
    water = [(s, d) for s, d in devices if d.profile == "water_quality_station"]
    noise = [(s, d) for s, d in devices if d.profile == "noise_meter"]
    assert water
    assert noise
    for site, d in water:
        station = water_station((("device", d.id), ("site", site), *sorted(d.tags.items())))
        assert station.target_class is not None, f"{path.name}: {d.id} has no target_class"
    for _, d in noise:
        assert d.tags.get("noise_zone") in {z.value for z in NoiseZone}, f"{path.name}: {d.id}"
