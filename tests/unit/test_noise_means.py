"""Noise levels are energy means (GB 3096-2008, shared standards/noise.md): the minute, the hourly Leq, the daily
level, Ld (day hours) and Ln (night hours), from the valid-means job's pure parts (``rules._means``) and the minute
query that sums a sound level's energy (``storage.means.minute_query``)."""

from __future__ import annotations

import math

import pytest

from rules._means import MeasurementMeans, daily_means, energy_points, hourly_means, mean_of
from rules.valid_means import load_means_config
from storage import Series
from storage.means import minute_query

MINUTE = 60_000
HOUR = 60 * MINUTE
TAGS = {"site": "city", "device": "n1", "noise_zone": "2"}
NOISE = MeasurementMeans(
    measurement="noise",
    min_minutes=45,
    min_hours=16,
    points=[{"point": "noise_laeq", "decimals": 1, "average": "energy"}],
)


def energy(level: float) -> float:
    return 10 ** (level / 10)


def minute_rows(levels_per_minute: list[list[float]]) -> list[list[object]]:
    """The minute query's answer for an energy point: per minute the sum of 10^(L/10) and the count."""
    return [[i * MINUTE, math.fsum(energy(v) for v in vs), len(vs)] for i, vs in enumerate(levels_per_minute) if vs]


def hourly(levels_per_minute: list[list[float]], uncertain: list[list[object]] | None = None) -> float | None:
    series = [Series("noise", TAGS, ["time", "s_noise_laeq", "n_noise_laeq"], minute_rows(levels_per_minute))]
    if uncertain:
        series.append(Series("noise", TAGS, ["time", "us_noise_laeq", "un_noise_laeq"], uncertain))
    ((_, means),) = hourly_means(NOISE, series).items()
    return means["noise_laeq"].value


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        pytest.param([[50.0]] * 30 + [[70.0]] * 30, 67.0, id="half-50-half-70-is-67-not-60"),
        pytest.param([[60.0]] * 60, 60.0, id="steady"),
        pytest.param([[50.0, 70.0]] * 60, 67.0, id="within-the-minute-too"),
        pytest.param([[55.0] * 12] * 59 + [[90.0] * 12], 72.3, id="one-loud-minute-dominates"),
        pytest.param([[60.0]] * 45, 60.0, id="45-minutes-valid"),
        pytest.param([[60.0]] * 44, None, id="44-minutes-invalid"),
    ],
)
def test_hourly_leq_is_the_energy_mean(minutes: list[list[float]], expected: float | None) -> None:
    assert hourly(minutes) == expected


def test_uncertain_samples_are_subtracted_in_energy() -> None:
    # every minute: two good samples at 50 and one uncertain at 100 dB (out of range), which must not count
    minutes = [[50.0, 50.0, 100.0]] * 60
    uncertain: list[list[object]] = [[i * MINUTE, energy(100.0), 1] for i in range(60)]
    assert hourly(minutes, uncertain) == 50.0


def test_a_minute_of_only_uncertain_samples_is_no_minute() -> None:
    minutes = [[100.0]] * 15 + [[60.0]] * 45
    uncertain: list[list[object]] = [[i * MINUTE, energy(100.0), 1] for i in range(15)]
    series = [
        Series("noise", TAGS, ["time", "s_noise_laeq", "n_noise_laeq"], minute_rows(minutes)),
        Series("noise", TAGS, ["time", "us_noise_laeq", "un_noise_laeq"], uncertain),
    ]
    ((_, means),) = hourly_means(NOISE, series).items()
    assert (means["noise_laeq"].value, means["noise_laeq"].count) == (60.0, 45)


def test_an_arithmetic_point_is_unchanged() -> None:
    assert mean_of([50.0] * 30 + [70.0] * 30, 45, "minutes", 1).value == 60.0
    assert mean_of([50.0] * 30 + [70.0] * 30, 45, "minutes", 1, energy=True).value == 67.0


def day(hours: dict[int, float]) -> dict[str, float | None]:
    rows: list[list[object]] = [[h * HOUR, v] for h, v in sorted(hours.items())]
    ((_, means),) = daily_means(NOISE, [Series("noise_hourly", TAGS, ["time", "noise_laeq"], rows)], 0).items()
    return {name: m.value for name, m in means.items()}


def test_daily_level_ld_and_ln_are_energy_means() -> None:
    # day hours (06-22) at 60; night hours at 50 but 23:00-24:00 at 70
    levels = {h: 60.0 if 6 <= h < 22 else 50.0 for h in range(24)} | {23: 70.0}
    got = day(levels)
    assert got["noise_laeq_ld"] == 60.0
    assert got["noise_laeq_ln"] == 61.3  # 10·log10((7·10^5 + 10^7) / 8) = 61.26
    assert got["noise_laeq"] == 60.5  # the 24 hours: 10·log10((16·10^6 + 7·10^5 + 10^7) / 24) = 60.46


@pytest.mark.parametrize(
    ("hours", "ld", "ln"),
    [
        pytest.param(range(24), 60.0, 50.0, id="all"),
        pytest.param([*range(6, 17), 22, 23, 0, 1, 2, 3], 60.0, 50.0, id="ld-11-of-16-ln-6-of-8"),
        pytest.param([*range(6, 16), *range(0, 6), 22, 23], None, 50.0, id="ld-10-of-16-invalid"),
        pytest.param([*range(6, 22), 0, 1, 2, 3, 4], 60.0, None, id="ln-5-of-8-invalid"),
    ],
)
def test_ld_and_ln_validity(hours: list[int], ld: float | None, ln: float | None) -> None:
    got = day({h: 60.0 if 6 <= h < 22 else 50.0 for h in hours})
    assert (got["noise_laeq_ld"], got["noise_laeq_ln"]) == (ld, ln)


def test_minute_query_sums_the_energy_of_a_sound_level_through_a_subquery() -> None:
    q = minute_query("noise", ["noise_laeq", "noise_lmax"], 0, HOUR, energy=["noise_laeq"])
    span = "time >= 0ms AND time < 3600000ms"
    assert q.split("; ") == [
        f'SELECT sum("noise_lmax") AS "s_noise_lmax", count("noise_lmax") AS "n_noise_lmax" FROM "noise" WHERE {span} '
        "GROUP BY time(1m), * fill(none)",
        f'SELECT sum("noise_lmax") AS "us_noise_lmax", count("noise_lmax") AS "un_noise_lmax" FROM "noise" '
        f'WHERE {span} AND "noise_lmax.q" = 1 GROUP BY time(1m), * fill(none)',
        f'SELECT sum("energy") AS "s_noise_laeq", count("energy") AS "n_noise_laeq" FROM (SELECT pow(10, "noise_laeq" '
        f'/ 10) AS "energy" FROM "noise" WHERE {span} GROUP BY *) WHERE {span} GROUP BY time(1m), * fill(none)',
        f'SELECT sum("energy") AS "us_noise_laeq", count("energy") AS "un_noise_laeq" FROM (SELECT pow(10, '
        f'"noise_laeq" / 10) AS "energy" FROM "noise" WHERE {span} AND "noise_laeq.q" = 1 GROUP BY *) WHERE {span} '
        "GROUP BY time(1m), * fill(none)",
    ]


def test_shipped_noise_means_are_energy_means() -> None:
    (spec,) = [m for m in load_means_config().measurements if m.measurement == "noise"]
    assert energy_points(spec) == ["noise_laeq"]
