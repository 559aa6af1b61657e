"""The agent's side of the contract, without a broker: run ids and seq on telemetry, and what a message on
``agent/stored`` does (confirms exactly its ranges; anything malformed or for another site is dead-lettered)."""

from __future__ import annotations

import re

import orjson
import pytest

from edge_agent import EdgeAgent, EdgeConfig, build_site
from edge_agent._outbox_writer import new_run_id
from telemetry import Sample, Stored, StoredRange, decode_agent_state, decode_telemetry, encode, topics

SITE = "s1"


def agent() -> EdgeAgent:
    config = EdgeConfig.model_validate({"site": SITE, "devices": [{"id": "gas-1", "profile": "gas_detector"}]})
    return EdgeAgent(build_site(config))


def publish(a: EdgeAgent, n: int) -> None:
    device = a.site.config.devices[0]
    for i in range(n):
        a.publish_sample(device, a.site.profile_of(device), Sample(ts=1000 + i, values={"lel": float(i)}))


def stored(site: str, *ranges: tuple[str, str, int, int]) -> bytes:
    return encode(
        Stored(
            site=site,
            bridge="b1",
            ts=1,
            ranges=[StoredRange(device=d, run=r, first=f, last=last) for d, r, f, last in ranges],
        )
    )


def test_telemetry_and_birth_carry_this_run() -> None:
    a = agent()
    publish(a, 3)
    rows = a.outbox.store.page(0, 10)
    msgs = [decode_telemetry(r.payload) for r in rows]
    assert [(m.run, m.seq, m.samples[0].ts) for m in msgs] == [(a.run_id, s, 999 + s) for s in (1, 2, 3)]
    assert [r.key for r in rows] == [("gas-1", a.run_id, s) for s in (1, 2, 3)]
    assert decode_agent_state(a._state(True, "")).run == a.run_id
    assert agent().run_id != a.run_id


def test_run_id_sorts_by_start_and_fits_the_contract() -> None:
    first, later = new_run_id(1_780_000_000.0), new_run_id(1_780_000_001.0)
    assert first < later
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", first)


@pytest.mark.parametrize(
    ("payload", "held", "dead"),
    [
        pytest.param(lambda run: stored(SITE, ("gas-1", run, 1, 2)), 1, 0, id="confirms-its-range"),
        pytest.param(lambda run: stored(SITE, ("gas-1", "other-run", 1, 3)), 3, 0, id="other-run-nothing"),
        pytest.param(lambda run: stored("s2", ("gas-1", run, 1, 3)), 3, 1, id="other-site-dead-lettered"),
        pytest.param(lambda run: b"{not json", 3, 1, id="not-json-dead-lettered"),
        pytest.param(lambda run: orjson.dumps({"v": 1, "site": SITE}), 3, 1, id="invalid-dead-lettered"),
    ],
)
def test_a_message_on_the_stored_topic(payload, held: int, dead: int) -> None:  # type: ignore[no-untyped-def]
    a = agent()
    publish(a, 3)
    a._on_uplink_message(topics.stored(SITE), payload(a.run_id))
    a.flush()
    assert (len(a.outbox), a.dead_letters.count) == (held, dead)


def test_the_health_device_is_among_what_the_agent_publishes() -> None:
    a = agent()
    assert a.site.published_devices() == [("gas-1", "gas_detector"), ("edge", "edge_agent")]
    a.publish_health()
    (row,) = a.outbox.store.page(0, 10)
    health = decode_telemetry(row.payload)
    assert (health.device, health.profile, health.seq, health.run) == ("edge", "edge_agent", 1, a.run_id)
    # every point of the profile but the free space of a disk (this agent keeps its outbox in memory) and the Modbus
    # devices' health (it has none)
    modbus = {"modbus_devices_offline", "modbus_exceptions", "modbus_problem", "modbus_health"}
    expected = set(a.site.profiles["edge_agent"].point_names()) - {"outbox_disk_free_bytes"} - modbus
    assert set(health.samples[0].values) == expected
    assert health.samples[0].values["outbox_fault"] == ""
    assert health.samples[0].values["sensor_link_connected"] is False
    # both links use one broker and the uplink is away too: a broker outage, not the sensor link's own problem
    assert health.samples[0].values["sensor_link_problem"] == ""
    a.uplink.connected = True
    problem = a.health_values(0)["sensor_link_problem"]
    assert isinstance(problem, str)
    assert problem.startswith("sensor link down for ")
