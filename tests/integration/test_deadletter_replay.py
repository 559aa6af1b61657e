"""``lifeline deadletter`` on a real Mosquitto: one tool for the bridge's and the edges' stores; a letter is marked
replayed only once the broker acknowledged it; one it refused or never acknowledged stays pending (exit 1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from broker_bridge.config import BridgeConfig
from infra.deadletter import DeadLetterStore
from infra.mqtt import BrokerConfig
from infra.secret import Secret, write_secret_file
from lifeline.broker_auth import bridge_account, bridge_publisher_account, replay_account
from lifeline.cli import main
from telemetry import topics
from testing import Mosquitto
from tests.helpers import Subscriber, account_for, client_account

pytestmark = pytest.mark.integration

TOPICS = [topics.telemetry("s1", f"wq-{i}") for i in range(3)]


def _bridge(tmp_path: Path, publisher: BrokerConfig) -> Path:
    """A bridge config whose dead-letter store holds three replayable letters; returns the config's path."""
    store = DeadLetterStore(tmp_path / "bridge-dead.sqlite", source="bridge")
    for i, topic in enumerate(TOPICS):
        store.add(1000 + i, topic, f'{{"n": {i}}}'.encode(), "in the future", stage="validate")
    store.close()
    config = BridgeConfig(dead_letter_path=tmp_path / "bridge-dead.sqlite", publisher=publisher)
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return path


def _pending(tmp_path: Path) -> list[int]:
    store = DeadLetterStore(tmp_path / "bridge-dead.sqlite")
    try:
        return [d.id for d in store.pending()]
    finally:
        store.close()


@pytest.fixture
def watcher(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto, topics.telemetry_filter())
    yield sub
    sub.close()


def test_a_good_replay_marks_each_letter_once_the_broker_acknowledged_it(
    mosquitto: Mosquitto, tmp_path: Path, watcher: Subscriber, capsys: pytest.CaptureFixture[str]
) -> None:
    mosquitto.add(replay_account())  # the replay's own account, its password next to the bridge publisher's
    config = _bridge(tmp_path, account_for(mosquitto, bridge_publisher_account()))
    assert main(["deadletter", "--config", str(config), "replay", "--timeout", "5"]) == 0
    assert "replayed 3 dead letter(s)" in capsys.readouterr().out
    got = watcher.wait_for(lambda m: len(m) >= 3, 5)
    assert sorted((m.topic, m.payload) for m in got) == [(t, f'{{"n": {i}}}'.encode()) for i, t in enumerate(TOPICS)]
    assert _pending(tmp_path) == []
    assert main(["deadletter", "--config", str(config), "replay"]) == 0  # nothing left: nothing sent twice
    assert len(watcher.snapshot()) == 3


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _silent_server() -> socket.socket:
    """Accepts TCP connections and never answers (no CONNACK, no PUBACK)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


@pytest.mark.parametrize(
    "case", ["wrong-password", "may-not-publish", "bridge-publisher-alone", "nothing-listening", "never-answers"]
)
def test_a_replay_the_broker_did_not_acknowledge_leaves_the_letters_pending(
    mosquitto: Mosquitto, tmp_path: Path, watcher: Subscriber, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    silent = _silent_server()
    try:
        good = account_for(mosquitto, bridge_publisher_account())
        wrong = tmp_path / "wrong.password"
        write_secret_file(wrong, "not-the-password\n")
        publisher = {
            "wrong-password": good.model_copy(update={"password": Secret(file=wrong)}),
            "may-not-publish": account_for(mosquitto, bridge_account()),  # the bridge's consumer: it only reads
            # no replay account: the bridge's publisher itself may send stored acknowledgements, never telemetry
            "bridge-publisher-alone": good,
            "nothing-listening": BrokerConfig(port=_closed_port()),
            "never-answers": BrokerConfig(port=silent.getsockname()[1]),
        }[case]
        config = _bridge(tmp_path, publisher)
        assert main(["deadletter", "--config", str(config), "replay", "--timeout", "1.5"]) == 1
    finally:
        silent.close()
    err = capsys.readouterr().err
    assert "not replayed (still pending): bridge:1" in err
    expected = "refused the message" if case in {"may-not-publish", "bridge-publisher-alone"} else "not connected"
    assert expected in err, err
    assert _pending(tmp_path) == [1, 2, 3]
    assert watcher.snapshot() == []


def test_one_tool_lists_the_bridge_and_an_edge_and_replays_each_to_its_broker(
    mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mosquitto.add(replay_account())
    bridge = _bridge(tmp_path, account_for(mosquitto, bridge_publisher_account()))
    sensors = client_account(mosquitto, "edge-sensors")
    edge_store = DeadLetterStore(tmp_path / "edge-dead.sqlite", source="edge/s1")
    sensor_letter = edge_store.add(5000, "vendor/gas/GD-1", b"{oops", "not JSON", stage="sensor")
    command_letter = edge_store.add(
        6000, "lifeline/v1/s1/cmd/c1", b"{}", "bad signature", stage="command", replayable=False
    )
    edge_store.close()
    edge = tmp_path / "s1.yaml"
    edge.write_text(
        yaml.safe_dump(
            {
                "site": "s1",
                "sensor_broker": sensors.model_dump(mode="json"),
                "dead_letter_path": str(tmp_path / "edge-dead.sqlite"),
                "devices": [{"id": "gas-1", "profile": "gas_detector", "source_id": "GD-1"}],
            }
        ),
        encoding="utf-8",
    )
    args = ["deadletter", "--config", str(bridge), "--config", str(edge)]

    assert main([*args, "list"]) == 0
    out = capsys.readouterr().out
    assert "bridge: 3 dead letter(s)" in out
    assert "edge/s1: 2 dead letter(s)" in out
    assert f"edge/s1:{command_letter}" in out
    assert "(not replayable)" in out

    with pytest.raises(SystemExit, match="never replayed"):
        main([*args, "replay", f"edge/s1:{command_letter}"])
    with pytest.raises(SystemExit, match="LABEL:ID"):
        main([*args, "show", "1"])  # ambiguous with two stores
    assert main([*args, "show", f"edge/s1:{sensor_letter}"]) == 0
    assert "{oops" in capsys.readouterr().out

    vendor = Subscriber(mosquitto, "vendor/#")
    try:
        assert main([*args, "replay", "--timeout", "5"]) == 0
        assert "replayed 4 dead letter(s)" in capsys.readouterr().out
        vendor.wait_for(lambda m: [x.payload for x in m] == [b"{oops"], 5)  # to the edge's sensor broker
    finally:
        vendor.close()
    kept = DeadLetterStore(tmp_path / "edge-dead.sqlite")
    assert {d.id: d.replayed_ms is not None for d in kept.list()} == {sensor_letter: True, command_letter: False}
    kept.close()
