"""The noise rule kind: the 5-minute Leq of a meter's LAeq against its GB 3096-2008 zone's day or night limit
(the zone from the device's tag), with the shipped pack's on-delay."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from rules import PACKS, Engine, Transition, load_rules
from telemetry.models import Telemetry

RULE = next(r for r in load_rules([PACKS]) if r.id == "noise.zone_limit.leq5m")
MINUTE = 60_000


def local(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp() * 1000)


def msg(ts: int, laeq: float, tags: dict[str, str], device: str = "n1") -> Telemetry:
    return Telemetry.model_validate(
        {
            "site": "city",
            "device": device,
            "profile": "noise_meter",
            "measurement": "noise",
            "seq": 0,
            "tags": tags,
            "samples": [{"ts": ts, "values": {"noise_laeq": laeq, "noise_lmax": laeq + 8}}],
        }
    )


def run(start: str, levels: list[float], tags: dict[str, str], engine: Engine | None = None) -> list[Transition]:
    """One reading a minute from ``start`` (local time)."""
    engine = engine or Engine([RULE])
    t0 = local(start)
    return [t for i, level in enumerate(levels) for t in engine.observe(msg(t0 + i * MINUTE, level, tags))]


def test_zone_2_by_day_raises_above_60_after_the_on_delay() -> None:
    got = run("2026-06-15T10:00:00", [63.0] * 7, {"noise_zone": "2"})
    (raised,) = got
    assert (raised.severity, raised.ts, raised.point) == ("info", local("2026-06-15T10:05:00"), "noise_laeq")
    assert raised.reason.endswith("Leq of noise_laeq over 300 s = 63 dB(A), zone 2 day limit 60 (GB 3096-2008 Table 1)")


@pytest.mark.parametrize(
    ("start", "zone", "level", "raised"),
    [
        pytest.param("2026-06-15T10:00:00", "2", 60.0, False, id="day-equal-to-the-limit-meets-it"),
        pytest.param("2026-06-15T10:00:00", "2", 60.1, True, id="day-just-above"),
        pytest.param("2026-06-15T23:00:00", "2", 52.0, True, id="night-limit-50"),
        pytest.param("2026-06-15T10:00:00", "2", 52.0, False, id="same-level-by-day"),
        pytest.param("2026-06-15T23:00:00", "4a", 55.0, False, id="4a-night-55"),
        pytest.param("2026-06-15T23:00:00", "4b", 58.0, False, id="4b-night-60"),
        pytest.param("2026-06-15T10:00:00", "0", 50.5, True, id="zone-0-day-50"),
        pytest.param("2026-06-15T05:30:00", "1", 47.0, True, id="05:30-is-night-45"),
    ],
)
def test_zone_and_period_limits(start: str, zone: str, level: float, raised: bool) -> None:
    got = run(start, [level] * 6, {"noise_zone": zone})
    assert [t.severity for t in got] == (["info"] if raised else [])


def test_the_leq_is_an_energy_mean() -> None:
    # each 5-minute window holds one minute at 70 and four at 50 dB(A): arithmetic mean 54, energy mean
    # 10·lg((10^7 + 4·10^5) / 5) = 63.2 — above zone 2's day limit 60
    got = run("2026-06-15T10:00:00", [70.0, 50.0, 50.0, 50.0, 50.0] * 2, {"noise_zone": "2"})
    assert [t.severity for t in got] == ["info"]
    assert "= 63.2 dB(A)" in got[0].reason


def test_a_meter_without_a_zone_has_no_verdict_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine([RULE])
    with caplog.at_level(logging.WARNING, logger="rules.evaluate"):
        assert run("2026-06-15T10:00:00", [90.0] * 8, {}, engine) == []
        assert run("2026-06-15T11:00:00", [90.0] * 8, {"noise_zone": "5"}, engine) == []
    (record,) = caplog.records  # logged once per device
    assert "device tag noise_zone=None is not a GB 3096-2008 zone" in record.getMessage()
