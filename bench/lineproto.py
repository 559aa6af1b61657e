"""Line protocol encoding speed: storage.lineproto.LineEncoder (the bridge's encoder) against influxdb_client's Point.

A point here is one value of one sample (one field of a line, quality fields aside). The message is water-quality
like: 10 points (8 floats, an int, a bool), 100 samples a message, 100 series (devices); every 10th sample has one
uncertain point (two more fields). Messages are built before the clock starts: only encoding is timed, each
figure the best of a few rounds. influxdb_client's Point builds the same lines (tags, fields, ms timestamp) on
fewer points, as it is an order of magnitude slower.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench._figures import figure, write_json
from storage.lineproto import LineEncoder
from telemetry.models import Quality, Telemetry

POINTS_PER_SAMPLE = 10
SAMPLES_PER_MESSAGE = 100
SERIES = 100
ROUNDS = 3
T0_MS = 1_700_000_000_000


def _sample(n: int, ts: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ph": 7.0 + (n % 50) / 100,
        "temperature": 18.5 + (n % 30) / 10,
        "turbidity": 3.2 + (n % 17) / 10,
        "conductivity": 512.0 + n % 40,
        "dissolved_oxygen": 8.1 + (n % 9) / 10,
        "orp": 210.0 + n % 25,
        "ammonia": 0.25 + (n % 7) / 100,
        "cod": 14.0 + (n % 11) / 10,
        "level_mm": 1200 + n % 80,  # an int register: written as a float field
        "pump_running": n % 2 == 0,
    }
    quality = {"turbidity": {"q": "uncertain", "reason": "above the sensor range"}} if n % 10 == 0 else {}
    return {"ts": ts, "values": values, "quality": quality}


def _messages(points: int) -> list[Telemetry]:
    """Messages over SERIES devices, SAMPLES_PER_MESSAGE samples each, about `points` values in all."""
    count = max(1, points // (POINTS_PER_SAMPLE * SAMPLES_PER_MESSAGE))
    msgs = []
    for m in range(count):
        device = f"wq-{m % SERIES:03d}"
        start = T0_MS + (m // SERIES) * SAMPLES_PER_MESSAGE * 1000
        msgs.append(
            Telemetry(
                site="riverside",
                device=device,
                profile="water_quality_station",
                measurement="water_quality",
                seq=m // SERIES + 1,
                tags={"river": "north branch", "vendor": "acme"},
                samples=[_sample(m * SAMPLES_PER_MESSAGE + s, start + s * 1000) for s in range(SAMPLES_PER_MESSAGE)],
            )
        )
    return msgs


def _point_count(msgs: list[Telemetry]) -> int:
    return sum(len(sample.values) for msg in msgs for sample in msg.samples)


def _time_line_encoder(msgs: list[Telemetry]) -> tuple[float, int, int]:
    """Best wall time of ROUNDS (a fresh encoder each, so series misses are included), lines, bytes."""
    best = float("inf")
    body, lines = b"", 0
    for _ in range(ROUNDS):
        encoder = LineEncoder()
        start = time.perf_counter()
        body, lines = encoder.encode_batch(msgs)
        best = min(best, time.perf_counter() - start)
    return best, lines, len(body)


def _time_influxdb_client(msgs: list[Telemetry]) -> tuple[float, int]:
    """Best wall time of ROUNDS building and serialising one influxdb_client Point per sample."""
    from influxdb_client.client.write.point import Point
    from influxdb_client.domain.write_precision import WritePrecision

    point_class: Any = Point  # influxdb_client's methods are untyped
    best = float("inf")
    lines = 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        lines = 0
        for msg in msgs:
            for sample in msg.samples:
                point = point_class(msg.measurement).tag("site", msg.site).tag("device", msg.device)
                point = point.tag("profile", msg.profile)
                for key, tag in msg.tags.items():
                    point = point.tag(key, tag)
                for name, value in sample.values.items():
                    point = point.field(name, float(value) if type(value) is int else value)
                for name, pq in sample.quality.items():
                    point = point.field(f"{name}.q", 2 if pq.q == Quality.BAD else 1).field(f"{name}.reason", pq.reason)
                point.time(sample.ts, WritePrecision.MS).to_line_protocol()
                lines += 1
        best = min(best, time.perf_counter() - start)
    return best, lines


def measure(points: int = 200_000, client_points: int = 20_000) -> dict[str, float | int]:
    """Encode `points` values with LineEncoder and `client_points` with influxdb_client; the figures."""
    msgs = _messages(points)
    n = _point_count(msgs)
    seconds, lines, size = _time_line_encoder(msgs)
    client_msgs = _messages(client_points)
    client_n = _point_count(client_msgs)
    client_seconds, client_lines = _time_influxdb_client(client_msgs)
    us_per_point = seconds / n * 1e6
    client_us_per_point = client_seconds / client_n * 1e6
    return {
        "points": n,
        "lines": lines,
        "series": min(SERIES, len(msgs)),
        "bytes": size,
        "line_encoder_s": round(seconds, 4),
        "line_encoder_us_per_point": round(us_per_point, 3),
        "line_encoder_us_per_line": round(seconds / lines * 1e6, 2),
        "line_encoder_points_per_s": round(n / seconds),
        "influxdb_client_points": client_n,
        "influxdb_client_us_per_point": round(client_us_per_point, 3),
        "influxdb_client_us_per_line": round(client_seconds / client_lines * 1e6, 2),
        "speedup": round(client_us_per_point / us_per_point, 1),
    }


def run(args: argparse.Namespace) -> int:
    """``lifeline bench lineproto``: print the figures of :func:`measure`."""
    figures = measure(args.points, args.client_points)
    write_json(args.json, "lineproto", figures)
    f = figures
    figure(
        f"LineEncoder: {f['points']} points in {f['lines']} lines ({f['series']} series): "
        f"{f['line_encoder_us_per_point']} µs/point, {f['line_encoder_points_per_s']} points/s"
    )
    figure(
        f"influxdb_client Point: {f['influxdb_client_points']} points: {f['influxdb_client_us_per_point']} "
        f"µs/point; LineEncoder is {f['speedup']}x faster"
    )
    return 0
