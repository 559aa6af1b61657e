"""The bridge confirms to each site's edge what it stored (Stored on lifeline/v1/{site}/agent/stored), only after
InfluxDB accepted it or the dead letters kept it, and acknowledges to the broker after that; real Mosquitto and
InfluxDB 1.6.7."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.config import BridgeConfig
from infra.deadletter import DeadLetterStore
from lifeline.broker_auth import bridge_account, bridge_publisher_account
from telemetry import Sample, Stored, StoredRange, Telemetry, Value, decode_stored, encode, topics
from testing import Influxd, Mosquitto
from tests.helpers import Publisher, Received, Subscriber, wait_until
from tests.integration.test_bridge import WQ_POINTS, count_points, influx_query, start_bridge

pytestmark = pytest.mark.integration
TS0 = int(time.time() * 1000) - 120_000


# -- the one place this module builds broker settings and MQTT connections (credentials go here) -----------------
def broker_settings(broker: Mosquitto, client_id: str) -> dict[str, Any]:
    """The bridge ``client_id``'s two accounts (reader in the group, publisher of confirmations): the same id gives
    the same accounts back, so a restarted bridge takes up its session."""
    reader = broker.add(dataclasses.replace(bridge_account(), username=client_id))
    publisher = broker.add(dataclasses.replace(bridge_publisher_account(), username=f"{client_id}-pub"))
    return {"broker": reader.model_dump(mode="json"), "publisher": publisher.model_dump(mode="json")}


def connect_publisher(broker: Mosquitto) -> Publisher:
    return Publisher(broker)


def connect_subscriber(broker: Mosquitto, topic_filter: str) -> Subscriber:
    return Subscriber(broker, topic_filter)


# -----------------------------------------------------------------------------------------------------------------
def bridge_config(
    broker: Mosquitto, influx: Influxd, tmp_path: Path, client_id: str = "bridge-a", **over: Any
) -> BridgeConfig:
    data: dict[str, Any] = {
        **broker_settings(broker, client_id),
        "subscription": {"client_id": client_id, "receive_maximum": 100},
        "influx": {"url": influx.url, "database": "lifeline", "timeout_s": 2.0},
        "batch": {"max_points": 2000, "max_delay_s": 0.2},
        "retry": {"initial_s": 0.1, "max_s": 0.5},
        "dead_letter_path": str(tmp_path / f"dead-{client_id}.sqlite"),
    }
    for key, value in over.items():
        data[key] = {**data.get(key, {}), **value}
    return BridgeConfig.model_validate(data)


def telemetry(
    seq: int, device: str = "wq-1", run: str = "r1", site: str = "s1", values: dict[str, Value] | None = None
) -> tuple[str, bytes]:
    """One water-quality message (one sample at its own time: runs r1 and r2 apart) and its topic."""
    ts = TS0 + seq * 10 + (5 if run == "r2" else 0)
    sample = Sample(ts=ts, values=values or dict.fromkeys(WQ_POINTS, 7.0 + seq / 100))
    msg = Telemetry(
        site=site,
        device=device,
        profile="water_quality_station",
        measurement="water_quality",
        seq=seq,
        run=run,
        samples=[sample],
    )
    return topics.telemetry(site, device), encode(msg)


def stored(got: list[Received]) -> list[Stored]:
    return [decode_stored(m.payload, m.topic) for m in got]


def seqs(msgs: list[Stored], device: str = "wq-1", run: str = "r1") -> list[int]:
    return sorted(
        s for m in msgs for r in m.ranges if (r.device, r.run) == (device, run) for s in range(r.first, r.last + 1)
    )


def rng(first: int, last: int, device: str = "wq-1", run: str = "r1") -> StoredRange:
    return StoredRange(device=device, run=run, first=first, last=last)


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = connect_publisher(mosquitto)
    yield pub
    pub.close()


@pytest.fixture
def confirmations(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    sub = connect_subscriber(mosquitto, topics.stored("+"))
    yield sub
    sub.close()


def test_a_batch_is_confirmed_per_site_with_exactly_its_ranges(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, confirmations: Subscriber
) -> None:
    sent = [telemetry(s) for s in (1, 2, 3, 5, 6)]  # a gap at 4: two ranges
    sent += [telemetry(s, run="r2") for s in (0, 1)]  # the agent restarted: its new run counts from 0
    sent += [telemetry(7, device="wq-2"), telemetry(4, site="s2")]
    # one batch: it is full at the last message (and would otherwise wait 10 s)
    bridge, thread = start_bridge(
        bridge_config(mosquitto, influxdb, tmp_path, batch={"max_points": len(sent), "max_delay_s": 10})
    )
    try:
        for topic, payload in sent:
            publisher.send(topic, payload)
        got = confirmations.wait_for(lambda ms: len(ms) >= 2, 10)
        assert count_points(influxdb) == len(sent)  # confirmed only once InfluxDB had them
        by_site = {m.site: m for m in stored(got)}
        assert by_site["s1"].ranges == [rng(1, 3), rng(5, 6), rng(0, 1, run="r2"), rng(7, 7, device="wq-2")]
        assert by_site["s2"].ranges == [rng(4, 4)]
        assert {m.bridge for m in by_site.values()} == {"bridge-a"}
        assert [m.topic for m in got] == [topics.stored(m.site) for m in stored(got)]
        assert not any(m.retain for m in got)
        wait_until(lambda: bridge.consumer.held == 0, 5, "every message acknowledged")
        assert len(confirmations.snapshot()) == 2  # one message per site and batch
        assert bridge.counters.stored_published == 2
        assert bridge.counters.stored_ranges == 5
    finally:
        thread.stop()


def test_a_string_for_a_float_point_is_dead_lettered_and_nothing_of_it_written(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, confirmations: Subscriber
) -> None:
    _, thread = start_bridge(bridge_config(mosquitto, influxdb, tmp_path))
    try:
        bad_topic, bad = telemetry(1, values={"ph": "7.1", "do": 8.0})
        publisher.send(bad_topic, bad)
        publisher.send(*telemetry(2))
        got = confirmations.wait_for(lambda ms: seqs(stored(ms)) == [1, 2], 10)  # kept and stored: both confirmed
        assert {m.bridge for m in stored(got)} == {"bridge-a"}
        store = DeadLetterStore(tmp_path / "dead-bridge-a.sqlite")
        (letter,) = store.list()
        store.close()
        assert (letter.topic, letter.payload, letter.stage) == (bad_topic, bad, "validate")
        assert "point 'ph' of profile 'water_quality_station' is declared float32 (a number)" in letter.reason
        assert "has a str ('7.1')" in letter.reason
        assert count_points(influxdb, field="do") == 1  # the message's good values were not written either
        assert not influx_query(influxdb, f'SELECT * FROM "water_quality" WHERE time = {TS0 + 10}ms')
        fields = {r["fieldKey"]: r["fieldType"] for r in influx_query(influxdb, 'SHOW FIELD KEYS FROM "water_quality"')}
        assert fields["ph"] == "float"  # the first value of the shard did not claim the field as a string
    finally:
        thread.stop()


def test_a_dead_lettered_message_is_acknowledged_too(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, confirmations: Subscriber
) -> None:
    cfg = bridge_config(mosquitto, influxdb, tmp_path)
    bridge, thread = start_bridge(cfg)
    try:
        publisher.send(*telemetry(1, values={"ph": True}))  # a boolean for a number
        wrong_topic = topics.telemetry("s1", "wq-9")
        publisher.send(wrong_topic, telemetry(2)[1])  # wq-1's message on wq-9's topic: kept, never confirmed
        publisher.send(*telemetry(3))
        confirmations.wait_for(lambda ms: seqs(stored(ms)) == [1, 3], 10)
        wait_until(lambda: bridge.counters.dead_lettered == 2 and bridge.consumer.held == 0, 5, "all acknowledged")
        assert all(r.device == "wq-1" for m in stored(confirmations.snapshot()) for r in m.ranges)
    finally:
        thread.stop()
    # the broker agrees: after a restart of the same persistent session nothing of the above comes again
    bridge, thread = start_bridge(cfg)
    try:
        publisher.send(*telemetry(4))
        confirmations.wait_for(lambda ms: 4 in seqs(stored(ms)), 10)
        assert bridge.counters.received == 1
        assert bridge.counters.dead_lettered == 0
    finally:
        thread.stop()


def test_a_message_the_dead_letter_store_fails_to_keep_is_neither_confirmed_nor_acknowledged(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, confirmations: Subscriber
) -> None:
    bridge, thread = start_bridge(bridge_config(mosquitto, influxdb, tmp_path))
    try:
        bridge.dead.close()  # the store fails from now on (sqlite3.ProgrammingError, as a full disk would fail)
        publisher.send(*telemetry(1, values={"ph": "seven"}))
        publisher.send(*telemetry(2))
        confirmations.wait_for(lambda ms: seqs(stored(ms)) == [2], 10)
        wait_until(lambda: bridge.counters.keep_failures == 1, 5, "the failure counted")
        assert bridge.consumer.held == 1  # seq 1 is still the broker's: it comes again after a reconnect
        assert seqs(stored(confirmations.snapshot())) == [2]
    finally:
        thread.stop()


def test_influx_down_no_confirmation_and_no_ack_until_it_is_back(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, confirmations: Subscriber
) -> None:
    bridge, thread = start_bridge(bridge_config(mosquitto, influxdb, tmp_path))
    try:
        influxdb.stop()
        for seq in range(5):
            publisher.send(*telemetry(seq))
        wait_until(lambda: bridge.counters.retries >= 3, 10, "writes retried")
        assert bridge.consumer.held == 5  # nothing acknowledged: the broker still owes them
        assert confirmations.snapshot() == []  # nothing confirmed: the edge keeps them
        influxdb.start()
        got = confirmations.wait_for(lambda ms: seqs(stored(ms)) == [0, 1, 2, 3, 4], 20)
        assert len(got) == 1  # the retried batch, confirmed once
        wait_until(lambda: bridge.consumer.held == 0, 5, "acknowledged once written")
        assert count_points(influxdb) == 5
    finally:
        thread.stop()


def test_two_bridges_of_one_group_each_confirm_their_own_and_together_all(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, confirmations: Subscriber
) -> None:
    a, thread_a = start_bridge(bridge_config(mosquitto, influxdb, tmp_path, "bridge-a"))
    b, thread_b = start_bridge(bridge_config(mosquitto, influxdb, tmp_path, "bridge-b"))
    try:
        for seq in range(40):
            publisher.send(*telemetry(seq))
        got = confirmations.wait_for(lambda ms: seqs(stored(ms)) == list(range(40)), 15)
        mine = {name: seqs([m for m in stored(got) if m.bridge == name]) for name in ("bridge-a", "bridge-b")}
        assert mine["bridge-a"], mine  # the group shared the work
        assert mine["bridge-b"], mine
        assert not set(mine["bridge-a"]) & set(mine["bridge-b"])  # each confirmed only what it wrote
        assert (len(mine["bridge-a"]), len(mine["bridge-b"])) == (
            a.counters.written_messages,
            b.counters.written_messages,
        )
        assert count_points(influxdb) == 40
    finally:
        thread_a.stop()
        thread_b.stop()
