"""Pure per-sample tests of each condition kind: what severity the condition asks for right now.

A test answers True / False, or None when there is no usable value (missing or bad): then the rule neither
raises nor clears.
"""

from __future__ import annotations

from device_profiles.derive import OUT_OF_SERVICE
from rules.schema import FLOOD_SIDES, SEVERITY_RANK, Compare, Level, Levels, Rule, Scalar, State, Threshold, TideGate
from telemetry.models import DeviceStatus, Quality, Value
from telemetry.wire import SampleLike, TelemetryLike


def matches(rule: Rule, msg: TelemetryLike) -> bool:
    sel = rule.select
    return (
        (sel.profile is None or msg.profile in sel.profile)
        and (sel.site is None or msg.site in sel.site)
        and (sel.device is None or msg.device in sel.device)
        and all(msg.tags.get(k) == v for k, v in sel.tags.items())
    )


def matches_status(rule: Rule, st: DeviceStatus) -> bool:
    """A status carries no tags: a rule that selects by tags does not see status changes."""
    sel = rule.select
    return (
        not sel.tags
        and (sel.profile is None or st.profile in sel.profile)
        and (sel.site is None or st.site in sel.site)
        and (sel.device is None or st.device in sel.device)
    )


def number(value: Value) -> float | None:
    """A numeric value (booleans are states, not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def good_value(sample: SampleLike, point: str) -> Value:
    """The point's value when present and not bad; None otherwise. Uncertain values are used (a gas reading above
    its range is still an alarm), except those taken during calibration or maintenance: values flagged other than
    N stay out of exceedance decisions (shared standards/hj212.md "Data flags"; the edge marks them ``maintenance`` or
    ``calibration``)."""
    if not sample.quality:  # every value good (most samples): no look-up of qualities
        return sample.values.get(point)
    if point not in sample.values or sample.quality_of(point) is Quality.BAD:
        return None
    pq = sample.quality.get(point)  # device_profiles.derive.is_maintenance, for either decoding of the message
    if pq is not None and pq.q is Quality.UNCERTAIN and pq.reason in OUT_OF_SERVICE:
        return None
    return sample.values[point]


def equal(a: Value, b: Scalar) -> bool:
    # True == 1 in Python; for alarms a bit and a number are different things.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def threshold_target(th: Threshold, value: float, active: str | None) -> str | None:
    """Highest level crossed; a level already held stays until the value is back past level ∓ deadband."""
    return levels_target(th.levels, th.direction, th.strict, th.deadband, value, active)


def levels_target(
    levels: list[Level], direction: str, strict: bool, deadband: float, value: float, active: str | None
) -> str | None:
    held = SEVERITY_RANK[active] if active else 0
    target = None
    for level in levels:
        keep = SEVERITY_RANK[level.severity] <= held
        lv, db = level.value, deadband
        if direction == "high":
            on = (value > lv if strict else value >= lv) or (keep and value > lv - db)
        else:
            on = (value < lv if strict else value <= lv) or (keep and value < lv + db)
        if on:
            target = level.severity
    return target


def _high(lv: Levels, value: float, active: str | None) -> str | None:
    return levels_target(lv.levels, "high", lv.strict, lv.deadband, value, active)


def tide_gate_target(
    tg: TideGate, flood_side: str, upstream: float, downstream: float, opening: float, active: str | None
) -> tuple[str | None, str]:
    """(severity or None, what the gate's situation is) by head direction and the flood side (``TideGate``'s
    table; shared standards/sluice.md "Alarms on a tidal river gate"). ``flood_side``: upstream or downstream."""
    if flood_side not in FLOOD_SIDES:
        raise ValueError(f"flood side {flood_side!r} is not one of {', '.join(FLOOD_SIDES)}")
    outer, inner = (upstream, downstream) if flood_side == "upstream" else (downstream, upstream)
    closed = opening <= tg.closed_at_most
    levels = f"outer {outer:g} m, inner {inner:g} m, gate {'closed' if closed else f'open {opening:g} m'}"
    found: list[tuple[str, str]] = []
    high = _high(tg.inner, inner, active)
    if high is not None and outer >= inner:
        found.append((high, "inner level high and cannot drain by gravity (outer higher): pumps or dispatch"))
    elif high is not None and closed:
        found.append((high, "inner level high with the gate closed although it could drain (outer lower): open"))
    if not closed and outer > inner:
        inflow = _high(tg.inflow_head, outer - inner, active)
        if inflow is not None:
            found.append((inflow, f"tide flowing inland through the open gate, head {outer - inner:.2f} m"))
    if not found:
        if closed and outer > inner:
            return None, f"flood defence: gate closed against the higher outer level; {levels}"
        return None, levels
    severity, why = max(found, key=lambda f: SEVERITY_RANK[f[0]])
    return severity, f"{why}; {levels}"


def state_matches(st: State, value: Value) -> bool | None:
    if value is None:
        return None
    if st.equals is not None:
        hit = equal(value, st.equals)
    elif st.in_ is not None:
        hit = any(equal(value, v) for v in st.in_)
    else:
        x = number(value)
        if x is None or st.range is None:
            return None
        hit = st.range[0] <= x <= st.range[1]
    return hit if st.when == "match" else not hit


def compare(c: Compare, value: Value) -> bool | None:
    if value is None:
        return None
    if c.op in ("eq", "ne"):
        same = equal(value, c.value)
        return same if c.op == "eq" else not same
    x, y = number(value), number(c.value)
    if x is None or y is None:
        return None
    return {"gt": x > y, "ge": x >= y, "lt": x < y, "le": x <= y}[c.op]


def composite(terms: list[Compare], combine_all: bool, sample: SampleLike) -> bool | None:
    """All/any over points of one device's sample; unknown if a needed point is missing or bad."""
    results = [compare(c, good_value(sample, c.point)) for c in terms]
    if combine_all:
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


def is_bad(sample: SampleLike, point: str, include_uncertain: bool) -> bool | None:
    if point not in sample.values:
        return None
    q = sample.quality_of(point)
    return q is Quality.BAD or (include_uncertain and q is Quality.UNCERTAIN)
