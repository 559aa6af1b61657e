"""The broker, InfluxDB and TLS refuse what the security model says they refuse (README, "Security model").

Each forgery the first round's attack tried is tried again here against the real Mosquitto and influxd, and the
client sees the refusal: CONNACK, PUBACK or SUBACK reason codes, HTTP 401/403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import time
from pathlib import Path

import httpx
import orjson
import pytest

from infra.mqtt import BrokerConfig, TlsConfig
from infra.secret import Secret
from lifeline.broker_auth import (
    api_account,
    bridge_account,
    edge_account,
    edge_sensor_account,
    observer_account,
    rules_account,
    rules_publisher_account,
    sensor_account,
)
from lifeline.tls import ensure_ca, issue
from telemetry import topics
from testing import Influxd, Mosquitto
from tests.helpers import Publisher, Subscriber, account_for, client_account, probe, wait_until

pytestmark = pytest.mark.integration
NOT_AUTHORISED = "Not authorized"


def test_an_anonymous_client_and_a_wrong_password_are_refused(mosquitto: Mosquitto) -> None:
    assert probe(BrokerConfig(host=mosquitto.host, port=mosquitto.port)).connack == NOT_AUTHORISED
    edge = account_for(mosquitto, edge_account("s1"))
    assert probe(edge.model_copy(update={"password": Secret.inline("guessed")})).connack == NOT_AUTHORISED
    assert probe(edge).connack == "Success"


@pytest.mark.parametrize(
    ("account", "publish", "allowed"),
    [
        pytest.param(edge_account("s1"), topics.telemetry("s1", "d1"), True, id="edge-own-telemetry"),
        pytest.param(edge_account("s1"), topics.telemetry("s2", "d1"), False, id="edge-other-site-telemetry"),
        pytest.param(edge_account("s1"), topics.status("s2", "gate-1"), False, id="edge-forges-other-site-status"),
        pytest.param(edge_account("s1"), topics.command_result("s1", "gate-1", "c1"), True, id="edge-own-result"),
        pytest.param(
            edge_account("s1"), topics.command_result("s2", "gate-1", "c1"), False, id="edge-other-site-result"
        ),
        pytest.param(edge_account("s1"), topics.command("s1", "gate-1", "c1"), False, id="edge-issues-a-command"),
        pytest.param(edge_account("s1"), topics.alert_event(1), False, id="edge-forges-an-alert-event"),
        pytest.param(edge_account("s1"), topics.stored("s1"), False, id="edge-confirms-its-own-storage"),
        pytest.param(api_account(), topics.command("s1", "gate-1", "c1"), True, id="api-issues-a-command"),
        pytest.param(api_account(), topics.telemetry("s1", "d1"), False, id="api-forges-telemetry"),
        pytest.param(api_account(), topics.alert_event(1), False, id="api-forges-an-alert-event"),
        pytest.param(rules_publisher_account(), topics.alert_event(1), True, id="rules-publishes-alerts"),
        pytest.param(rules_publisher_account(), topics.command("s1", "gate-1", "c1"), False, id="rules-commands"),
        pytest.param(rules_account(), topics.alert_event(1), False, id="rules-reader-publishes-nothing"),
        pytest.param(bridge_account(), topics.stored("s1"), False, id="bridge-reader-publishes-nothing"),
        pytest.param(observer_account(), topics.telemetry("s1", "d1"), False, id="observer-publishes-nothing"),
        pytest.param(
            sensor_account("sensors-s1", ["vendor/gasdet/GD-1/up"]),
            "vendor/gasdet/GD-1/up",
            True,
            id="sensor-own-vendor-topic",
        ),
        pytest.param(
            sensor_account("sensors-s1", ["vendor/gasdet/GD-1/up"]),
            "vendor/gasdet/GD-2/up",
            False,
            id="sensor-other-sensor-topic",
        ),
        pytest.param(
            sensor_account("sensors-s1", ["vendor/gasdet/GD-1/up"]),
            topics.telemetry("s1", "gas-1"),
            False,
            id="sensor-forges-telemetry",
        ),
    ],
)
def test_who_may_publish_where(shared_mosquitto: Mosquitto, account: object, publish: str, allowed: bool) -> None:
    answer = probe(account_for(shared_mosquitto, account), publish=publish)  # type: ignore[arg-type]
    assert answer.connack == "Success"
    # an allowed publish nobody listens to is answered "No matching subscribers": accepted all the same
    assert (answer.puback in ("Success", "No matching subscribers")) is allowed, answer


@pytest.mark.parametrize(
    ("account", "subscribe", "allowed"),
    [
        pytest.param(edge_account("s1"), topics.command_filter("s1"), True, id="edge-own-commands"),
        pytest.param(edge_account("s1"), topics.command_filter("s2"), False, id="edge-other-site-commands"),
        pytest.param(edge_account("s1"), "lifeline/v1/#", False, id="edge-everything"),
        pytest.param(
            edge_account("s1"),
            "$share/lifeline-bridge/lifeline/v1/+/+/telemetry",
            False,
            id="edge-joins-the-bridge-group",
        ),
        pytest.param(
            api_account(), "$share/lifeline-rules/lifeline/v1/+/+/telemetry", False, id="api-joins-the-rules-group"
        ),
        pytest.param(
            observer_account(),
            "$share/lifeline-rules/lifeline/v1/+/+/telemetry",
            False,
            id="observer-joins-the-rules-group",
        ),
        pytest.param(
            rules_account(),
            "$share/lifeline-bridge/lifeline/v1/+/+/telemetry",
            False,
            id="rules-joins-the-bridge-group",
        ),
        pytest.param(
            bridge_account(), "$share/lifeline-bridge/lifeline/v1/+/+/telemetry", True, id="bridge-its-own-group"
        ),
        pytest.param(bridge_account(), topics.telemetry_filter(), False, id="bridge-outside-its-group"),
        pytest.param(rules_account(), "$share/lifeline-rules/lifeline/v1/+/+/status", True, id="rules-status"),
        pytest.param(api_account(), topics.command_result_filter(), True, id="api-results"),
        pytest.param(observer_account(), topics.command_filter("+"), False, id="observer-reads-commands"),
        pytest.param(
            edge_sensor_account("s1", ["vendor/gasdet/GD-1/up"]),
            "vendor/gasdet/GD-1/up",
            True,
            id="edge-sensor-link-own-sensors",
        ),
        pytest.param(
            edge_sensor_account("s1", ["vendor/gasdet/GD-1/up"]), "vendor/#", False, id="edge-sensor-link-every-vendor"
        ),
    ],
)
def test_who_may_subscribe_to_what(shared_mosquitto: Mosquitto, account: object, subscribe: str, allowed: bool) -> None:
    answer = probe(account_for(shared_mosquitto, account), subscribe=subscribe)  # type: ignore[arg-type]
    assert answer.suback == ("Granted QoS 1" if allowed else NOT_AUTHORISED)


def test_no_one_steals_the_rules_engines_share_of_gas_readings(mosquitto: Mosquitto) -> None:
    """The first round's attack: nine clients joined $share/lifeline-rules and took most of the readings."""
    group = "$share/lifeline-rules/lifeline/v1/+/+/telemetry"
    thieves = [probe(account_for(mosquitto, api_account()), subscribe=group) for _ in range(3)]
    assert {t.suback for t in thieves} == {NOT_AUTHORISED}
    engine = Subscriber(None, group, account=account_for(mosquitto, rules_account()))
    edge = Publisher(None, account=account_for(mosquitto, edge_account("plant-1")))
    try:
        for seq in range(1, 21):
            edge.send(topics.telemetry("plant-1", "gas-1"), orjson.dumps({"seq": seq}))
        got = engine.wait_for(lambda ms: len(ms) >= 20, timeout=10)
        assert sorted(orjson.loads(m.payload)["seq"] for m in got) == list(range(1, 21))
    finally:
        engine.close()
        edge.close()


def test_another_client_id_cannot_kick_an_agent_off(mosquitto: Mosquitto) -> None:
    """Client ids are user names (use_username_as_clientid): a client claiming an agent's id keeps its own."""
    agent = Subscriber(None, topics.command_filter("s1"), account=account_for(mosquitto, edge_account("s1")))
    try:
        intruder = client_account(mosquitto, "intruder")
        assert probe(intruder.model_copy(update={"username": intruder.username})).connack == "Success"
        from infra.mqtt import client

        claimer = client(intruder, agent.account.username or "")
        claimer.connect(mosquitto.host, mosquitto.port)
        claimer.loop_start()
        time.sleep(0.5)
        claimer.disconnect()
        claimer.loop_stop()
        assert agent.connected.is_set(), "the agent was kicked off by a client claiming its id"
    finally:
        agent.close()


# -- TLS -------------------------------------------------------------------------------------------------------------
def test_tls_verifies_the_ca_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    server = issue(tmp_path / "ca", ca, "mosquitto")
    other_ca = ensure_ca(tmp_path / "other-ca", "Someone else's CA")
    broker = Mosquitto(tmp_path / "mosquitto", tls=server, control=True)
    broker.start()
    try:
        good = broker.add(edge_account("s1"))
        assert good.tls is not None
        assert probe(good, publish=topics.telemetry("s1", "d1")).puback == "No matching subscribers"  # accepted
        wrong = good.model_copy(update={"tls": TlsConfig(ca_file=other_ca[0])})
        with pytest.raises((ssl.SSLError, OSError, AssertionError)):
            probe(wrong, timeout=3)
        plain = good.model_copy(update={"tls": None})
        with pytest.raises((OSError, AssertionError)):
            probe(plain, timeout=3)  # a plain client on the TLS port gets no CONNACK
        assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
        assert server.key_file.stat().st_mode & 0o077 == 0
    finally:
        broker.remove()


def test_the_broker_fails_loudly_when_it_cannot_persist(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", control=True)
    broker.start()
    try:
        assert broker.state_dir is not None
        assert (broker.state_dir / "mosquitto.db").exists()  # start checked it
    finally:
        broker.remove()


# -- InfluxDB ----------------------------------------------------------------------------------------------------
def _jwt(secret: bytes, username: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    body = b64(orjson.dumps({"username": username, "exp": int(time.time()) + 3600}))
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def test_influxdb_refuses_anonymous_access_and_an_empty_secret_jwt(tmp_path: Path) -> None:
    server = Influxd(tmp_path / "influxdb", auth_enabled=True)
    server.start()
    try:
        admin = ("lifeline-admin", "admin-secret-1")
        server.set_up_users("lifeline", {"writer": ("w-secret-1", "WRITE"), "reader": ("r-secret-1", "READ")}, admin)
        q = {"db": "lifeline", "q": 'SELECT * FROM "m"'}
        assert httpx.get(f"{server.url}/query", params=q).status_code == 401
        assert httpx.post(f"{server.url}/write", params={"db": "lifeline"}, content=b"m v=1").status_code == 401
        drop = {"db": "lifeline", "q": 'DROP MEASUREMENT "m"'}
        assert httpx.post(f"{server.url}/query", params=drop).status_code == 401
        # CVE-2019-20933: InfluxDB before 1.7.6 takes a JWT signed with an empty shared secret
        forged = {"Authorization": f"Bearer {_jwt(b'', 'lifeline-admin')}"}
        assert httpx.get(f"{server.url}/query", params=q, headers=forged).status_code == 401
        # each user has its own right only
        writer = ("writer", "w-secret-1")
        db = {"db": "lifeline"}
        assert httpx.post(f"{server.url}/write", params=db, content=b"m v=1", auth=writer).status_code == 204
        assert (
            httpx.post(
                f"{server.url}/write", params={"db": "lifeline"}, content=b"m v=2", auth=("reader", "r-secret-1")
            ).status_code
            == 403
        )
        assert httpx.post(f"{server.url}/query", params=drop, auth=writer).status_code == 403
        wait_until(
            lambda: (
                "series"
                in httpx.get(f"{server.url}/query", params=q, auth=("reader", "r-secret-1")).json()["results"][0]
            ),
            what="the reader reads",
        )
    finally:
        server.stop()


def test_retained_messages_and_persistent_sessions_survive_a_broker_kill(tmp_path: Path) -> None:
    """Persistence that works (the first round's broker could not write its folder): after kill -9 and a restart,
    the retained status is still there and a persistent session gets what was queued for it while it was away."""
    broker = Mosquitto(tmp_path / "mosquitto", control=True)
    broker.start()
    try:
        edge = account_for(broker, edge_account("s1"))
        queue_for = client_account(broker, "persistent")
        away = Subscriber(None, topics.telemetry_filter("s1"), account=queue_for, persistent=True)
        away.close()  # its session (and QoS 1 queue) stays
        publisher = Publisher(None, account=edge)
        publisher.send(topics.status("s1", "gate-1"), b'{"online": true}', retain=True)
        publisher.send(topics.telemetry("s1", "gate-1"), b'{"queued": 1}')
        publisher.close()
        assert broker.save_now()  # autosave_interval 1 s: what Mosquitto acknowledged is on disk a second later
        broker.kill()
        broker.start()
        retained = Subscriber(broker, topics.status_filter("s1"))
        back = Subscriber(None, topics.telemetry_filter("s1"), account=queue_for, persistent=True)
        try:
            assert retained.wait_for(lambda ms: any(m.retain for m in ms), timeout=10)[0].payload == b'{"online": true}'
            assert back.wait_for(bool, timeout=10)[0].payload == b'{"queued": 1}'
        finally:
            retained.close()
            back.close()
    finally:
        broker.remove()
