"""Counters of one edge agent, rendered in Prometheus text format."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    lateness_s: list[float] = field(default_factory=list)  # bounded by the agent (benchmarks read it)

    def record_lateness(self, seconds: float, keep: int) -> None:
        if keep <= 0:
            return
        if len(self.lateness_s) >= keep:
            del self.lateness_s[: keep // 2]
        self.lateness_s.append(seconds)


def render(site: str, devices: dict[str, DeviceStats], gauges: dict[str, float]) -> str:
    """Prometheus text exposition of the agent's counters."""
    lines: list[str] = []
    per_device = [
        ("polls", "Modbus poll cycles started"),
        ("poll_failures", "poll cycles that reached no answer from the device"),
        ("requests", "Modbus requests sent"),
        ("request_errors", "Modbus requests answered with an exception or not at all"),
        ("readings", "point values published"),
        ("overruns", "poll cycles skipped because the previous one ran late"),
        ("messages_in", "MQTT sensor messages received"),
        ("messages_rejected", "MQTT sensor messages that could not be decoded (dead-lettered)"),
    ]
    for name, help_text in per_device:
        metric = f"lifeline_edge_{name}_total"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for device, st in sorted(devices.items()):
            lines.append(f'{metric}{{site="{site}",device="{device}"}} {getattr(st, name)}')
    for name, value in sorted(gauges.items()):
        metric = f"lifeline_edge_{name}"
        lines += [f"# TYPE {metric} gauge", f'{metric}{{site="{site}"}} {value:g}']
    return "\n".join(lines) + "\n"
