"""Forged telemetry raises nothing: an account with a site's edge access (what a stolen edge password gives) publishes,
on topics its ACL allows, bodies that name another site's device, a device the deployment does not have, and a
topic's device that differs from the body's. The rules engine, on every shipped pack, must take site and device from
what it can trust (topic, deployment, the agent's birth), as the bridge does: no alert comes of any of them, not
even a "no data" alert later for the device that does not exist. A true body sent the same way (the site's own
device, pH 12) does raise its alert: the forged ones reached the engine and were judged.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from lifeline.broker_auth import edge_account
from telemetry import topics
from telemetry.codec import encode_telemetry
from telemetry.models import Value
from tests.faults.conftest import MakeDistrict
from tests.faults.harness import now_ms
from tests.helpers import Publisher

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WATCH_S = 15.0  # three times the Modbus deadman (5 s): a "no data" alert for a device that never existed would show


def _body(site: str, device: str, profile: str, measurement: str, values: dict[str, Value]) -> bytes:
    return encode_telemetry(site, device, profile, measurement, 1, "forged", {}, {}, now_ms(), values, {})


# (topic site, topic device, body) — each would raise an alert if the engine believed the body
FORGED = {
    "another site's device in the body": (
        "mini-water",
        "gas-1",
        _body("mini-safety", "gas-1", "gas_detector", "gas_safety", {"lel": 80.0, "alarm_level": 2}),
    ),
    "a device that does not exist": (
        "mini-water",
        "ghost-9",
        _body("mini-water", "ghost-9", "sluice_gate_plc", "sluice_gate", {"gate_opening": 1.0}),
    ),
    "a real device's topic, another device in the body": (
        "mini-water",
        "wq-1",
        _body("mini-safety", "gas-1", "gas_detector", "gas_safety", {"lel": 90.0, "alarm_level": 2}),
    ),
}


def test_forged_bodies_raise_nothing(make_district: MakeDistrict) -> None:
    d = make_district(packs="shipped")
    d.running()
    forger = d.broker.add(dataclasses.replace(edge_account("mini-water"), username="edge-mini-water-forger"))
    publisher = Publisher(None, account=forger)
    try:
        for _ in range(3):  # more than once: a deadman needs a first message to arm
            for site, device, body in FORGED.values():
                publisher.send(topics.telemetry(site, device), body)
            time.sleep(1.0)
        true = _body("mini-water", "wq-1", "water_quality_station", "water_quality", {"ph": 12.0})
        publisher.send(topics.telemetry("mini-water", "wq-1"), true)  # the control: this one is believed
    finally:
        publisher.close()
    time.sleep(WATCH_S)
    control = [a for a in d.alerts() if a.alert.key.device == "wq-1" and a.alert.key.rule_id == "water.ph"]
    assert control, "the true body sent the same way raised no alert: the forged ones may never have been judged"
    forged = [
        str(a.alert.key)
        for a in d.alerts()
        if a.alert.key.device == "ghost-9" or (a.alert.key.device == "gas-1" and a.alert.key.rule_id == "gas.lel")
    ]
    assert not forged, f"alerts from forged bodies: {forged}"
