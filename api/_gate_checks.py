"""The API's side of the gate interlocks: the shared checks (``telemetry.interlocks``) on live telemetry.

The API refuses early, with a reason an operator can act on, and keeps a command that cannot run off the wire; the
edge agent checks again from a fresh read right before it moves the gate (decision record 008). Only what the edge
cannot know is the API's own: the request's shape and the age of the telemetry it checks against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from api.live import DeviceState
from device_profiles import Profile
from device_profiles.setpoints import WritablePoint
from telemetry import Quality, Value
from telemetry import interlocks as il
from telemetry.commands import Action, Interlock
from telemetry.interlocks import GateLimits


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused request as the API answers it: the interlock, its reason, the HTTP status and the field at fault."""

    interlock: Interlock
    reason: str
    status: int = 409  # 403 for role and area, 422 for a request of the wrong shape
    field: str | None = None  # the request field at fault, if one is
    code: str = dataclasses.field(
        default="", compare=False
    )  # a stable code the console translates (docs/api.md, Errors as codes); "": interlock.<name>
    params: Mapping[str, object] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def reason_code(self) -> str:
        return self.code or f"interlock.{self.interlock.value}"

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {
            "interlock": self.interlock.value,
            "reason": self.reason,
            "code": self.reason_code,
            "message": self.reason,
            "params": dict(self.params),
        }
        if self.field:
            out["field"] = self.field
        return out


# Codes of the API's own refusals (besides telemetry.interlocks.REASON_CODES): the catalogue translates each.
REASON_CODES = (
    "interlock.out_of_limits.needs_target",
    "interlock.out_of_limits.no_target",
    "interlock.unknown_device.no_limits",
    "interlock.no_data.limits",
    "interlock.no_data.no_telemetry",
    "interlock.no_data.old_telemetry",
    "interlock.no_data.offline",
    "interlock.no_data.points",
    "interlock.role",
    "interlock.area",
    "interlock.selection.none",
    "interlock.selection.unknown",
    "interlock.selection.used",
    "interlock.selection.expired",
    "interlock.busy.running",
    "interlock.signature",
    "interlock.repeated",
    "interlock.not_writable",
    "interlock.out_of_limits.write",
)


def live_values(state: DeviceState) -> dict[str, Value]:
    """The gate's newest values, a point of bad quality as unknown (None)."""
    bad = {p for p, pq in state.quality.items() if pq.q is Quality.BAD}
    return {p: None if p in bad else v for p, v in state.values.items()}


def gate_snapshot(state: DeviceState | None) -> dict[str, object]:
    """The gate's state as the API saw it (for the audit's 'before'): the interlocks' points and the time."""
    if state is None:
        return {}
    out: dict[str, object] = {p: state.values.get(p) for p in il.STATE_POINTS if p in state.values}
    if state.last_seen_ms is not None:
        out["ts"] = state.last_seen_ms
    return out


def range_top(profile: Profile | None) -> float | None:
    """The top of the profile's ``gate_opening`` range (m): the full opening of a gate that does not set one (as at
    the edge)."""
    return il.opening_range_top(profile.modbus.points if profile is not None and profile.modbus else ())


def limits_of(g: GateLimits, profile: Profile | None = None) -> il.Limits:
    """The gate's limits resolved as the edge resolves them (ValueError when its full opening is not known)."""
    return g.resolve(range_top(profile))


def percent_range(limits: il.Limits) -> tuple[float, float]:
    """The targets an operator may ask for, in percent of the full opening (the command's unit)."""
    full = limits.full_opening_m
    return round(100 * limits.min_opening_m / full, 3), round(100 * limits.max_opening_m / full, 3)


def fault_labels(profile: Profile | None) -> dict[int, str]:
    """The words of the gate's fault codes, from its profile (as the edge names them)."""
    if profile is None or profile.modbus is None:
        return {}
    return next((dict(p.states) for p in profile.modbus.points if p.name == "fault_code" and p.states), {})


def _shape(action: Action, target_pct: float | None) -> Refusal | None:
    """The request's target against its action (the rule of ``telemetry.commands.Command``), as a 422."""
    if action is Action.SET_OPENING and target_pct is None:
        return Refusal(
            Interlock.OUT_OF_LIMITS,
            "set_opening needs target_pct",
            422,
            "target_pct",
            "interlock.out_of_limits.needs_target",
        )
    if action is not Action.SET_OPENING and target_pct is not None:
        return Refusal(
            Interlock.OUT_OF_LIMITS,
            f"{action.value} takes no target_pct",
            422,
            "target_pct",
            "interlock.out_of_limits.no_target",
            {"action": action.value},
        )
    return None


def _stale(state: DeviceState | None, now_ms: int, max_age_ms: int) -> tuple[str, str, dict[str, object]] | None:
    """Why the live telemetry cannot stand for the gate's state now (reason, code, params); None when it can."""
    if state is None or not state.has_values or state.last_seen_ms is None:
        return "no telemetry of this gate has been received", "interlock.no_data.no_telemetry", {}
    if now_ms - state.last_seen_ms > max_age_ms:
        age = round((now_ms - state.last_seen_ms) / 1000)
        return f"the gate's last telemetry is {age} s old", "interlock.no_data.old_telemetry", {"age_s": age}
    if state.online is False:
        why = state.status_reason or "no reason given"
        return f"the gate is offline: {why}", "interlock.no_data.offline", {"why": why}
    return None


def check(
    action: Action,
    target_pct: float | None,
    state: DeviceState | None,
    limits: GateLimits | None,
    now_ms: int,
    max_age_ms: int,
    labels: Mapping[int, str] | None = None,
    profile: Profile | None = None,
) -> Refusal | None:
    """The first gate interlock the command fails on the live telemetry, or None. ``stop`` passes every check.
    ``limits`` None: the API has no limits for the gate (it is not in ``gates``), so it is not controllable here."""
    if action is Action.STOP:
        return None
    shape = _shape(action, target_pct)
    if shape is not None:
        return shape
    if limits is None:
        return Refusal(
            Interlock.UNKNOWN_DEVICE,
            "no limits are configured for this gate (api config gates.devices)",
            code="interlock.unknown_device.no_limits",
        )
    try:
        lim = limits_of(limits, profile)
    except ValueError as exc:
        return Refusal(Interlock.NO_DATA, f"the gate's limits are not known: {exc}", code="interlock.no_data.limits")
    why = _stale(state, now_ms, max_age_ms)
    gate = None
    if why is None:
        assert state is not None
        values = live_values(state)
        gate = il.GateState.from_values(values)
        if gate is None:
            missing = ", ".join(il.missing_points(values))
            why = f"point(s) {missing} not known", "interlock.no_data.points", {"points": missing}
    refusal = il.check(action, il.target_of(action, target_pct, lim), gate, lim, busy=False, fault_labels=labels)
    if refusal is None:
        return None
    if refusal.interlock is Interlock.NO_DATA and gate is None and why is not None:
        return Refusal(Interlock.NO_DATA, f"{refusal.reason}: {why[0]}", code=why[1], params=why[2])
    return Refusal(refusal.interlock, refusal.reason, 409, refusal.field, refusal.reason_code, refusal.params)


def check_write(
    point: str, value: float | bool, state: DeviceState | None, profile: Profile | None, now_ms: int, max_age_ms: int
) -> Refusal | None:
    """The first check a point write (set point) fails at the API, or None: the point must be writable in the
    device's profile and the value within its bounds (``device_profiles.setpoints``, the edge's check too, where the
    device's own narrower bounds apply as well); the device's telemetry must be recent."""
    params: dict[str, object] = {"point": point}
    stale = _stale(state, now_ms, max_age_ms)
    if profile is None and stale is not None:  # nothing known of the device yet: say that, not "no such point"
        return Refusal(
            Interlock.NO_DATA, f"the device's state is not known: {stale[0]}", code=stale[1], params=stale[2]
        )
    points = {p.name: p for p in profile.modbus.points} if profile is not None and profile.modbus else {}
    spec = points.get(point)
    if spec is None or not spec.writable:
        why = "has no such point" if spec is None else "does not mark it writable"
        name = profile.name if profile is not None else "unknown"
        reason = f"point {point!r} cannot be written: the device's profile ({name}) {why}"
        return Refusal(Interlock.NOT_WRITABLE, reason, 409, "point", "interlock.not_writable", params)
    refusal = WritablePoint.of(spec).refusal(value)
    if refusal is not None:
        return Refusal(Interlock.OUT_OF_LIMITS, refusal, 409, "value", "interlock.out_of_limits.write", params)
    if stale is not None:
        return Refusal(
            Interlock.NO_DATA, f"the device's state is not known: {stale[0]}", code=stale[1], params=stale[2]
        )
    return None
