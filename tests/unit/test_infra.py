"""infra: the metric helpers over prometheus_client (the InfluxDB connection model: tests/unit/test_storage.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
