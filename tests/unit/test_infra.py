"""infra: the metric helpers over prometheus_client, and the one InfluxDB connection model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from broker_bridge.config import InfluxConfig
from infra.influx_config import InfluxConnection
from infra.metrics import Metric, counter, gauge, render, summary


class Plain:
    """A component with plain counters, collected at scrape time."""

    def __init__(self) -> None:
        self.sent = 0

    def collect(self) -> Iterator[Metric]:
        yield counter("x_sent_total", "messages sent", {("a",): self.sent}, ("channel",))
        yield gauge("x_up", "", 1)
        yield summary("x_batch_seconds", "time", count=2, total=0.5, quantiles={0.5: 0.2})


def test_collectors_read_their_counters_at_each_scrape() -> None:
    c = Plain()
    c.sent += 3
    text = render(c)
    assert "# TYPE x_sent_total counter" in text
    assert 'x_sent_total{channel="a"} 3.0' in text
    assert "# TYPE x_up gauge\nx_up 1.0" in text
    assert 'x_batch_seconds{quantile="0.5"} 0.2' in text
    assert "x_batch_seconds_count 2.0" in text
    assert "x_batch_seconds_sum 0.5" in text
    c.sent += 1
    assert 'x_sent_total{channel="a"} 4.0' in render(c)


def test_a_counter_is_named_total() -> None:
    with pytest.raises(ValueError, match="_total"):
        counter("x_sent", "", 1)


def test_the_connection_carries_the_account_in_a_header() -> None:
    conn = InfluxConnection(url="http://127.0.0.1:8086/", username="lifeline-rules", password="pw")
    auth = conn.auth()
    assert isinstance(auth, httpx.BasicAuth)
    assert InfluxConnection().auth() is None
    client = conn.http_client()
    assert str(client.base_url) == "http://127.0.0.1:8086"
    assert "pw" not in str(client.base_url)


def test_the_bridges_model_is_the_shared_one_plus_its_writer_fields() -> None:
    bridge = InfluxConfig(url="http://i:8086", database="d", retention_policy="rp", username="u", password="p",
                          timeout_s=3, transport="v1", create_database=True)  # fmt: skip
    reader = bridge.read_only()
    assert type(reader) is InfluxConnection
    assert reader.model_dump() == {"url": "http://i:8086", "database": "d", "retention_policy": "rp",
                                   "username": "u", "password": "p", "timeout_s": 3.0, "ca_file": None}  # fmt: skip
