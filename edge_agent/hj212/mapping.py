"""From a parsed HJ 212 packet to a Lifeline sample, by the station's profile. Pure.

Which value becomes which point (decision 012; names from ``device_profiles.schema.hj212_point_name``):

| command | suffix | point |
|---|---|---|
| 2011 real-time | ``-Rtd`` / ``-ZsRtd`` | ``<point>`` / ``<point>_zs`` |
| same | ``-Cou`` | ``<point>_total`` (profile ``total_unit``) |
| 2051 minute, 2061 hourly, 2031 daily | ``-Avg``, ``-Min``, ``-Max`` | ``<point>_{minute,hour,day}_{avg,min,max}`` |
| same | ``-ZsAvg``, ``-ZsMin``, ``-ZsMax`` | ``<point>_zs_{period}_{avg,min,max}`` |
| same | ``-Cou`` | ``<point>_{period}_total`` (profile ``total_unit``) |

The sample time is DataTime (for period data the start of the period).

DataTime is local time of the station (``utc_offset_h``, China +8). The data flag (``-Flag``) gives the quality
(table below); the profile's ``range`` marks values outside it ``uncertain``; ``scale``/``offset`` apply to every
value but totals. A code the profile does not map, a suffix that does not belong to the command, or a ``-Zs``/
``-Cou`` value of a point that does not declare them, is returned in ``unmapped`` (the server dead-letters it and
publishes the rest). ``-EFlag`` and ``-SampleTime`` are read and not used (their meaning is marked check).

Derived points (the profile's ``derived``: O2-corrected values and loads, ``device_profiles.derive``, as for a Modbus
CEMS) are added from the values of the same packet, with the station's tags (``o2_ref``): only those whose measured
concentration the packet carries (a real-time packet gets ``so2_zs`` and, with the flow, ``so2_load``; an hourly one
``so2_zs_hour_avg``), and never over a converted value the station sent itself (``-ZsRtd``, ``-ZsAvg``: kept as sent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime

from device_profiles.derive import CALIBRATION, MAINTENANCE, derive
from device_profiles.schema import (
    HJ212_PERIODS,
    Derived,
    DerivedPoint,
    Hj212Point,
    Hj212Spec,
    Profile,
    hj212_point_name,
)
from edge_agent.hj212.segment import Packet, Reading, parse_time
from telemetry.models import PointQuality, Quality, Sample, Value

DATA_COMMANDS = frozenset({"2011", *HJ212_PERIODS})

# HJ 212-2017 data flags (§6.6, table "data flag", check) and the Lifeline quality (shared standards/hj212.md,
# "Data flags", practice). Values flagged other than N must not enter averages or exceedance decisions unchanged.
# F, D and B say the value is no measurement of the process: bad (the value goes into the reason, since a bad point
# carries no value). M and C are readings of an instrument out of service: uncertain with the reason exactly
# ``maintenance`` / ``calibration`` (device_profiles.derive), value kept for the audit, as a Modbus CEMS's maintenance
# flag gives; that reason keeps them out of alarms and exceedances, and as uncertain out of means. S and T are real
# readings with a caveat.
FLAG_QUALITY: dict[str, tuple[Quality, str] | None] = {
    "N": None,  # instrument normal: good
    "F": (Quality.BAD, "instrument stopped (HJ 212 flag F)"),
    "M": (Quality.UNCERTAIN, MAINTENANCE),  # maintenance period
    "S": (Quality.UNCERTAIN, "manually entered value (HJ 212 flag S)"),
    "D": (Quality.BAD, "instrument fault (HJ 212 flag D)"),
    "C": (Quality.UNCERTAIN, CALIBRATION),  # calibration
    "T": (Quality.UNCERTAIN, "above the instrument's upper measuring limit, the value is a floor (HJ 212 flag T)"),
    "B": (Quality.BAD, "communication between instrument and data logger abnormal (HJ 212 flag B)"),
}
_STATS = {"Avg": "avg", "Min": "min", "Max": "max"}
_IGNORED = frozenset({"EFlag", "SampleTime"})


@dataclass(frozen=True, slots=True)
class Mapped:
    sample: Sample | None  # None: nothing in the packet maps to a point
    unmapped: tuple[str, ...] = field(default=())


def data_time_ms(text: str, utc_offset_h: float) -> int:
    """``YYYYMMDDhhmmss`` at the station's offset from UTC, as ms since the epoch."""
    naive = parse_time(text)
    return int((naive - _EPOCH).total_seconds() * 1000 - utc_offset_h * 3_600_000)


_EPOCH = datetime(1970, 1, 1)


def quality_of(flag: str | None) -> tuple[Quality, str] | None:
    if flag is None:
        return None
    if flag in FLAG_QUALITY:
        return FLAG_QUALITY[flag]
    return Quality.UNCERTAIN, f"unknown HJ 212 data flag {flag!r}"


class ProfileMap:
    """One profile's codes, ready for many packets."""

    def __init__(self, spec: Hj212Spec, profile: Profile | None = None) -> None:
        self.spec = spec
        self.by_code: dict[str, Hj212Point] = spec.by_code()
        self.profile = profile  # its derived points are added to every sample (``derive_for``)
        self._derived: dict[tuple[str, ...], Profile] = {}  # the profile with the derived points a packet gets
        # a packet's point names -> that profile (None: no derived point): a station sends the same names every time
        self._derived_by_names: dict[tuple[str, ...], Profile | None] = {}
        self._plans: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[Hj212Point, str, bool] | str]] = {}

    def derive_for(
        self, values: dict[str, Value], quality: dict[str, PointQuality], tags: Mapping[str, str]
    ) -> tuple[dict[str, Value], dict[str, PointQuality]]:
        """``values`` (one packet's) with the derived points whose inputs the packet carries (``_sent_by``)."""
        if self.profile is None or self.profile.derived is None:
            return values, quality
        names = tuple(values)
        try:
            profile = self._derived_by_names[names]
        except KeyError:
            profile = self._profile_deriving(values.keys())
            if len(self._derived_by_names) < 1024:  # bounded: a station sends the same names packet after packet
                self._derived_by_names[names] = profile
        if profile is None:
            return values, quality
        return derive(profile, tags, values, quality)

    def _profile_deriving(self, names: Set[str]) -> Profile | None:
        """The profile with only the derived points whose inputs ``names`` include (``_sent_by``); None: none."""
        assert self.profile is not None
        assert self.profile.derived is not None
        wanted = tuple(d.name for d in self.profile.derived.points if set(_sent_by(d)) <= names)
        if not wanted:
            return None
        profile = self._derived.get(wanted)
        if profile is None:
            points = [d for d in self.profile.derived.points if d.name in wanted]
            profile = self.profile.model_copy(update={"derived": Derived(points=points)})
            if len(self._derived) < 1024:  # bounded: subsets of one profile's points
                self._derived[wanted] = profile
        return profile

    def to_sample(self, packet: Packet, utc_offset_h: float, tags: Mapping[str, str] | None = None) -> Mapped:
        """The sample of a data packet (CN 2011, 2051, 2061, 2031) whose DataTime is given; with the profile's
        derived points when the map has the profile (``tags``: the station's, its ``o2_ref``)."""
        ts, values, quality, unmapped = self.to_values(packet, utc_offset_h, tags)
        if not values:
            return Mapped(None, unmapped)
        return Mapped(Sample(ts=ts, values=values, quality=quality), unmapped)

    def to_values(
        self, packet: Packet, utc_offset_h: float, tags: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Value], dict[str, PointQuality], tuple[str, ...]]:
        """``to_sample``'s parts without the model (the ingest's hot path encodes them directly): the sample time,
        values, qualities (values empty: nothing maps) and what was not mapped."""
        assert packet.cn in DATA_COMMANDS
        assert packet.data_time is not None
        period = HJ212_PERIODS.get(packet.cn)
        values: dict[str, Value] = {}
        quality: dict[str, PointQuality] = {}
        unmapped: list[str] = []
        for reading, target in zip(packet.readings, self._targets(packet, period), strict=True):
            if isinstance(target, str):
                unmapped.append(f"{reading.code}-{reading.suffix}: {target}")
                continue
            point, name, total = target
            if name in values:
                unmapped.append(f"{reading.code}-{reading.suffix}: point {name!r} already given in this packet")
                continue
            if not total and (reading.flag is None or reading.flag == "N"):  # the usual value: _value inlined
                number = float(reading.value) * point.scale + point.offset
                bounds = point.range
                if math.isfinite(number) and (bounds is None or bounds[0] <= number <= bounds[1]):
                    values[name] = number
                    continue
            values[name], q = _value(point, reading, total)
            if q is not None:
                quality[name] = q
        for key, text in packet.others:
            code, _, suffix = key.partition("-")
            if suffix in _IGNORED:
                continue
            flagged_point = self.by_code.get(code)
            why = quality_of(text) if suffix == "Flag" else None
            if flagged_point is None or why is None:  # a flag N without a value says nothing usable
                unmapped.append(f"{key}={text[:20]}: not mapped")
                continue
            name = hj212_point_name(flagged_point.name, period=period, stat="avg" if period else None)
            if name not in values:
                values[name] = None  # a flag without a value: the instrument says why there is none
                quality[name] = PointQuality(q=why[0], reason=f"{why[1]}; no value sent")
        if not values:
            return 0, values, quality, tuple(unmapped)
        values, quality = self.derive_for(values, quality, tags or {})
        return data_time_ms(packet.data_time, utc_offset_h), values, quality, tuple(unmapped)

    def _targets(self, packet: Packet, period: str | None) -> list[tuple[Hj212Point, str, bool] | str]:
        """``_target`` of each reading, worked out once per command and sequence of code and suffix (a station
        sends the same ones packet after packet)."""
        key = (packet.cn, tuple([(r.code, r.suffix) for r in packet.readings]))
        targets = self._plans.get(key)
        if targets is None:
            targets = [self._target(r, period) for r in packet.readings]
            if len(self._plans) < 1024:  # bounded: the kinds of packet of the profile's stations
                self._plans[key] = targets
        return targets

    def _target(self, reading: Reading, period: str | None) -> tuple[Hj212Point, str, bool] | str:
        """(point, point name, is a total) or why the value has no point."""
        point = self.by_code.get(reading.code)
        if point is None:
            return "code not in the profile"
        suffix = reading.suffix
        zs = suffix.startswith("Zs")
        base = suffix[2:] if zs else suffix
        if zs and not point.zs:
            return f"point {point.name!r} does not declare converted (-Zs) values"
        if period is None:
            if base == "Cou" and not zs:
                if point.total_unit is None:
                    return f"point {point.name!r} does not declare a total (total_unit)"
                return point, hj212_point_name(point.name, stat="total"), True
            if base != "Rtd":
                return "not a real-time value (CN 2011 carries -Rtd, -ZsRtd and -Cou)"
            return point, hj212_point_name(point.name, zs=zs), False
        if base == "Cou" and not zs:
            if point.total_unit is None:
                return f"point {point.name!r} does not declare a total (total_unit)"
            return point, hj212_point_name(point.name, period=period, stat="total"), True
        if base not in _STATS:
            return f"not a {period} statistic (-Avg, -Min, -Max, -Cou and their -Zs forms)"
        return point, hj212_point_name(point.name, zs=zs, period=period, stat=_STATS[base]), False


def _sent_by(d: DerivedPoint) -> tuple[str, ...]:
    """What a packet must carry for the derived point: its concentration, and for a load the flow (a packet without
    O2 gets the O2-corrected value as bad, with the reason: the permit compares the corrected value)."""
    if d.load is not None:
        return d.load.of, d.load.flow
    assert d.o2_corrected is not None
    return (d.o2_corrected.of,)


def _value(point: Hj212Point, reading: Reading, total: bool) -> tuple[Value, PointQuality | None]:
    number = float(reading.value)  # the parser let only decimal numbers through; float() rounds them as Decimal does
    if not total:
        number = number * point.scale + point.offset
    if not math.isfinite(number):
        return None, PointQuality(q=Quality.BAD, reason=f"value {reading.value[:30]} is beyond a float's range")
    flagged = quality_of(reading.flag)
    if flagged is not None and flagged[0] is Quality.BAD:
        return None, PointQuality(q=Quality.BAD, reason=f"{flagged[1]}; value sent {reading.value[:30]}")
    if flagged is not None:
        return number, PointQuality(q=flagged[0], reason=flagged[1])
    if not total and point.range is not None and not point.range[0] <= number <= point.range[1]:
        low, high = point.range
        return number, PointQuality(q=Quality.UNCERTAIN, reason=f"outside the range [{low:g}, {high:g}]")
    return number, None
