"""The transport's awaitable publish on a real Mosquitto: it returns once the broker acknowledged the message, and
raises PublishError when it cannot say so (no broker in time, the broker gone before its PUBACK)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from infra.mqtt import BrokerConfig, Publisher, PublishError
from testing import Mosquitto, free_port
from tests.helpers import Subscriber, client_account

pytestmark = pytest.mark.integration


def test_publish_returns_after_the_puback_and_the_message_is_there(mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto, "link-test/#")
    account = client_account(mosquitto, "link")

    async def main() -> float:
        pub = Publisher(account, account.username or "")
        pub.start()
        try:
            started = time.monotonic()
            await pub.publish("link-test/a", b"one", timeout_s=10)  # waits for the connection, then the PUBACK
            return time.monotonic() - started
        finally:
            await pub.close()

    try:
        assert asyncio.run(main()) < 10
        got = sub.wait_for(lambda ms: len(ms) >= 1)
        assert [(m.topic, m.payload) for m in got] == [("link-test/a", b"one")]
    finally:
        sub.close()


def test_publish_without_a_broker_raises_in_time() -> None:
    broker = BrokerConfig(port=free_port(), reconnect_initial_s=0.1, reconnect_max_s=0.5)

    async def main() -> str:
        pub = Publisher(broker, "nobody-listens")
        pub.start()
        try:
            with pytest.raises(PublishError) as raised:
                await pub.publish("link-test/a", b"lost", timeout_s=0.5)
            return str(raised.value)
        finally:
            await pub.close()

    started = time.monotonic()
    assert "not connected" in asyncio.run(main())
    assert time.monotonic() - started < 5


def test_a_broker_gone_before_the_puback_raises(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", control=True)
    broker.start()
    account = client_account(broker, "link").model_copy(update={"reconnect_initial_s": 0.1, "reconnect_max_s": 0.5})
    try:

        async def main() -> list[BaseException | None]:
            pub = Publisher(account, account.username or "")
            pub.start()
            try:
                await pub.publish("link-test/a", b"first", timeout_s=10)
                broker.stop()  # no more PUBACKs: what is published now cannot be confirmed
                results = await asyncio.gather(
                    *(pub.publish("link-test/b", b"%d" % i, timeout_s=2) for i in range(20)), return_exceptions=True
                )
                return list(results)
            finally:
                await pub.close()

        results = asyncio.run(main())
        assert results, "nothing was published"
        assert all(isinstance(r, PublishError) for r in results), results
    finally:
        broker.remove()
