"""Simulated CEMS → edge agent → Mosquitto: the agent adds the O2-corrected values and loads to every sample from
the device's `o2_ref` tag (mini scenario: a coal unit at 6 %), and marks readings taken during maintenance."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edge_agent.config import EdgeConfig
from telemetry import Quality, Sample, topics
from testing import Mosquitto
from tests.helpers import Subscriber
from tests.integration.conftest import RunningAgent, RunningDistrict
from tests.integration.test_edge_modbus import samples_where

pytestmark = pytest.mark.integration


def point_is(sample: object, point: str, value: object) -> bool:
    return isinstance(sample, Sample) and sample.values.get(point) == value


def test_agent_publishes_corrected_values_and_marks_maintenance(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: Callable[[EdgeConfig], RunningAgent]
) -> None:
    assert mini.district is not None
    sim = mini.district.modbus["cems-1"]
    night = {"nox": 43.0, "o2": 8.2, "so2": 20.0, "dust": 4.0, "maintenance": False}

    def force() -> None:
        for point, value in night.items():
            sim.set_value(point, value)

    mini.on_loop(force)
    sub = Subscriber(mosquitto, topics.telemetry("mini-water", "cems-1"))
    start_agent(mini.site_config("mini-water"))
    (good, *_) = samples_where(sub, "mini-water", "cems-1", lambda s: point_is(s, "o2", pytest.approx(8.2)))
    assert good.values["nox_zs"] == pytest.approx(43.0 * 15 / 12.8, abs=1e-3)  # 50.39 mg/m³ at 6 % O2
    assert good.quality_of("nox_zs") is Quality.GOOD
    assert isinstance(good.values["nox_load"], float)
    assert good.values["nox_load"] > 0

    mini.on_loop(lambda: sim.set_value("maintenance", True))
    (flagged, *_) = samples_where(sub, "mini-water", "cems-1", lambda s: point_is(s, "maintenance", True))
    sub.close()
    for name in ("nox", "o2", "nox_zs", "nox_load"):
        assert flagged.quality[name].q is Quality.UNCERTAIN, name
        assert flagged.quality[name].reason == "maintenance", name
    assert flagged.values["nox"] == pytest.approx(43.0)  # kept
