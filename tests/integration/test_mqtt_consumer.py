"""infra.mqtt.Consumer on a real Mosquitto: the lean intake (read-ahead, PUBACKs in one write) keeps the
bound on what it holds, loses nothing, and its acknowledgements reach the broker (nothing comes again)."""

from __future__ import annotations

import asyncio
import time

import pytest

from infra.mqtt import Consumer, Incoming, SubscriptionConfig
from testing import Mosquitto
from tests.helpers import Publisher, client_account

pytestmark = pytest.mark.integration

TOPIC = "lifeline/v1/s1/wq-{}/telemetry"


async def _take(consumer: Consumer, count: int, timeout_s: float, ack_every: int = 1) -> list[Incoming]:
    """Receive ``count`` messages, acknowledging them ``ack_every`` at a time (slowly: the bound is tested)."""
    got: list[Incoming] = []
    unacked: list[Incoming] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        await consumer.wait(0.1)
        while consumer.inbox:
            item = consumer.inbox.popleft()
            got.append(item)
            unacked.append(item)
            assert consumer.held <= consumer.pause_at + 256, "the intake bound holds"
        if len(unacked) >= ack_every or (unacked and not consumer.inbox):
            await asyncio.sleep(0)
            for item in unacked:
                assert consumer.ack(item)
            unacked.clear()
    await asyncio.sleep(0.3)  # the acknowledgements go out at the next turns of the loop
    return got


def test_backlog_read_ahead_bounded_and_acknowledged(mosquitto: Mosquitto) -> None:
    account = client_account(mosquitto, "consumer")
    sub = SubscriptionConfig(
        client_id=account.username or "", group="lean-test", topic="lifeline/v1/+/+/telemetry", receive_maximum=10
    )
    payloads = [f'{{"n":{i},"pad":"{"x" * (i % 300)}"}}'.encode() for i in range(1500)]

    async def first_run() -> list[Incoming]:
        consumer = Consumer(account, sub)
        consumer.start()
        try:
            await _wait_connected(consumer)
            publisher = Publisher(mosquitto)
            try:
                for i, payload in enumerate(payloads):  # queued while the consumer holds its window
                    publisher.send(TOPIC.format(i % 7), payload)
            finally:
                publisher.close()
            return await _take(consumer, len(payloads), 60, ack_every=5)
        finally:
            await consumer.stop()

    got = asyncio.run(first_run())
    assert [g.payload for g in got] == payloads, "every message, once, in order"
    assert {g.topic for g in got} == {TOPIC.format(i) for i in range(7)}

    async def second_run() -> list[Incoming]:
        consumer = Consumer(account, sub)
        consumer.start()
        try:
            await _wait_connected(consumer)
            return await _take(consumer, 1, 2)
        finally:
            await consumer.stop()

    assert asyncio.run(second_run()) == [], "the acknowledgements reached the broker: nothing comes again"


async def _wait_connected(consumer: Consumer) -> None:
    deadline = time.monotonic() + 10
    while not consumer.connected and time.monotonic() < deadline:  # noqa: ASYNC110 - a flag the client's callback sets, no event
        await asyncio.sleep(0.02)
    assert consumer.connected
    await asyncio.sleep(0.2)  # the subscription is made on the connection


def test_a_queued_backlog_is_read_past_the_reads_of_one_wakeup(mosquitto: Mosquitto) -> None:
    """Small messages, far more than one wakeup parses (READS_PER_WAKEUP) in the read-ahead: the rest is parsed on
    the next turns of the loop, though the socket has nothing new to say."""
    account = client_account(mosquitto, "consumer")
    sub = SubscriptionConfig(
        client_id=account.username or "", group="lean-backlog", topic="lifeline/v1/+/+/telemetry", receive_maximum=5000
    )
    payloads = [str(i).encode() for i in range(4000)]

    async def run(take: int) -> list[Incoming]:
        consumer = Consumer(account, sub)
        consumer.start()
        try:
            await _wait_connected(consumer)
            return await _take(consumer, take, 30, ack_every=1000) if take else []
        finally:
            await consumer.stop()

    asyncio.run(run(0))  # the session, queueing from here
    publisher = Publisher(mosquitto)
    try:
        for i, payload in enumerate(payloads):
            publisher.send(TOPIC.format(i % 3), payload)
    finally:
        publisher.close()
    got = asyncio.run(run(len(payloads)))
    assert [g.payload for g in got] == payloads
