"""Device identity at the broker, as ``lifeline up`` runs it (issue 24), against a real Mosquitto: TLS with a client
certificate required and its common name taken as the user name. A password alone connects nobody; a certificate is
one account and only that account's grants apply; the broker's size limit refuses a flood; a second client with an
edge's identity takes its session, and the edge says so in its log, its metrics and its health (alerted by
rules/packs/edge.yaml)."""

from __future__ import annotations

import socket
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edge_agent import EdgeAgent, EdgeConfig, build_site
from edge_agent.config import HEALTH_DEVICE
from infra.mqtt import BrokerConfig, TlsConfig, client
from lifeline.broker_auth import credential
from lifeline.cli import main
from lifeline.runners import MAX_PACKET_SIZE
from lifeline.tls import ensure_ca, ensure_crl, issue
from rules import PACKS, Engine, load_rules
from telemetry import decode_telemetry, topics
from testing import Mosquitto
from tests.helpers import LoopThread, Subscriber, close, connect, refused, wait_until

pytestmark = pytest.mark.integration


def as_user(broker: Mosquitto, username: str, **overrides: Any) -> BrokerConfig:
    """The settings a client of ``username`` gets from the deployment (its password and its own certificate)."""
    assert broker.tls is not None
    base = BrokerConfig(host=broker.host, port=broker.port, tls=TlsConfig(ca_file=broker.tls.ca_file))
    return credential(broker.data_dir / "credentials", username, base, **overrides)


def test_a_password_alone_connects_nobody(identity_mosquitto: Mosquitto) -> None:
    edge = as_user(identity_mosquitto, "edge-s1")
    assert edge.tls is not None
    no_cert = edge.model_copy(update={"tls": TlsConfig(ca_file=edge.tls.ca_file)})  # the right password, no cert
    refused(no_cert)
    made, attempt = connect(edge)  # with its own certificate it does
    assert attempt.connected.wait(10), attempt.refused
    close(made)


def test_a_certificate_of_another_ca_is_refused(identity_mosquitto: Mosquitto, tmp_path: Path) -> None:
    other = issue(tmp_path / "other", ensure_ca(tmp_path / "other"), "edge-s1", client=True)
    edge = as_user(identity_mosquitto, "edge-s1")
    assert edge.tls is not None
    forged = edge.tls.model_copy(update={"cert_file": other.cert_file, "key_file": other.key_file})
    refused(edge.model_copy(update={"tls": forged}))


def test_the_certificate_is_the_account_whatever_user_name_and_password_are_given(
    identity_mosquitto: Mosquitto,
) -> None:
    """The edge's certificate with the api's user name (and no valid password) is the edge: it may not send a
    command, and it may publish its own site's telemetry."""
    watcher = Subscriber(None, "lifeline/v1/+/+/telemetry", account=as_user(identity_mosquitto, "observer"))
    edge = as_user(identity_mosquitto, "edge-s1")
    posing = edge.model_copy(update={"username": "api", "password": None})
    made, attempt = connect(posing, "api")
    try:
        assert attempt.connected.wait(10), attempt.refused
        made.publish(topics.command("s1", "gate-1", "c1"), b"{}", qos=1)
        made.publish(topics.telemetry("s1", "wq-1"), b'{"ok": 1}', qos=1)
        watcher.wait_for(lambda got: any(m.topic.endswith("wq-1/telemetry") for m in got), 5)
        assert [m.topic for m in watcher.snapshot()] == [topics.telemetry("s1", "wq-1")]
    finally:
        close(made)
        watcher.close()
    log = identity_mosquitto.log_tail()
    assert "u'edge-s1'" in log, log  # connection_messages: the log names the account of each connection


@pytest.mark.parametrize(
    ("username", "topic"),
    [
        pytest.param("edge-s1", topics.telemetry("s2", "wq-1"), id="edge-another-sites-telemetry"),
        pytest.param("edge-s1", topics.stored("s1"), id="edge-its-own-stored"),
        pytest.param("edge-s1", topics.stored("s2"), id="edge-another-sites-stored"),
        pytest.param("bridge-1-pub", topics.telemetry("s1", "wq-1"), id="bridge-publisher-telemetry"),
        pytest.param("rules-1-pub", topics.telemetry("s1", "wq-1"), id="rules-publisher-telemetry"),
        pytest.param("observer", topics.telemetry("s1", "wq-1"), id="observer-anything"),
    ],
)
def test_an_account_cannot_publish_outside_its_grants(identity_mosquitto: Mosquitto, username: str, topic: str) -> None:
    watcher = Subscriber(None, "lifeline/v1/+/+/telemetry", account=as_user(identity_mosquitto, "observer"))
    made, attempt = connect(as_user(identity_mosquitto, username))
    try:
        assert attempt.connected.wait(10), attempt.refused
        info = made.publish(topic, b'{"forged": true}', qos=1)
        assert attempt.acked.wait(5), "no PUBACK"
        assert attempt.acks[info.mid] == 0x87  # MQTT 5 "Not authorized"
        # a control message of the same account on a topic it owns arrives: the forged one never did
        if username.startswith("edge-"):
            made.publish(topics.telemetry("s1", "probe"), b"{}", qos=1)
            watcher.wait_for(lambda got: len(got) >= 1, 5)
        assert [m.topic for m in watcher.snapshot() if m.topic == topic] == []
    finally:
        close(made)
        watcher.close()


@pytest.mark.parametrize("size", [MAX_PACKET_SIZE, 10 << 20], ids=["just-over-the-limit", "10-MiB"])
def test_a_message_over_the_size_limit_ends_the_connection_and_goes_nowhere(
    identity_mosquitto: Mosquitto, size: int
) -> None:
    """An MQTT 3.1.1 client (told no limit, as an attacker's would not care): the broker itself enforces it."""
    watcher = Subscriber(None, "lifeline/v1/+/+/telemetry", account=as_user(identity_mosquitto, "observer"))
    edge = as_user(identity_mosquitto, "edge-s1")
    made = client(edge, "edge-s1", reconnect=False)
    ended = threading.Event()
    made.on_disconnect = lambda c, u, f, rc, p: ended.set()
    made.connect(edge.host, edge.port, keepalive=10)
    made.loop_start()
    try:
        made.publish(topics.telemetry("s1", "big"), b"x" * size, qos=1)
        assert ended.wait(10), f"a {size:,}-byte message did not end the connection"
        made.loop_stop()
        # the account itself is not locked out: a message within the limit goes through
        within, attempt = connect(edge)
        assert attempt.connected.wait(10), attempt.refused
        within.publish(topics.telemetry("s1", "ok"), b"x" * (670_208), qos=1)
        watcher.wait_for(lambda got: any(m.topic.endswith("ok/telemetry") for m in got), 10)
        close(within)
    finally:
        made.loop_stop()
        watcher.close()
    assert [m.topic for m in watcher.snapshot() if m.topic.endswith("big/telemetry")] == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _edge(broker: Mosquitto, state: Path, reconnect_s: tuple[float, float]) -> EdgeAgent:
    uplink = as_user(broker, "edge-s1", reconnect_initial_s=reconnect_s[0], reconnect_max_s=reconnect_s[1])
    config = EdgeConfig.model_validate(
        {
            "site": "s1",
            "broker": uplink.model_dump(mode="json"),
            "state_dir": str(state),
            "publish": {"health_interval_s": 0.5},
            "devices": [
                {"id": "wq-1", "profile": "water_quality_station", "host": "127.0.0.1", "port": _closed_port()}
            ],
        }
    )
    return EdgeAgent(build_site(config))


def test_a_broker_restart_is_not_taken_for_a_takeover(identity_mosquitto: Mosquitto, tmp_path: Path) -> None:
    agent = _edge(identity_mosquitto, tmp_path / "edge", (0.2, 0.5))
    running = LoopThread(agent.run)
    try:
        wait_until(lambda: agent.uplink.connected, 10, "the edge connects")
        identity_mosquitto.stop()  # the broker closes every connection as it goes, as it does for a takeover
        identity_mosquitto.start()
        wait_until(lambda: agent.uplink.connections == 2, 20, "the edge is back")
        heard = agent.takeovers.uptimes_heard
        wait_until(lambda: agent.takeovers.uptimes_heard >= heard + 2, 10, "the edge hears the broker's uptime")
        assert agent.takeovers.count == 0
        assert agent.takeovers.restarts <= 1  # 1 when the broker's close was an end of stream, 0 for a reset
        assert agent.health_values(0)["uplink_takeover_problem"] == ""
    finally:
        running.stop()


def test_a_second_client_with_the_edges_identity_takes_its_session_and_the_edge_raises_it(
    identity_mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = _edge(identity_mosquitto, tmp_path / "edge", (2.0, 3.0))  # the thief holds the session a moment
    health = Subscriber(None, topics.telemetry("s1", HEALTH_DEVICE), account=as_user(identity_mosquitto, "observer"))
    running = LoopThread(agent.run)
    try:
        wait_until(lambda: agent.uplink.connected, 10, "the edge connects")
        thief, attempt = connect(as_user(identity_mosquitto, "edge-s1"))  # a stolen certificate and key
        assert attempt.connected.wait(10), attempt.refused
        wait_until(lambda: agent.takeovers.count >= 1, 10, "the edge sees its session taken over")
        close(thief)

        def problem(m: Any) -> str:
            values = decode_telemetry(m.payload).samples[-1].values
            return str(values.get("uplink_takeover_problem") or "")

        got = health.wait_for(lambda ms: any(problem(m) for m in ms), 15)
        reported = next(m for m in got if problem(m))
        assert "taken over" in problem(reported)
        assert "uplink session taken over site=s1" in caplog.text
        assert 'lifeline_edge_uplink_sessions_taken_over_total{site="s1"} 1' in agent.metrics_text()
        (rule,) = [r for r in load_rules([PACKS / "edge.yaml"]) if r.id == "edge.uplink.session_taken_over"]
        transitions = Engine([rule]).observe(decode_telemetry(reported.payload))
        assert [(t.rule, t.severity) for t in transitions] == [("edge.uplink.session_taken_over", "critical")]
    finally:
        running.stop()
        health.close()


def test_a_revoked_certificate_is_refused_and_a_new_one_connects(
    identity_mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a takeover: ``lifeline keys revoke`` the edge's certificate, ``lifeline keys cert`` a new one, restart."""
    credentials = identity_mosquitto.data_dir / "credentials"
    stolen = as_user(identity_mosquitto, "edge-s2")
    assert stolen.tls is not None
    assert stolen.tls.cert_file is not None
    kept = stolen.tls.cert_file.with_name("stolen.pem")
    kept.write_bytes(stolen.tls.cert_file.read_bytes())
    kept.with_suffix(".key").write_bytes(stolen.tls.key_file.read_bytes())  # type: ignore[union-attr]
    made, attempt = connect(stolen)  # before the revocation the certificate connects
    assert attempt.connected.wait(10), attempt.refused
    close(made)
    ca_dir = tmp_path / "tls"
    assert main(["keys", "revoke", "--ca", str(ca_dir), str(stolen.tls.cert_file)]) == 0
    assert main(["keys", "cert", "--ca", str(ca_dir), "--dir", str(credentials), "--user", "edge-s2"]) == 0
    assert "edge-s2" in capsys.readouterr().out
    identity_mosquitto.stop()
    assert identity_mosquitto.tls is not None
    identity_mosquitto.tls = replace(
        identity_mosquitto.tls, crl_file=ensure_crl((ca_dir / "ca.pem", ca_dir / "ca.key"))
    )
    identity_mosquitto.start()
    thief = stolen.tls.model_copy(update={"cert_file": kept, "key_file": kept.with_suffix(".key")})
    refused(stolen.model_copy(update={"tls": thief}))
    for username in ("edge-s2", "edge-s1"):  # the new certificate, and everyone else's, still connect
        made, attempt = connect(as_user(identity_mosquitto, username))
        assert attempt.connected.wait(10), f"{username}: {attempt.refused}"
        close(made)
