"""Air quality index (AQI) by HJ 633: IAQI per indicator, AQI, level, primary pollutant and the missing-data rule.

The edition follows the sample's Asia/Shanghai date (shared/standards README rule 3): HJ 633-2012 before
2026-03-01, HJ 633-2026 from then (``aqi_tables.EDITIONS``). Pure: values and time are passed in.

- HJ 633-2026 §4.2.2: concentrations rounded before the IAQI (GB/T 8170), CO in mg/m³ to 0.1, the rest in µg/m³ to
  integers.
- §4.2.4: linear interpolation between the bracketing breakpoints; at an exact breakpoint the lower segment is used
  (both give the same value).
- §4.2.6 (2012: §6.2): IAQI and AQI rounded up to an integer. AQI = max IAQI.
- §4.3.1: primary pollutant(s) only when AQI > 50: every indicator sharing the largest IAQI.
- §5.3: with a pollutant missing, AQI, level and primary pollutant come from the others and are published only if
  that AQI > 100; otherwise AQI is shown as NA. A pollutant outside the monitoring plan that meets the clause's
  three-year condition (the caller judges it) does not block publication.
- Above a column's top breakpoint where the table says nothing, the IAQI is capped at the top (500) and flagged
  (air.md: capping is practice, flag for review).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from rules.standards._numbers import Number, as_decimal, round_gbt8170
from rules.standards.aqi_tables import EDITIONS, IAQI_STEPS, Column, Edition, Indicator, Level, Pollutant

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class Iaqi:
    """One indicator's sub-index."""

    indicator: Indicator
    concentration: Decimal  # as rounded for the IAQI (§4.2.2), in the indicator's unit
    value: int
    clause: str  # the table or note that gave the value
    beyond_table: bool = False  # above the top breakpoint with no rule for it: capped at the top IAQI
    substituted_by: Indicator | None = None  # a table note replaced this IAQI with that indicator's


@dataclass(frozen=True, slots=True)
class AqiResult:
    """The AQI of one report period. ``aqi``, ``level`` and ``primary`` are computed from the indicators that have
    an IAQI; ``publishable`` says whether the missing-data rule (§5.3) lets them be published."""

    edition: str
    report: str
    aqi: int | None  # None when no indicator has an IAQI
    level: Level | None
    primary: tuple[Indicator, ...]  # empty when AQI <= 50
    iaqi: tuple[Iaqi, ...]  # in the report's order, for the indicators that have one
    missing: tuple[Indicator, ...]  # required indicators without an IAQI (absent, None, or no rule applies)
    exempt: tuple[Indicator, ...]  # absent, but their pollutant is exempt under §5.3's exception
    notes: tuple[str, ...]  # what the caller should review: capped values, substitutions that could not be made

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def capped(self) -> bool:
        """An IAQI was above its column's top breakpoint and capped at the top (500): review it (air.md: capping
        is practice, not the standard; flag it rather than cap silently)."""
        return any(i.beyond_table for i in self.iaqi)

    @property
    def publishable(self) -> bool:
        # HJ 633-2026 §5.3: with a pollutant missing, publish only when the AQI of the others is above 100
        return self.aqi is not None and (self.complete or self.aqi > 100)

    @property
    def shown(self) -> str:
        """The AQI as a report shows it: the number, or ``NA`` (HJ 633-2026 §5.3, Tables 4 and 5)."""
        return str(self.aqi) if self.publishable else "NA"

    @property
    def primary_pollutants(self) -> tuple[Pollutant, ...]:
        out: list[Pollutant] = []
        for ind in self.primary:
            if ind.pollutant not in out:
                out.append(ind.pollutant)
        return tuple(out)


def edition_for(at: date | datetime, editions: Iterable[Edition] = EDITIONS) -> Edition:
    """The edition in force for data of ``at``: its Asia/Shanghai date decides. A datetime must carry a zone."""
    day = local_date(at)
    chosen: Edition | None = None
    for ed in sorted(editions, key=lambda e: e.effective_from):
        if ed.effective_from <= day:
            chosen = ed
    if chosen is None:
        raise ValueError(f"no AQI edition covers {day.isoformat()}")
    return chosen


def local_date(at: date | datetime) -> date:
    """The Asia/Shanghai date of ``at`` (a date is taken as already local)."""
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"time {at.isoformat()} has no time zone; give an aware datetime or a local date")
        return at.astimezone(SHANGHAI).date()
    return at


def rounded_concentration(indicator: Indicator, value: Number, edition: Edition) -> Decimal:
    """``value`` rounded as the edition requires before the IAQI (HJ 633-2026 §4.2.2, GB/T 8170); a value that is
    negative after rounding raises ValueError (a slightly negative zero reading rounds to 0 and is kept)."""
    dec = as_decimal(value, indicator.value)
    out = round_gbt8170(dec, edition.decimals[indicator.pollutant])
    if out < 0:
        raise ValueError(f"{indicator.value}: concentration {value!r} {indicator.unit} is negative")
    return out + 0  # -0 -> 0


def iaqi(indicator: Indicator, value: Number, edition: Edition) -> Iaqi | None:
    """The IAQI of one indicator's concentration, or None when the edition's note says to use another indicator
    instead (HJ 633-2012 Table 1 notes 3 and 4); ``aqi`` makes that substitution."""
    conc = rounded_concentration(indicator, value, edition)
    column = edition.columns[indicator]
    return _from_column(indicator, conc, column, edition)


def _from_column(indicator: Indicator, conc: Decimal, column: Column, edition: Edition) -> Iaqi | None:
    bps = column.breakpoints
    for i in range(1, len(bps)):
        if conc <= bps[i]:  # the lower segment at an exact breakpoint
            return Iaqi(
                indicator,
                conc,
                _interpolate(conc, bps[i - 1], bps[i], IAQI_STEPS[i - 1], IAQI_STEPS[i]),
                edition.breakpoint_clause,
            )
    note = column.above_top
    if note is None:
        top = IAQI_STEPS[len(bps) - 1]
        return Iaqi(
            indicator,
            conc,
            top,
            f"{edition.breakpoint_clause}: above the top breakpoint {bps[-1]} "
            f"{indicator.unit}, capped at {top} (practice)",
            beyond_table=True,
        )
    if note.iaqi is not None:
        return Iaqi(indicator, conc, note.iaqi, note.clause)
    return None


def _interpolate(c: Decimal, bp_lo: Decimal, bp_hi: Decimal, i_lo: int, i_hi: int) -> int:
    # HJ 633-2026 §4.2.4 formula, exact in rationals; §4.2.6: rounded up (a float could put 100 at 100.000001)
    value = Fraction(i_hi - i_lo) / (Fraction(bp_hi) - Fraction(bp_lo)) * (Fraction(c) - Fraction(bp_lo)) + i_lo
    return math.ceil(value)


def aqi(
    values: Mapping[Indicator | str, Number | None],
    at: date | datetime,
    report: str,
    *,
    exempt: Iterable[Pollutant | str] = (),
    editions: Iterable[Edition] = EDITIONS,
) -> AqiResult:
    """The AQI of ``report`` (``daily``, ``hourly``, or an edition's other report) for the period starting ``at``.

    ``values`` maps indicators (or their names, e.g. ``pm25_24h``) to concentrations in the indicator's unit; a
    missing or None value is a missing indicator. Indicators outside the report are used only where a table note
    needs them (HJ 633-2012: SO2 1-h above 800 takes the 24-h IAQI). ``exempt`` names pollutants outside the
    monitoring plan that meet §5.3's exception; their absence does not block publication. A value that is negative
    after rounding, NaN or infinite raises ValueError (pass None for an invalid reading: it is then missing).
    """
    edition = edition_for(at, editions)
    if report not in edition.reports:
        raise ValueError(f"{edition.name} has no report {report!r}; it has {', '.join(edition.reports)}")
    given = _normalise(values)
    exempt_set = {Pollutant(p) for p in exempt}
    results: list[Iaqi] = []
    missing: list[Indicator] = []
    exempted: list[Indicator] = []
    notes: list[str] = []
    for ind in edition.reports[report]:
        value = given.get(ind)
        if value is None:
            (exempted if ind.pollutant in exempt_set else missing).append(ind)
            continue
        sub = _with_substitution(ind, value, given, edition, notes)
        if sub is None:
            missing.append(ind)
            continue
        results.append(sub)
        if sub.beyond_table:
            notes.append(f"{ind.value}: {sub.clause}")
    return _assemble(edition, report, results, missing, exempted, notes)


def _with_substitution(
    ind: Indicator, value: Number, given: Mapping[Indicator, Number], edition: Edition, notes: list[str]
) -> Iaqi | None:
    own = iaqi(ind, value, edition)
    if own is not None:
        return own
    note = edition.columns[ind].above_top
    if note is None or note.use is None:  # iaqi() returns None only for a substitution note
        raise AssertionError(f"{edition.name} {ind.value}: no IAQI and no substitution")
    other = given.get(note.use)
    if other is None:
        notes.append(f"{ind.value}: {note.clause}, but no {note.use.value} value was given; {ind.value} is missing")
        return None
    sub = iaqi(note.use, other, edition)
    if sub is None:
        notes.append(f"{ind.value}: {note.clause}, but {note.use.value} has no IAQI either; {ind.value} is missing")
        return None
    conc = rounded_concentration(ind, value, edition)
    return Iaqi(ind, conc, sub.value, note.clause, sub.beyond_table, substituted_by=note.use)


def _assemble(
    edition: Edition,
    report: str,
    results: list[Iaqi],
    missing: list[Indicator],
    exempted: list[Indicator],
    notes: list[str],
) -> AqiResult:
    top = max((r.value for r in results), default=None)
    # §4.3.1: primary pollutant only when AQI > 50; all indicators that share the largest IAQI
    primary = tuple(r.indicator for r in results if top is not None and top > 50 and r.value == top)
    return AqiResult(
        edition.name,
        report,
        top,
        None if top is None else level_of(top, edition),
        primary,
        tuple(results),
        tuple(missing),
        tuple(exempted),
        tuple(notes),
    )


def level_of(aqi_value: int, edition: Edition) -> Level:
    """The level of an AQI (HJ 633-2026 Table 1); 0 is level I in both editions (air.md)."""
    if aqi_value < 0:
        raise ValueError(f"AQI {aqi_value} is negative")
    for level in edition.levels:
        if level.high is None or aqi_value <= level.high:
            return level
    raise AssertionError("level VI has no upper bound")  # pragma: no cover


def hourly_aqi(
    values: Mapping[Indicator | str, Number | None],
    hour_start: datetime,
    *,
    nine_indicators_2012: bool = False,
    exempt: Iterable[Pollutant | str] = (),
) -> AqiResult:
    """The real-time (hourly) AQI of the hour starting at ``hour_start`` (aware). ``nine_indicators_2012`` uses,
    for 2012-edition data, the report's nine indicators instead of the six 1-h means (air.md: not settled)."""
    edition = edition_for(hour_start)
    report = "hourly_nine" if nine_indicators_2012 and "hourly_nine" in edition.reports else "hourly"
    return aqi(values, hour_start, report, exempt=exempt)


def daily_aqi(
    values: Mapping[Indicator | str, Number | None], day: date, *, exempt: Iterable[Pollutant | str] = ()
) -> AqiResult:
    """The daily AQI of the natural day ``day`` (Asia/Shanghai)."""
    return aqi(values, day, "daily", exempt=exempt)


def _normalise(values: Mapping[Indicator | str, Number | None]) -> dict[Indicator, Number]:
    out: dict[Indicator, Number] = {}
    for key, value in values.items():
        try:
            ind = Indicator(key)
        except ValueError:
            names = ", ".join(i.value for i in Indicator)
            raise ValueError(f"unknown AQI indicator {key!r}; expected one of {names}") from None
        if value is not None:
            out[ind] = value
    return out
