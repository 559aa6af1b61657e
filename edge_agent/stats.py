"""Counters of one edge agent (plain ints on the hot path), read into Prometheus metric families at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from infra.metrics import Metric, counter, gauge

# Modbus exception codes counted one by one (Modbus Application Protocol v1.1b3 §7); any other in "other"
EXCEPTION_CODES = (1, 2, 3, 4, 5, 6, 10, 11)
EXCEPTION_FIELDS = (*(f"exceptions_{code:02x}" for code in EXCEPTION_CODES), "exceptions_other")
# a device's health counters (ints), which the poll workers send to the agent like the other counters
HEALTH_COUNTERS = ("answers", "retries", *EXCEPTION_FIELDS)


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
    # a Modbus device's health: what a technician asks first (does it answer? what does it refuse? why not?)
    answers: int = 0  # responses of any kind, exceptions included
    retries: int = 0  # polls after a failed one, and re-reads of a block the device refused
    exceptions_01: int = 0
    exceptions_02: int = 0
    exceptions_03: int = 0
    exceptions_04: int = 0
    exceptions_05: int = 0
    exceptions_06: int = 0
    exceptions_0a: int = 0
    exceptions_0b: int = 0
    exceptions_other: int = 0
    last_error: str = ""  # the last failure, as the device's status says it ("" until one)
    offline_reason: str = ""  # why the device is offline ("" while online)

    def exception(self, code: int) -> None:
        """Count an exception response with ``code``."""
        name = f"exceptions_{code:02x}" if code in EXCEPTION_CODES else "exceptions_other"
        setattr(self, name, getattr(self, name) + 1)

    def exceptions(self) -> dict[str, int]:
        """Exception responses by code ("0B": 12), the codes seen only."""
        out = {f"{code:02X}": getattr(self, f"exceptions_{code:02x}") for code in EXCEPTION_CODES}
        out = {code: n for code, n in out.items() if n}
        if self.exceptions_other:
            out["other"] = self.exceptions_other
        return out

    def health(self) -> dict[str, object]:
        """The device's health as the edge's health telemetry carries it (``modbus_health``)."""
        return {
            "answers": self.answers,
            "exceptions": self.exceptions(),
            "retries": self.retries,
            "last_error": self.last_error,
        }

    @property
    def troubled(self) -> bool:
        """Whether anything went wrong with the device this run."""
        return bool(self.last_error or self.retries or self.exceptions())

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
    modbus = {device: st for device, st in devices.items() if st.requests}
    for name, help_text in (
        ("answers", "Modbus responses received (exceptions included)"),
        ("retries", "Modbus polls after a failed one, and re-reads of a block the device refused"),
    ):
        rows = {(site, device): getattr(st, name) for device, st in modbus.items()}
        yield counter(f"lifeline_edge_modbus_{name}_total", help_text, rows, ("site", "device"))
    exceptions = {(site, device, code): n for device, st in modbus.items() for code, n in st.exceptions().items()}
    yield counter(
        "lifeline_edge_modbus_exceptions_total",
        "Modbus exception responses by code (hex, e.g. 0B: gateway target failed to respond)",
        exceptions,
        ("site", "device", "code"),
    )
    for name, value in sorted(gauges.items()):
        kind = counter if name.endswith("_total") else gauge
        yield kind(f"lifeline_edge_{name}", "", {(site,): value}, ("site",))
