"""Derived points: values a profile computes from a sample's own measured values, and maintenance flags. Pure.

One function, ``derive``, for every producer of samples: the Modbus edge calls it on each poll, and the MQTT edge on
each message. Raw values are never changed; derived points are added beside them (shared standards/emissions.md:
"Keep the raw and the corrected value").

Values taken while the plant's instrument is out of service are kept, uncertain, with the reason ``maintenance``
(the Modbus CEMS maintenance flag, HJ 212 data flag M) or ``calibration`` (HJ 212 data flag C, mapped in
``edge_agent.hj212.mapping``): the same plant state gives the same answer on either protocol, the calibration
readings stay for the audit, and both reasons keep the value out of alarms and exceedances (``rules._conditions``)
and, as every uncertain value, out of means (``rules._means``; shared standards/hj212.md "Data flags").

Quality follows the inputs: a derived point of a bad or missing input is bad with the reason; of an uncertain input
it is uncertain (reason ``maintenance`` or ``calibration`` when that is why, so it stays out of alarms and means).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from device_profiles.expression import ExpressionError, parse_expression
from device_profiles.schema import DerivedPoint, MaintenanceFlag, MassLoad, O2Correction, Profile
from telemetry.models import PointQuality, Quality, Value

MAINTENANCE = "maintenance"  # the reason of a value taken during maintenance (or flagged so by a Modbus CEMS)
CALIBRATION = "calibration"  # the reason of a value taken during a calibration (HJ 212 data flag C)
OUT_OF_SERVICE = frozenset({MAINTENANCE, CALIBRATION})  # reasons that keep an uncertain value out of alarms and means
STANDARD_K = 273.15  # standard state: 273.15 K, 101.325 kPa, dry gas (emissions.md, GB 13223-2011 definition)
STANDARD_KPA = 101.325
_REASON_MAX = 300  # telemetry.models.PointQuality.reason
_IN_MAINTENANCE = PointQuality(q=Quality.UNCERTAIN, reason=MAINTENANCE)  # frozen: one instance for every mark

Values = dict[str, Value]
Qualities = dict[str, PointQuality]


class NotDerived(ValueError):
    """A derived point cannot be computed; the message is its reason."""


def reference_o2(tags: Mapping[str, str], spec: O2Correction) -> float:
    """The source's reference O2 (%) from the device tag ``spec.reference_tag``; ValueError naming what is wrong."""
    raw = tags.get(spec.reference_tag)
    if raw is None:
        raise ValueError(f"device has no tag {spec.reference_tag!r} (the source's reference O2, %)")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"tag {spec.reference_tag!r} = {raw!r} is not a number (reference O2, %)") from None
    if not 0 <= value < 21 or not math.isfinite(value):
        raise ValueError(f"tag {spec.reference_tag!r} = {raw!r}: a reference O2 lies in [0, 21) %")
    return value


def settings_problems(profile: Profile, tags: Mapping[str, str]) -> list[str]:
    """What is wrong with a device's settings for its profile (checked when a site file loads): its declared
    ``device_tags`` and the tags of its derived points.

    A missing reference tag is not an error here (the derived point is then bad, with the reason, on every
    sample); a tag that is given but unusable is.
    """
    out: list[str] = []
    for key, declared in profile.device_tags.items():
        value = tags.get(key)
        if value is None and declared.required:
            out.append(f"tag {key!r} is required by profile {profile.name!r} ({declared.description or 'no default'})")
        elif value is not None and declared.values is not None and value not in declared.values:
            out.append(f"{key}={value!r} is not one of {', '.join(declared.values)} (profile {profile.name!r})")
    for d in profile.derived.points if profile.derived else []:
        spec = d.o2_corrected
        if spec is None or spec.reference_tag not in tags:
            continue
        try:
            reference_o2(tags, spec)
        except ValueError as exc:
            out.append(f"derived point {d.name!r}: {exc}")
    return list(dict.fromkeys(out))


def derive(
    profile: Profile, tags: Mapping[str, str], values: Mapping[str, Value], quality: Mapping[str, PointQuality]
) -> tuple[Values, Qualities]:
    """The sample's values and qualities with the maintenance marks applied and every derived point added."""
    out_v: Values = dict(values)
    out_q: Qualities = dict(quality)
    if profile.derived is None:
        return out_v, out_q
    if profile.derived.maintenance is not None:
        _mark_maintenance(profile.derived.maintenance, out_v, out_q)
    # whether any value is uncertain: when none is (the common case), no derived point has an uncertain input
    uncertain = any(pq.q is Quality.UNCERTAIN for pq in out_q.values())
    for d in profile.derived.points:
        if d.name in values:  # sent by the device itself (an HJ 212 station's -ZsRtd / -ZsAvg): kept as sent
            continue
        try:
            value = _compute(d, tags, out_v, out_q)
        except NotDerived as exc:
            out_v[d.name], out_q[d.name] = None, _bad(str(exc)[:_REASON_MAX])
            continue
        out_v[d.name] = value if d.decimals is None else round(value, d.decimals)
        why = _uncertain_inputs(d, out_q) if uncertain else None
        if why is None:
            out_q.pop(d.name, None)
        else:
            uncertain = True
            out_q[d.name] = _IN_MAINTENANCE if why == MAINTENANCE else PointQuality(q=Quality.UNCERTAIN, reason=why)
    return out_v, out_q


_BAD: dict[str, PointQuality] = {}  # by reason: a device's derived point is bad for the same reason sample after sample


def _bad(reason: str) -> PointQuality:
    """The bad quality with this reason (frozen: one instance per reason, at most 1,000 kept)."""
    pq = _BAD.get(reason)
    if pq is None:
        pq = PointQuality(q=Quality.BAD, reason=reason)
        if len(_BAD) < 1000:
            _BAD[reason] = pq
    return pq


def is_maintenance(pq: PointQuality | None) -> bool:
    """True for a value taken during calibration or maintenance (kept, but out of alarms and means)."""
    return pq is not None and pq.q is Quality.UNCERTAIN and pq.reason in OUT_OF_SERVICE


def _mark_maintenance(flag: MaintenanceFlag, values: Values, quality: Qualities) -> None:
    # Only a flag read as true marks anything: a flag that is bad (unknown) leaves the values as they are.
    if values.get(flag.point) is not True or _is_bad(quality.get(flag.point)):
        return
    for name in flag.marks:
        if name in values and not _is_bad(quality.get(name)):
            quality[name] = _IN_MAINTENANCE


def _is_bad(pq: PointQuality | None) -> bool:
    return pq is not None and pq.q is Quality.BAD


def _uncertain_inputs(d: DerivedPoint, quality: Qualities) -> str | None:
    reasons = [(n, pq.reason) for n in d.inputs if (pq := quality.get(n)) is not None and pq.q is Quality.UNCERTAIN]
    if not reasons:
        return None
    for held in (MAINTENANCE, CALIBRATION):
        if any(r == held for _, r in reasons):
            return held
    name, reason = reasons[0]
    return f"{name} uncertain: {reason}"[:_REASON_MAX]


def _number(name: str, values: Values, quality: Qualities) -> float:
    value = values.get(name)
    kind = type(value)
    if kind is float or kind is int:  # the common case, first: a number whose quality is not bad
        pq = quality.get(name)
        if pq is None or pq.q is not Quality.BAD:
            return float(value)  # type: ignore[arg-type]
    if _is_bad(quality.get(name)):
        raise NotDerived(f"{name} is bad: {quality[name].reason}")
    if value is None:
        raise NotDerived(f"no {name} in the sample")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotDerived(f"{name} = {value!r} is not a number")
    return float(value)


def _compute(d: DerivedPoint, tags: Mapping[str, str], values: Values, quality: Qualities) -> float:
    if d.expr is not None:  # a value composed of several registers (a totaliser's whole and fraction)
        inputs = {name: _number(name, values, quality) for name in d.inputs}
        try:
            value = parse_expression(d.expr).evaluate(inputs)
        except ExpressionError as exc:
            raise NotDerived(f"{d.expr}: {exc}") from None
        return value
    if d.o2_corrected is not None:
        return o2_corrected(
            _number(d.o2_corrected.of, values, quality),
            _number(d.o2_corrected.o2, values, quality),
            _reference(tags, d.o2_corrected),
            d.o2_corrected.max_o2,
        )
    assert d.load is not None
    return mass_load(d.load, values, quality)


def _reference(tags: Mapping[str, str], spec: O2Correction) -> float:
    try:
        return reference_o2(tags, spec)
    except ValueError as exc:
        raise NotDerived(str(exc)) from None


def o2_corrected(c: float, o2: float, o2_ref: float, max_o2: float = 20.0) -> float:
    """``C × (21 − O2_ref) / (21 − O2)`` (emissions.md "Reference oxygen and correction"); ``NotDerived`` when O2 is
    at or above ``max_o2`` (unit off or probe in air: the factor explodes; emissions.md implementation notes,
    practice; HJ 75-2017 treatment check) or below 0."""
    if o2 < 0:
        raise NotDerived(f"O2 {o2:g} % is below 0: not corrected")
    if o2 >= max_o2:
        raise NotDerived(f"O2 {o2:g} % >= {max_o2:g} %: unit off or probe in air, not corrected")
    return round(c * (21.0 - o2_ref) / (21.0 - o2), 4)


def standard_dry_flow_m3_h(
    flow_m3_s: float,
    temp_c: float | None,
    gauge_kpa: float | None,
    humidity_pct: float | None,
    ambient_kpa: float = STANDARD_KPA,
) -> float:
    """Actual wet flow (m³/s) to the standard state, dry gas (m³/h):
    ``Q_sn = Q_s × 3600 × 273.15 / (273.15 + t) × (B_a + P_s) / 101.325 × (1 − X_sw)``
    (GB/T 16157-1996 §7 flue-gas flow, check; standard state from emissions.md). Absent inputs: no correction."""
    if flow_m3_s < 0:
        raise NotDerived(f"flow {flow_m3_s:g} m³/s is negative")
    q = flow_m3_s * 3600.0
    if temp_c is not None:
        kelvin = STANDARD_K + temp_c
        if kelvin <= 0:
            raise NotDerived(f"flue-gas temperature {temp_c:g} °C is below absolute zero")
        q *= STANDARD_K / kelvin
    if gauge_kpa is not None:
        absolute = ambient_kpa + gauge_kpa
        if absolute <= 0:
            raise NotDerived(f"flue-gas pressure {gauge_kpa:g} kPa gives no positive absolute pressure")
        q *= absolute / STANDARD_KPA
    if humidity_pct is not None:
        if not 0 <= humidity_pct < 100:
            raise NotDerived(f"flue-gas humidity {humidity_pct:g} % is outside [0, 100)")
        q *= 1.0 - humidity_pct / 100.0
    return q


def mass_load(spec: MassLoad, values: Values, quality: Qualities) -> float:
    """kg/h = mg/m³ × m³/h × 1e-6, on the measured concentration and the standard-dry flow."""

    def opt(name: str | None) -> float | None:
        return None if name is None else _number(name, values, quality)

    c = _number(spec.of, values, quality)
    q = standard_dry_flow_m3_h(
        _number(spec.flow, values, quality),
        opt(spec.temperature),
        opt(spec.pressure),
        opt(spec.humidity),
        spec.ambient_kpa,
    )
    return round(c * q * 1e-6, 4)
