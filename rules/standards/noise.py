"""Environmental noise limits by GB 3096-2008: functional zones 0, 1, 2, 3, 4a, 4b; day and night Leq limits.

shared/standards has no noise file yet: the values below are GB 3096-2008 as known to the team (check against the
text before release, and add them to the facts files).

- Table 1 (环境噪声限值), LAeq in dB(A): zone 0 50/40, 1 55/45, 2 60/50, 3 65/55, 4a 70/55, 4b 70/60 (day/night).
- §3 terms: day (昼间) 06:00-22:00, night (夜间) 22:00-06:00 local time; a county-level or higher government may
  set other hours, so they are parameters here.
- §5.4: at night a sudden (突发) noise's maximum level may exceed the zone's limit by at most 15 dB(A) (check).
- A level equal to the limit meets it (the limit is a maximum).
- Levels over a period are energy means, never arithmetic means of decibels (shared standards/noise.md):
  ``L = 10·log10((1/T)·Σ tᵢ·10^(0.1·Lᵢ))``; half an hour at 50 dB(A) and half at 70 is 67.0, not 60. The hourly
  Leq, the day level Ld (the day hours) and the night level Ln (the night hours) are such means (``energy_mean``);
  the day-night level ``Ldn = 10·log10((16·10^(0.1·Ld) + 8·10^(0.1·(Ln + 10)))/24)`` (``day_night_level``).
Time is local Asia/Shanghai: an aware datetime is converted, a bare ``time`` is taken as local wall-clock time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from rules.standards._numbers import Number, as_decimal

SHANGHAI = ZoneInfo("Asia/Shanghai")


class NoiseZone(StrEnum):
    """声环境功能区类别 (GB 3096-2008 §4)."""

    Z0 = "0"
    Z1 = "1"
    Z2 = "2"
    Z3 = "3"
    Z4A = "4a"
    Z4B = "4b"


class DayPeriod(StrEnum):
    DAY = "day"
    NIGHT = "night"


@dataclass(frozen=True, slots=True)
class ZoneLimits:
    day_db: Decimal
    night_db: Decimal


# GB 3096-2008 Table 1, LAeq dB(A) (check: not yet in shared/standards)
GB3096_2008: Mapping[NoiseZone, ZoneLimits] = MappingProxyType(
    {
        NoiseZone.Z0: ZoneLimits(Decimal(50), Decimal(40)),
        NoiseZone.Z1: ZoneLimits(Decimal(55), Decimal(45)),
        NoiseZone.Z2: ZoneLimits(Decimal(60), Decimal(50)),
        NoiseZone.Z3: ZoneLimits(Decimal(65), Decimal(55)),
        NoiseZone.Z4A: ZoneLimits(Decimal(70), Decimal(55)),
        NoiseZone.Z4B: ZoneLimits(Decimal(70), Decimal(60)),
    }
)
DAY_START = time(6, 0)  # GB 3096-2008 §3: 昼间 06:00-22:00
NIGHT_START = time(22, 0)  # GB 3096-2008 §3: 夜间 22:00-06:00
NIGHT_LMAX_MARGIN_DB = Decimal(15)  # GB 3096-2008 §5.4: night Lmax at most limit + 15 dB(A) (check)
NIGHT_PENALTY_DB = 10.0  # Ldn: night levels weighted +10 dB (noise.md)


@dataclass(frozen=True, slots=True)
class NoiseVerdict:
    zone: NoiseZone
    period: DayPeriod
    limit_db: Decimal  # the zone's Leq limit for the period
    level_db: Decimal
    exceeded: bool  # level above the limit (equal meets it)
    excess_db: Decimal  # level - limit when exceeded, else 0
    lmax_limit_db: Decimal | None = None  # night only: limit + 15 dB(A)
    lmax_db: Decimal | None = None
    lmax_exceeded: bool | None = None  # None: no Lmax given, or daytime


def local_time(at: datetime | time) -> time:
    """Local (Asia/Shanghai) wall-clock time of ``at``; a naive datetime is refused as ambiguous."""
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"time {at.isoformat()} has no time zone; give an aware datetime or a local time")
        return at.astimezone(SHANGHAI).time()
    return at


def period_of(at: datetime | time, *, day_start: time = DAY_START, night_start: time = NIGHT_START) -> DayPeriod:
    """Day or night at ``at`` (GB 3096-2008 §3): day from ``day_start`` inclusive to ``night_start`` exclusive."""
    if not day_start < night_start:
        raise ValueError(f"day start {day_start} must be before night start {night_start}")
    t = local_time(at)
    return DayPeriod.DAY if day_start <= t < night_start else DayPeriod.NIGHT


def noise_limit(
    zone: NoiseZone | str,
    at: datetime | time,
    *,
    day_start: time = DAY_START,
    night_start: time = NIGHT_START,
    limits: Mapping[NoiseZone, ZoneLimits] = GB3096_2008,
) -> Decimal:
    """The Leq limit in dB(A) for ``zone`` at local time ``at`` (GB 3096-2008 Table 1)."""
    zl = limits[NoiseZone(zone)]
    period = period_of(at, day_start=day_start, night_start=night_start)
    return zl.day_db if period is DayPeriod.DAY else zl.night_db


def noise_verdict(
    zone: NoiseZone | str,
    at: datetime | time,
    laeq_db: Number,
    *,
    lmax_db: Number | None = None,
    day_start: time = DAY_START,
    night_start: time = NIGHT_START,
    limits: Mapping[NoiseZone, ZoneLimits] = GB3096_2008,
) -> NoiseVerdict:
    """The limit for ``zone`` at ``at`` and whether ``laeq_db`` exceeds it; with ``lmax_db`` at night, also the
    §5.4 maximum-level rule."""
    z = NoiseZone(zone)
    period = period_of(at, day_start=day_start, night_start=night_start)
    limit = limits[z].day_db if period is DayPeriod.DAY else limits[z].night_db
    level = as_decimal(laeq_db, "noise_laeq")
    exceeded = level > limit
    verdict = NoiseVerdict(z, period, limit, level, exceeded, level - limit if exceeded else Decimal(0))
    if period is DayPeriod.NIGHT and lmax_db is not None:
        lmax = as_decimal(lmax_db, "noise_lmax")
        lmax_limit = limit + NIGHT_LMAX_MARGIN_DB
        return NoiseVerdict(z, period, limit, level, exceeded, verdict.excess_db, lmax_limit, lmax, lmax > lmax_limit)
    return verdict


def energy_mean(levels: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The energy mean of sound levels in dB: ``10·log10(Σ wᵢ·10^(0.1·Lᵢ) / Σ wᵢ)`` (equal weights by default; a
    weight is a duration). Not rounded. ValueError on no levels, a non-finite level or a weight below 0."""
    if not levels:
        raise ValueError("no levels to average")
    w = [1.0] * len(levels) if weights is None else [float(x) for x in weights]
    if len(w) != len(levels):
        raise ValueError(f"{len(levels)} levels but {len(w)} weights")
    if any(not math.isfinite(x) or x < 0 for x in w) or math.fsum(w) <= 0:
        raise ValueError("weights must be finite, at least 0 and not all 0")
    if any(not math.isfinite(v) for v in levels):
        raise ValueError("a level is not a finite number")
    top = max(levels)  # factored out: 10^(0.1·L) stays within a float for any level
    total = math.fsum(wi * 10 ** ((v - top) / 10) for v, wi in zip(levels, w, strict=True))
    return top + 10 * math.log10(total / math.fsum(w))


def day_hours(day_start: time = DAY_START, night_start: time = NIGHT_START) -> range:
    """The local hours (0-23) of the day period, for whole-hour day and night starts (06:00-22:00: 6..21)."""
    if day_start.minute or night_start.minute or day_start.second or night_start.second:
        raise ValueError("day and night must start on the hour to split hourly levels")
    if not day_start < night_start:
        raise ValueError(f"day start {day_start} must be before night start {night_start}")
    return range(day_start.hour, night_start.hour)


def day_night_level(
    ld_db: float, ln_db: float, *, day_start: time = DAY_START, night_start: time = NIGHT_START
) -> float:
    """Ldn (noise.md): the day level and the night level + 10 dB, energy-weighted by their hours. Not rounded."""
    day = len(day_hours(day_start, night_start))
    return energy_mean([ld_db, ln_db + NIGHT_PENALTY_DB], [day, 24 - day])
