"""Honest device state against a real Mosquitto: a device that stops sampling turns stale while its neighbour stays
online, and the agent's last will (a crash: no goodbye) makes every device of its site offline, on the device
endpoints, the site list and the live stream alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import ApiService
from infra.mqtt import client
from lifeline.broker_auth import edge_account
from telemetry import AgentState, Sample, Telemetry, encode, topics
from testing import Mosquitto
from tests.helpers import account_for, wait_until
from tests.integration.test_api_readings import StreamReader
from tests.integration.test_api_support import RunningApi, add_users, login, make_config

pytestmark = pytest.mark.integration

SITE = "south-sluices"
GATES = ("g-01", "g-02")


@pytest.fixture
def api(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[RunningApi]:
    # a gate polls every second: stale after 2 s without a sample
    config = make_config(tmp_path, mqtt=mosquitto, live={"stale_intervals": 2, "min_stale_s": 1})
    service = ApiService(config)
    add_users(service)
    running = RunningApi(service)
    wait_until(service.link.connected.is_set)
    yield running
    running.stop()


def _reading(device: str, seq: int) -> bytes:
    body = Telemetry(
        site=SITE,
        device=device,
        profile="sluice_gate_plc",
        measurement="sluice_gate",
        seq=seq,
        samples=[Sample(ts=int(time.time() * 1000), values={"gate_opening": 1.2})],
    )
    return encode(body)


def test_a_silent_device_turns_stale_and_the_agents_will_makes_its_devices_offline(
    api: RunningApi, mosquitto: Mosquitto
) -> None:
    service: ApiService = api.service
    h = login(api.client, "op-south")
    stream = StreamReader(f"{api.url}/api/stream?kinds=state", h)
    wait_until(lambda: service.hub.clients == 1)

    account = account_for(mosquitto, edge_account(SITE))
    agent = client(account, f"edge-{SITE}", reconnect=False)
    state_topic = topics.agent_state(SITE)
    will = AgentState(site=SITE, agent=f"edge-{SITE}", online=False, ts=int(time.time() * 1000), reason="lost")
    agent.will_set(state_topic, encode(will), qos=1, retain=True)
    agent.connect(account.host, account.port)
    agent.loop_start()
    try:
        birth = AgentState(site=SITE, agent=f"edge-{SITE}", online=True, ts=int(time.time() * 1000), devices=[*GATES])
        agent.publish(state_topic, encode(birth), qos=1, retain=True).wait_for_publish(10)

        def devices() -> dict[str, dict[str, object]]:
            r = api.client.get(f"/api/sites/{SITE}/devices", headers=h)
            assert r.status_code == 200, r.text
            return {d["device"]: d for d in r.json()}

        for gate in GATES:
            agent.publish(topics.telemetry(SITE, gate), _reading(gate, 1), qos=1).wait_for_publish(10)
        wait_until(lambda: {d["state"] for d in devices().values()} == {"online"} and len(devices()) == 2)
        first = devices()["g-02"]
        assert first["agent_online"] is True
        assert first["stale_after_ms"] == 2_000

        # g-01 keeps sampling, g-02 falls silent: stale by time alone (no message says so)
        seq = 2
        deadline = time.monotonic() + 10
        while devices()["g-02"]["state"] != "stale":
            assert time.monotonic() < deadline, devices()
            agent.publish(topics.telemetry(SITE, "g-01"), _reading("g-01", seq), qos=1).wait_for_publish(10)
            seq += 1
            time.sleep(0.3)
        now = devices()
        assert now["g-01"]["state"] == "online"
        assert now["g-02"]["state_reason"] == "no_sample"
        assert now["g-02"]["last_sample_ms"] == first["last_sample_ms"]
        assert now["g-02"]["since_ms"] == first["last_sample_ms"] + 2_000  # type: ignore[operator]
        sites = {s["site"]: s for s in api.client.get("/api/sites", headers=h).json()}
        assert sites[SITE]["states"]["stale"] == 1
        assert sites[SITE]["online"] == 1

        sock = agent.socket()
        assert sock is not None
        sock.close()  # a crash: no DISCONNECT, the broker publishes the will
        wait_until(lambda: {d["state"] for d in devices().values()} == {"offline"}, 15, "the will heard")
        gone = devices()
        assert {d["state_reason"] for d in gone.values()} == {"agent_offline"}
        since = {d["since_ms"] for d in gone.values()}  # the time the API heard it: the will's ts is the connect time
        assert len(since) == 1
        assert birth.ts <= next(iter(since)) <= int(time.time() * 1000)  # type: ignore[operator]
        assert {d["agent_online"] for d in gone.values()} == {False}
        sites = {s["site"]: s for s in api.client.get("/api/sites", headers=h).json()}
        assert sites[SITE]["agent"] == {"online": False, "since_ms": next(iter(since)), "reason": "lost"}
        assert sites[SITE]["states"]["offline"] == 2
        metrics = api.client.get("/metrics").text
        assert "lifeline_api_devices_offline 2" in metrics
        assert "lifeline_api_devices_online 0" in metrics

        def announced(device: str) -> list[str]:
            return [str(d["state"]) for k, d in stream.events if k == "state" and d["device"] == device]

        # known from the birth (unknown until heard), then by what was heard, and by time
        wait_until(lambda: announced("g-02") == ["unknown", "online", "stale", "offline"], what="g-02's states")
        wait_until(lambda: announced("g-01") == ["unknown", "online", "offline"], what="g-01's states on the stream")
    finally:
        stream.stop = True
        agent.loop_stop()
        cleaner = client(account, f"edge-{SITE}-clean", reconnect=False)
        cleaner.connect(account.host, account.port)
        cleaner.loop_start()
        cleaner.publish(state_topic, b"", qos=1, retain=True).wait_for_publish(10)
        cleaner.disconnect()
        cleaner.loop_stop()
