"""The pure parts of valid means: which points are averaged, the validity rules, rounding before comparison, and the
means computed from the minute sums. No I/O. The storage side (the InfluxQL that reads minute sums and stored
rows, the rows that store the means, every stored name) is ``storage.means`` and ``storage.schema``.

Validity (GB 3095-2012 §7.4 Table 4, data statistics validity; HJ 663-2013 for the O3 8-h values, clause not
checked; the 2026 editions' text not checked, see shared standards/air.md "Which averages"; the numbers below are
defaults in ``rules/means.yaml``, check before release):

- an hourly mean needs at least 45 minutes with valid data in the hour;
- a 24-hour (natural day) mean needs at least 20 valid hourly means;
- an O3 8-hour moving mean needs at least 6 valid hourly means of its 8 hours;
- the O3 daily maximum 8-hour mean needs at least 14 valid 8-hour means among the 17 whose hours lie in the day
  (HJ 663-2013: the 8-hour means ending 08:00 to 24:00);
- the O3 daily maximum 1-hour mean (HJ 633-2012 §5: an indicator of the 2012 daily report) is the largest valid
  hourly mean of the day, valid with as many valid hourly means as a 24-hour mean needs (shared standards/air.md
  "Which averages": the day's values follow HJ 663; the 20-hour rule is taken for it too, check).

A concentration cannot be negative: with ``non_negative`` (air), an hourly mean below zero after rounding (a
drifting zero, e.g. -1.2) is refused: stored as invalid with its reason, missing from the AQI and the daily mean,
never raised into the job (a bad mean of one station must not stop the others).

Only good samples count: a sample whose point is uncertain (outside its range, or taken during calibration or
maintenance) or bad stays out of every mean (shared standards/hj212.md "Data flags": values flagged other than N
must not enter averages). Storage (docs/decisions/004): a good sample has no ``<point>.q`` field; uncertain has
``.q = 1``; bad has no value field.

Stored (``storage.means``) as ``<measurement>_hourly`` and ``<measurement>_daily``: the (rounded) mean and the
count behind it (valid minutes, valid hours), or for an invalid period the count and the reason. The O3 daily
maximum 8-hour mean is the daily field ``<point>_8h_max`` (with its count the valid 8-hour means), the daily
maximum 1-hour mean the daily field ``<point>_1h_max`` (its count the valid hourly means). A sound level
(``average: energy``, noise) is an energy mean at every step (GB 3096-2008: minute, hour, day), and its daily row adds
the day level ``<point>_ld`` and the night level ``<point>_ln``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rules.standards.noise import day_hours, energy_mean
from storage.means import count_alias, sum_alias
from storage.reader import Series
from storage.schema import LD, LN, MAX_1H, MAX_8H

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MEANS_FILE = Path(__file__).parent / "means.yaml"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointMeans(_Strict):
    point: Name
    decimals: int | None = Field(
        default=None,
        ge=0,
        le=6,
        description="round the mean to this many decimals (GB/T 8170, half to even) before it is stored and "
        "compared; none: not rounded",
    )
    max_8h: bool = Field(default=False, description="also the daily maximum of the 8-hour moving means (O3)")
    average: Literal["arithmetic", "energy"] = Field(
        default="arithmetic",
        description="energy: sound levels in dB, averaged as 10·log10(mean(10^(L/10))) at every step (minute, hour, "
        "day) and with the day (Ld) and night (Ln) levels stored too (GB 3096-2008, shared standards/noise.md)",
    )
    max_1h: bool = Field(default=False, description="also the daily maximum of the hourly means (O3, HJ 633-2012)")


class MeasurementMeans(_Strict):
    measurement: Name
    min_minutes: int = Field(45, ge=1, le=60, description="minutes with valid data an hourly mean needs")
    min_hours: int = Field(20, ge=1, le=24, description="valid hourly means a daily mean needs")
    min_hours_8h: int = Field(6, ge=1, le=8, description="valid hourly means an 8-hour moving mean needs")
    min_8h_means: int = Field(14, ge=1, le=17, description="valid 8-hour means the daily maximum needs")
    non_negative: bool = Field(
        default=False, description="refuse an hourly mean below 0 after rounding (a concentration): stored invalid"
    )
    points: list[PointMeans] = Field(min_length=1)


class MeansConfig(_Strict):
    """``rules/means.yaml``: what the valid-means job averages, and by which validity rules."""

    timezone: str = "Asia/Shanghai"
    delay_s: float = Field(60.0, ge=0, le=3600, description="wait after the period ends, for late data")
    measurements: list[MeasurementMeans] = Field(default_factory=list)


# --- rounding ----------------------------------------------------------------------------------------------------
def round_half_even(value: float, decimals: int | None) -> float:
    """GB/T 8170 rounding (to nearest, an exact half to the even digit) of the value's decimal text, never of the
    binary float (shared standards/air.md "Formula": ``decimal.Decimal`` with ``ROUND_HALF_EVEN``)."""
    if decimals is None:
        return value
    step = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_EVEN))


# --- means and validity ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Mean:
    """A mean over a period: ``value`` None when the period is invalid (``count`` below ``need``)."""

    value: float | None
    count: int
    need: int
    unit: str  # what is counted: "minutes", "hourly means", "8-hour means"
    of: int  # how many there could be
    refused: str | None = None  # why a mean that had enough data was refused (a negative concentration)

    @property
    def valid(self) -> bool:
        return self.value is not None

    @property
    def reason(self) -> str:
        if self.refused is not None:
            return f"invalid: {self.refused}"
        return f"invalid: {self.count} of {self.of} {self.unit} valid, {self.need} needed"


def refuse_negative(mean: Mean) -> Mean:
    """``mean``, or the same mean refused when its (rounded) value is below 0: a concentration cannot be negative
    (a -0.4 that rounds to 0 is kept as 0)."""
    if mean.value is None or mean.value >= 0:
        return mean
    return Mean(None, mean.count, mean.need, mean.unit, mean.of, refused=f"negative mean {mean.value:g} refused")


def mean_of(
    values: Sequence[float | None], need: int, unit: str, decimals: int | None = None, energy: bool = False
) -> Mean:
    """The mean of the values that are there, if at least ``need`` are; rounded to ``decimals``. ``energy``: the
    energy mean of levels in dB (``rules.standards.noise.energy_mean``)."""
    valid = [v for v in values if v is not None]
    if len(valid) < need or not valid:
        return Mean(None, len(valid), need, unit, len(values))
    value = energy_mean(valid) if energy else math.fsum(valid) / len(valid)
    return Mean(round_half_even(value, decimals), len(valid), need, unit, len(values))


def day_night_means(hourly: Sequence[float | None], spec: MeasurementMeans, p: PointMeans) -> dict[str, Mean]:
    """Ld and Ln (``<point>_ld``, ``<point>_ln``) of a natural day's hourly levels (index = local hour): the energy
    means of the day hours (06:00-22:00) and of the day's night hours (00:00-06:00 and 22:00-24:00: the night is
    split at midnight, check), each valid with ``min_hours`` scaled to its share of the 24 hours (check)."""
    day = day_hours()
    parts = {LD: [h for i, h in enumerate(hourly) if i in day], LN: [h for i, h in enumerate(hourly) if i not in day]}
    return {
        p.point + suffix: mean_of(hours, math.ceil(spec.min_hours * len(hours) / 24), "hourly means", p.decimals, True)
        for suffix, hours in parts.items()
    }


def moving_8h(hourly: Sequence[float | None], need: int, decimals: int | None = None) -> list[Mean]:
    """The 8-hour moving means over ``hourly`` (one value a local hour, oldest first): the first covers
    hours 0–7, the last hours n-8 to n-1."""
    return [mean_of(hourly[i : i + 8], need, "hourly means", decimals) for i in range(len(hourly) - 7)]


def daily_max_8h(hourly: Sequence[float | None], spec: MeasurementMeans, decimals: int | None) -> Mean:
    """The day's maximum 8-hour mean from its 24 hourly means (00:00–01:00 first): the 17 windows 00–08 to 16–24
    (HJ 663-2013: 8-hour means ending 08:00 to 24:00, check), valid if ``min_8h_means`` of them are."""
    eights = moving_8h(hourly, spec.min_hours_8h, decimals)
    valid = [m.value for m in eights if m.value is not None]
    if len(valid) < spec.min_8h_means or not valid:
        return Mean(None, len(valid), spec.min_8h_means, "8-hour means", len(eights))
    return Mean(max(valid), len(valid), spec.min_8h_means, "8-hour means", len(eights))


def daily_max_1h(hourly: Sequence[float | None], spec: MeasurementMeans) -> Mean:
    """The day's maximum hourly mean (the stored hourly means are rounded already), valid with ``min_hours`` valid
    hourly means, as the day's mean (HJ 633-2012 §5 daily report: O3 daily maximum 1-hour mean; validity, check)."""
    valid = [v for v in hourly if v is not None]
    if len(valid) < spec.min_hours or not valid:
        return Mean(None, len(valid), spec.min_hours, "hourly means", len(hourly))
    return Mean(max(valid), len(valid), spec.min_hours, "hourly means", len(hourly))


# --- minute sums (read by storage.means.minute_query) -------------------------------------------------------
Tags = tuple[tuple[str, str], ...]  # a source's tags, sorted, empty values left out


def tags_of(series: Series) -> Tags:
    return tuple(sorted((k, v) for k, v in series.tags.items() if v != ""))


def minute_means(spec: MeasurementMeans, series: Iterable[Series]) -> dict[Tags, dict[str, dict[int, float]]]:
    """Per source, per point: the mean of the good samples of each minute (by minute start, ms) that has any. An
    ``energy`` point's sums are of 10^(L/10) (``storage.means.minute_query``): its minute mean is a level again."""
    energy = set(energy_points(spec))
    sums: dict[Tags, dict[str, dict[int, list[float]]]] = {}
    for s in series:
        by_point = sums.setdefault(tags_of(s), {})
        for row in s.rows():
            t = row.get("time")
            if not isinstance(t, int):
                continue
            for p in spec.points:
                acc = by_point.setdefault(p.point, {}).setdefault(t, [0.0, 0.0])
                uncertain = count_alias(p.point, uncertain=True) in row
                sign = -1.0 if uncertain else 1.0
                total, n = _num(row.get(sum_alias(p.point, uncertain))), _num(row.get(count_alias(p.point, uncertain)))
                acc[0] += sign * total
                acc[1] += sign * n
    out: dict[Tags, dict[str, dict[int, float]]] = {}
    for tags, by_point in sums.items():
        out[tags] = {
            point: {
                t: 10 * math.log10(total / n) if point in energy else total / n
                for t, (total, n) in minutes.items()
                if n >= 0.5 and (total > 0 or point not in energy)
            }
            for point, minutes in by_point.items()
        }
    return out


def energy_points(spec: MeasurementMeans) -> list[str]:
    """The points averaged as sound levels (``average: energy``), for ``storage.means.minute_query``."""
    return [p.point for p in spec.points if p.average == "energy"]


def _num(v: object) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def hourly_means(spec: MeasurementMeans, series: Iterable[Series]) -> dict[Tags, dict[str, Mean]]:
    """Per source and point: the hourly mean of the minute means, valid with ``min_minutes`` minutes (of 60)."""
    out: dict[Tags, dict[str, Mean]] = {}
    for tags, by_point in minute_means(spec, series).items():
        row: dict[str, Mean] = {}
        for p in spec.points:
            minutes = list(by_point.get(p.point, {}).values())
            padded: list[float | None] = [*minutes, *([None] * max(0, 60 - len(minutes)))]
            mean = mean_of(padded, spec.min_minutes, "minutes", p.decimals, p.average == "energy")
            row[p.point] = refuse_negative(mean) if spec.non_negative else mean
        out[tags] = row
    return out


def daily_means(
    spec: MeasurementMeans, series: Iterable[Series], day_start_ms: int, hours: int = 24
) -> dict[Tags, dict[str, Mean]]:
    """Per source: the daily means of the stored hourly means of the day (and the O3 daily maximum 8-hour mean)."""
    hourly: dict[Tags, dict[str, list[float | None]]] = {}
    for s in series:
        grid = hourly.setdefault(tags_of(s), {p.point: [None] * hours for p in spec.points})
        for row in s.rows():
            t = row.get("time")
            if not isinstance(t, int) or not 0 <= (t - day_start_ms) // HOUR_MS < hours:
                continue
            for p in spec.points:
                v = row.get(p.point)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    grid[p.point][(t - day_start_ms) // HOUR_MS] = float(v)
    out: dict[Tags, dict[str, Mean]] = {}
    for tags, grid in hourly.items():
        row_out: dict[str, Mean] = {}
        for p in spec.points:
            row_out[p.point] = mean_of(grid[p.point], spec.min_hours, "hourly means", p.decimals, p.average == "energy")
            if p.average == "energy":
                row_out |= day_night_means(grid[p.point], spec, p)
            if p.max_8h:
                row_out[p.point + MAX_8H] = daily_max_8h(grid[p.point], spec, p.decimals)
            if p.max_1h:
                row_out[p.point + MAX_1H] = daily_max_1h(grid[p.point], spec)
        out[tags] = row_out
    return out
