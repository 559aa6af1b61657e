"""Gate control end to end, no stand-ins: API (uvicorn) -> Mosquitto -> a real edge agent -> Modbus writes on the
simulated gate PLC -> read back -> results -> API, commands signed by the API and results by the edge with keys
made by ``telemetry.keys``. And with the edge agent down: a clean time-out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import ApiService
from api.auth import Role
from simulators.behaviours.sluice_gate_plc import GateParams, SluiceGate
from simulators.district import gate_control
from telemetry.keys import SiteKeyFiles, create_site_keys
from testing import Mosquitto
from tests.helpers import wait_until
from tests.integration.conftest import RunningDistrict
from tests.integration.test_api_support import PASSWORD, RunningApi, login, make_config

pytestmark = pytest.mark.integration

SITE, GATE = "e2e-river", "gate-9"
# the API's limits of the gate are the edge's control section (one model): as lifeline up copies them
GATE_LIMITS = {k: v for k, v in gate_control(GateParams()).items() if k not in ("timeout_s", "readback_interval_s")}
SCENARIO = f"""
name: e2e
title: one fast gate for end-to-end control tests
seed: 3
port_base: 0
sites:
  - site: {SITE}
    devices:
      - {{id: {GATE}, profile: sluice_gate_plc, params: {{speed_m_s: 0.5, initial_opening_m: 0.0, tide_amplitude_m: 0.1,
                                                         tide_mean_m: 2.6}}}}
"""


@pytest.fixture
def district(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[RunningDistrict]:
    path = tmp_path / "e2e.yaml"
    path.write_text(SCENARIO)
    d = RunningDistrict(mosquitto, str(path))
    yield d
    d.stop()


@pytest.fixture
def keys(tmp_path: Path) -> SiteKeyFiles:
    """The site's two key pairs, as ``lifeline keys create --dir keys --site e2e-river`` makes them."""
    create_site_keys(tmp_path / "keys", [SITE])
    return SiteKeyFiles.of(tmp_path / "keys", SITE)


def edge_keys(keys: SiteKeyFiles) -> dict[str, str]:
    """The edge agent's key fields: the control key's public half, the site key's private half."""
    return {"control_public_key": str(keys.control_public), "site_private_key": str(keys.site_private)}


@pytest.fixture
def api(mosquitto: Mosquitto, tmp_path: Path, keys: SiteKeyFiles) -> Iterator[RunningApi]:
    site_keys = {SITE: {"control_private_key": str(keys.control_private), "site_public_key": str(keys.site_public)}}
    config = make_config(
        tmp_path,
        mqtt=mosquitto,
        areas={"river": [SITE]},
        gates={
            "selection_s": 10,
            "default_ttl_s": 3,
            "edge_timeout_s": 3,
            "devices": [{"site": SITE, "device": GATE, **GATE_LIMITS}],
        },
        site_keys=site_keys,
    )
    service = ApiService(config)
    service.users.create("op-wu", PASSWORD, Role.GATE_OPERATOR, ["river"])
    service.users.create("boss", PASSWORD, Role.ADMIN, [])
    running = RunningApi(service)
    wait_until(service.link.connected.is_set, what="the API connected to the broker")
    yield running
    running.stop()


def has_telemetry(api: RunningApi, site: str, device: str) -> bool:
    """The API holds values of the device (its agent's birth alone lists it, as unknown, with none)."""
    state = api.service.cache.get(site, device)
    return state is not None and state.has_values


def operate(api: RunningApi, headers: dict[str, str], **body: Any) -> str:
    r = api.client.post(f"/api/gates/{SITE}/{GATE}/select", headers=headers)
    assert r.status_code == 201, r.text
    r = api.client.post(
        f"/api/gates/{SITE}/{GATE}/commands", headers=headers, json={"selection": r.json()["selection"], **body}
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def final(api: RunningApi, headers: dict[str, str], command_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got: dict[str, Any] = api.client.get(f"/api/commands/{command_id}", headers=headers).json()
        if got.get("final"):
            return got
        time.sleep(0.2)
    raise AssertionError(f"command {command_id} not final within {timeout} s: {got}")


def test_operator_opens_a_simulated_gate_to_40_percent_and_it_reads_back(
    district: RunningDistrict, api: RunningApi, start_agent: Any, keys: SiteKeyFiles
) -> None:
    start_agent(district.site_config(SITE, **edge_keys(keys)))
    wait_until(lambda: has_telemetry(api, SITE, GATE), 15, "gate telemetry in the API")
    op = login(api.client, "op-wu")
    command_id = operate(api, op, action="set_opening", target_pct=40, ttl_s=10)
    done = final(api, op, command_id)
    assert done["state"] == "completed", done
    states = [s["state"] for s in done["steps"]]
    assert states[:2] == ["received", "accepted"]  # the edge's receipt first, then its checks
    assert states[-1] == "completed"
    assert abs(done["after"]["opening_m"] - 2.4) <= 0.02  # 40 % of the gate's 6.0 m, read back
    assert district.district is not None
    plc = district.district.modbus[GATE].behaviour
    assert isinstance(plc, SluiceGate)
    assert abs(plc.opening - 2.4) <= 0.02, "the PLC's own opening"
    audit = api.client.get(
        "/api/audit", headers=login(api.client, "boss"), params={"target_prefix": f"gate:{SITE}/{GATE}"}
    ).json()
    actions = {a["action"] for a in audit}
    assert {"gate.select", "gate.command", "gate.command.received", "gate.command.accepted"} <= actions, actions
    assert [a["action"] for a in audit].count("gate.command.completed") == 1, "the result is audited once"
    assert {a["who"] for a in audit} == {"op-wu"}
    assert not any(a["action"].startswith("gate.result.") for a in audit), "a result that did not verify"


def test_with_the_edge_agent_down_a_command_is_not_delivered_and_cancelled(
    district: RunningDistrict, api: RunningApi, start_agent: Any, keys: SiteKeyFiles
) -> None:
    agent = start_agent(district.site_config(SITE, **edge_keys(keys)))
    wait_until(lambda: has_telemetry(api, SITE, GATE), 15, "gate telemetry in the API")
    agent.stop()
    op = login(api.client, "op-wu")
    command_id = operate(api, op, action="open", ttl_s=2)
    done = final(api, op, command_id, timeout=20)
    assert done["state"] == "not_delivered", done  # no receipt within gates.receipt_timeout_s: never "published"
    assert "did not confirm receipt" in done["reason"]
    cancels = api.client.get(
        "/api/audit", headers=login(api.client, "boss"), params={"action": "command.cancel"}
    ).json()
    assert any(a["detail"]["cancels"] == command_id for a in cancels), cancels
    assert district.district is not None
    plc = district.district.modbus[GATE].behaviour
    assert isinstance(plc, SluiceGate)
    assert plc.opening == 0.0, "the gate moved without its edge agent"
