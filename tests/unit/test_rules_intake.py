"""The rules engine trusts no body it did not expect: the bridge's validation (one shared module), refused messages
in the engine's dead letters, no alert for a device that does not exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device_profiles import load_catalogue
from device_profiles.validate import Registry
from infra.mqtt import Incoming
from rules import RuleFile
from rules.config import RulesConfig
from rules.evaluate import Transition
from rules.service import RulesService
from telemetry import AgentState, DeviceStatus, Sample, Telemetry, encode, topics

NOW = 1_760_000_000_000
RULES = RuleFile.model_validate(
    {
        "rules": [
            {
                "id": "gas.high",
                "title": "Gas high",
                "select": {"profile": "gas_detector"},
                "threshold": {"point": "lel", "direction": "high", "levels": [{"severity": "critical", "value": 20}]},
            },
            {
                "id": "device.offline",
                "title": "Device offline",
                "select": {"profile": "gas_detector"},
                "severity": "warning",
                "offline": {},
            },
            {
                "id": "agent.lost",
                "title": "Agent lost",
                "select": {"device": "agent"},
                "severity": "critical",
                "agent": {},
            },
        ]
    }
).rules
# the deployment's devices: two sites, one gas detector each
REGISTRY_DEVICES = {("mini-water", "gas-1"): "gas_detector", ("mini-safety", "gas-1"): "gas_detector"}


class _State:
    def get_state(self, name: str) -> dict[str, Any] | None:
        return None

    def put_state(self, name: str, data: dict[str, Any]) -> None:
        pass


async def _sink(transitions: list[Transition], checkpoint: tuple[str, dict[str, Any]] | None) -> None:
    pass


@pytest.fixture
def service(tmp_path: Path) -> RulesService:
    config = RulesConfig(dead_letter_path=tmp_path / "deadletter.sqlite")
    registry = Registry(dict(load_catalogue()), dict(REGISTRY_DEVICES))
    return RulesService(config, RULES, _sink, _State(), clock=lambda: NOW / 1000, registry=registry)


def gas(site: str, device: str, lel: float, **over: Any) -> bytes:
    fields: dict[str, Any] = {"profile": "gas_detector", "measurement": "gas_safety"} | over
    return encode(Telemetry(site=site, device=device, seq=1, samples=[Sample(ts=NOW, values={"lel": lel})], **fields))


def feed(service: RulesService, topic: str, payload: bytes) -> list[Transition]:
    return service._evaluate(Incoming(1, 1, topic, payload, 1))


def test_a_valid_message_is_evaluated(service: RulesService) -> None:
    (t,) = feed(service, topics.telemetry("mini-water", "gas-1"), gas("mini-water", "gas-1", 50))
    assert (t.rule, t.site, t.device, t.severity) == ("gas.high", "mini-water", "gas-1", "critical")
    assert service.counters.invalid == 0


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        pytest.param(
            topics.telemetry("mini-water", "gas-1"),
            gas("mini-safety", "gas-1", 50),
            "message is for mini-safety/gas-1 but came on topic",
            id="body-names-another-site",
        ),
        pytest.param(
            topics.telemetry("mini-water", "gas-1"),
            gas("mini-water", "gas-9", 50),
            "message is for mini-water/gas-9",
            id="body-names-another-device",
        ),
        pytest.param(
            topics.telemetry("mini-water", "ghost"),
            gas("mini-water", "ghost", 50),
            "unknown device 'ghost' of site 'mini-water'",
            id="unknown-device",
        ),
        pytest.param(
            topics.telemetry("mini-water", "gas-1"),
            gas("mini-water", "gas-1", 50, profile="sluice_gate_plc", measurement="sluice_gate"),
            "device 'gas-1' has profile 'gas_detector'",
            id="other-profile",
        ),
        pytest.param(
            topics.telemetry("mini-water", "gas-1"),
            gas("mini-water", "gas-1", 50, measurement="other"),
            "is stored in 'gas_safety'",
            id="other-measurement",
        ),
        pytest.param(
            topics.telemetry("mini-water", "gas-1"),
            encode(
                Telemetry(
                    site="mini-water",
                    device="gas-1",
                    profile="gas_detector",
                    measurement="gas_safety",
                    seq=1,
                    samples=[Sample(ts=NOW, values={"lel": "high"})],
                )
            ),
            "point 'lel' of profile 'gas_detector' is declared",
            id="value-of-another-type",
        ),
        pytest.param(topics.telemetry("mini-water", "gas-1"), b"{not json", "is not JSON", id="not-json"),
        pytest.param(
            topics.status("mini-water", "gas-1"),
            encode(DeviceStatus(site="mini-safety", device="gas-1", profile="gas_detector", online=False, ts=NOW)),
            "status is for mini-safety/gas-1",
            id="status-of-another-site",
        ),
        pytest.param(
            topics.status("mini-water", "ghost"),
            encode(DeviceStatus(site="mini-water", device="ghost", profile="gas_detector", online=False, ts=NOW)),
            "unknown device 'ghost'",
            id="status-of-unknown-device",
        ),
        pytest.param(
            topics.agent_state("mini-water"),
            encode(AgentState(site="mini-safety", agent="x", online=False, ts=NOW)),
            "agent state is for site 'mini-safety'",
            id="death-of-another-site",
        ),
        pytest.param(
            topics.agent_state("elsewhere"),
            encode(AgentState(site="elsewhere", agent="x", online=False, ts=NOW)),
            "unknown site 'elsewhere'",
            id="death-of-unknown-site",
        ),
    ],
)
def test_a_forged_or_foreign_message_raises_nothing_and_is_a_dead_letter(
    service: RulesService, topic: str, payload: bytes, reason: str
) -> None:
    assert feed(service, topic, payload) == []
    assert service.engine.active() == {}
    assert service.engine.tick(NOW + 86_400_000) == []  # no deadman, no agent lost: nothing was ever seen valid
    (letter,) = service.dead_letters.list()
    assert (letter.source, letter.stage, letter.topic, letter.payload) == ("rules", "validate", topic, payload)
    assert reason in letter.reason
    assert (service.counters.invalid, service.counters.dead_letters) == (1, 1)
    metrics = service.metrics_text()
    assert "lifeline_rules_invalid_total 1" in metrics
    assert "lifeline_rules_dead_letters_total 1" in metrics


def test_the_agents_own_death_on_its_own_topic_is_one_alert(service: RulesService) -> None:
    death = encode(AgentState(site="mini-water", agent="edge", online=False, ts=NOW, reason="connection lost"))
    assert feed(service, topics.agent_state("mini-water"), death) == []  # believed after its hold (30 s)
    (t,) = service.engine.tick(NOW + 30_000)
    assert (t.rule, t.site, t.device, t.severity) == ("agent.lost", "mini-water", "agent", "critical")


def test_the_engine_is_cut_off_while_its_link_is_down_and_for_a_grace_after(service: RulesService) -> None:
    assert service.cut_off()  # never connected
    service.consumer.connected = True
    service.consumer.connected_since = NOW / 1000 - 10
    assert service.cut_off()  # within the 30 s grace: the backlog may still be on its way
    service.consumer.connected_since = NOW / 1000 - 31
    assert not service.cut_off()
    assert "lifeline_rules_cut_off 0" in service.metrics_text()


def test_without_site_files_a_sites_devices_are_those_its_agents_birth_listed(tmp_path: Path) -> None:
    config = RulesConfig(dead_letter_path=tmp_path / "deadletter.sqlite")
    service = RulesService(config, RULES, _sink, _State(), clock=lambda: NOW / 1000)  # no sites: the catalogue only
    topic = topics.telemetry("mini-water", "ghost")
    assert feed(service, topic, gas("mini-water", "ghost", 50)) != []  # no birth seen: any device of a known profile
    birth = AgentState(site="mini-water", agent="edge", online=True, ts=NOW, devices=["gas-1"])
    assert feed(service, topics.agent_state("mini-water"), encode(birth)) == []
    assert feed(service, topic, gas("mini-water", "ghost", 60)) == []  # not announced: refused
    assert "is not one that site 'mini-water'" in service.dead_letters.list()[0].reason
    assert feed(service, topics.telemetry("mini-water", "gas-1"), gas("mini-water", "gas-1", 50)) != []
    health = encode(
        Telemetry(
            site="mini-water",
            device="edge",
            profile="edge_agent",
            measurement=load_catalogue()["edge_agent"].measurement,
            seq=1,
            samples=[Sample(ts=NOW, values={})],
        )
    )
    feed(service, topics.telemetry("mini-water", "edge"), health)
    assert service.counters.invalid == 1  # the agent's own health is its own, not a field device
    restarted = RulesService(config, RULES, _sink, _State(), clock=lambda: NOW / 1000)
    restarted.engine = type(service.engine).from_state(RULES, service.engine.state())
    assert restarted.engine.born_devices("mini-water") == ["gas-1"]  # kept in the engine's checkpoint
