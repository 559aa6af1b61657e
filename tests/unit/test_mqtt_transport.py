"""The transport's pure parts: the one reconnect loop (time passed in), the broker settings and their secret."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.backoff import Backoff
from infra.mqtt import BrokerConfig, keep_connected
from infra.secret import Secret


def _run(outcomes: list[bool], backoff: Backoff) -> list[float]:
    """The delays keep_connected waits when its sessions end as ``outcomes`` say (True: the broker accepted it)."""
    waited: list[float] = []

    async def main() -> None:
        stop = asyncio.Event()
        left = list(outcomes)

        async def session() -> bool:
            accepted = left.pop(0)
            if not left:
                stop.set()
            return accepted

        async def wait(event: asyncio.Event, delay_s: float) -> None:
            waited.append(delay_s)

        await keep_connected(session, backoff, stop, wait)

    asyncio.run(main())
    return waited


@pytest.mark.parametrize(
    ("outcomes", "delays"),
    [
        pytest.param([False, False, False, False, False, False], [1, 2, 4, 8, 8], id="refused: doubling up to the cap"),
        pytest.param([False, False, True, False, False], [1, 2, 1, 2], id="a connection made starts over"),
        pytest.param([True, True, True], [1, 1], id="lost connections: the first step each time"),
        pytest.param([True], [], id="stop: no wait"),
    ],
)
def test_reconnect_delays(outcomes: list[bool], delays: list[float]) -> None:
    assert _run(outcomes, Backoff(1.0, 8.0, jitter=False)) == delays


def test_reconnect_delays_are_fully_jittered() -> None:
    draws = iter([0.5, 0.0, 1.0, 0.25])
    assert _run([False] * 5, Backoff(1.0, 8.0, rand=lambda: next(draws))) == [0.5, 0.0, 4.0, 2.0]


def test_the_broker_gives_each_client_a_fresh_backoff_of_its_settings() -> None:
    broker = BrokerConfig(reconnect_initial_s=0.5, reconnect_max_s=4.0)
    first, second = broker.backoff(), broker.backoff()
    assert first is not second
    assert (first.initial_s, first.max_s, first.jitter) == (0.5, 4.0, True)
    assert BrokerConfig().backoff().initial_s <= 1.0  # the first retry within about a second


@pytest.mark.parametrize(
    ("data", "where"),
    [
        pytest.param({"password": "s3cret"}, "inline", id="inline"),
        pytest.param({"password": {"env": "MQTT_PW"}}, "environment variable MQTT_PW", id="env"),
        pytest.param({"password": "env:MQTT_PW"}, "environment variable MQTT_PW", id="legacy env string"),
        pytest.param({"password_env": "MQTT_PW"}, "environment variable MQTT_PW", id="legacy password_env"),
        pytest.param({"password_file": "/run/pw"}, "file /run/pw", id="legacy password_file"),
        pytest.param({"password": {"file": "/run/pw"}}, "file /run/pw", id="file"),
    ],
)
def test_a_password_is_one_secret(data: dict[str, object], where: str) -> None:
    broker = BrokerConfig.model_validate({"username": "u", **data})
    assert broker.password is not None
    assert broker.password.where() == where
    assert "s3cret" not in repr(broker)
    assert "s3cret" not in str(broker.model_dump())


def test_a_password_from_a_file_is_read_at_connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    path.chmod(0o600)
    assert BrokerConfig(username="u", password=Secret(file=path)).secret() == "from-file"
    monkeypatch.setenv("MQTT_PW", "from-env")
    assert BrokerConfig.model_validate({"username": "u", "password_env": "MQTT_PW"}).secret() == "from-env"
    assert BrokerConfig().secret() is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"password": "a", "password_file": "/run/pw"}, id="two sources"),
        pytest.param({"reconnect_initial_s": 5, "reconnect_max_s": 1}, id="cap below the first step"),
    ],
)
def test_broker_settings_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BrokerConfig.model_validate(data)


def test_every_link_is_back_within_seconds_by_default() -> None:
    """One reconnect setting for every client (no per-client caps): the first retry within a second, the longest
    wait 5 s, so an alarm taken during an outage is notified within seconds of the broker's return."""
    broker = BrokerConfig()
    assert (broker.reconnect_initial_s, broker.reconnect_max_s) == (1.0, 5.0)
    backoff = broker.backoff()
    backoff.jitter = False
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
