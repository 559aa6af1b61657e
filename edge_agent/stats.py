"""Counters of one edge agent (plain ints on the hot path), read into Prometheus metric families at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from infra.metrics import Metric, counter, gauge


@dataclass(slots=True)
class DeviceStats:
    polls: int = 0
    poll_failures: int = 0
    requests: int = 0
    request_errors: int = 0
    readings: int = 0
    overruns: int = 0
    messages_in: int = 0
    messages_rejected: int = 0
    readings_missed: int = 0  # MQTT sensor messages its own counter numbered that never arrived
    lateness_s: list[float] = field(default_factory=list)  # bounded by the agent (benchmarks read it)

    def record_lateness(self, seconds: float, keep: int) -> None:
        if keep <= 0:
            return
        if len(self.lateness_s) >= keep:
            del self.lateness_s[: keep // 2]
        self.lateness_s.append(seconds)


def collect(site: str, devices: dict[str, DeviceStats], gauges: dict[str, float]) -> Iterator[Metric]:
    """The agent's counters by device, and its site-wide values (``..._total``: counters)."""
    per_device = [
        ("polls", "Modbus poll cycles started"),
        ("poll_failures", "poll cycles that reached no answer from the device"),
        ("requests", "Modbus requests sent"),
        ("request_errors", "Modbus requests answered with an exception or not at all"),
        ("readings", "point values published"),
        ("overruns", "poll cycles skipped because the previous one ran late"),
        ("messages_in", "MQTT sensor messages received"),
        ("messages_rejected", "MQTT sensor messages that could not be decoded (dead-lettered)"),
        ("readings_missed", "MQTT sensor messages never heard: gaps in the sensor's own counter (mqtt.sequence)"),
    ]
    for name, help_text in per_device:
        rows = {(site, device): getattr(st, name) for device, st in devices.items()}
        yield counter(f"lifeline_edge_{name}_total", help_text, rows, ("site", "device"))
    for name, value in sorted(gauges.items()):
        kind = counter if name.endswith("_total") else gauge
        yield kind(f"lifeline_edge_{name}", "", {(site,): value}, ("site",))
