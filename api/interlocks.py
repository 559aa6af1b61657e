"""The API's gate interlocks: pure checks of a requested movement against the gate's latest telemetry.

The edge agent checks again just before it moves the gate; the API's checks refuse early, with a reason an
operator can act on, and keep a command that cannot run off the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.config import GateLimits
from api.live import DeviceState
from telemetry import Quality
from telemetry.commands import Action, Interlock

# Points of the sluice_gate_plc profile the checks read.
STATE_POINTS = ("gate_opening", "level_up", "level_down", "remote_mode", "fault_code", "estop", "overload")


@dataclass(frozen=True, slots=True)
class Refusal:
    interlock: Interlock
    reason: str
    status: int = 409  # 403 for role and area
    field: str | None = None  # the request field at fault, if one is

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"interlock": self.interlock.value, "reason": self.reason}
        if self.field:
            out["field"] = self.field
        return out


def gate_snapshot(state: DeviceState | None) -> dict[str, object]:
    """The gate's state as the API saw it (for the audit's 'before')."""
    if state is None:
        return {}
    out: dict[str, object] = {p: state.values.get(p) for p in STATE_POINTS if p in state.values}
    if state.last_seen_ms is not None:
        out["ts"] = state.last_seen_ms
    return out


def _number(state: DeviceState, point: str) -> float | None:
    value = state.values.get(point)
    pq = state.quality.get(point)
    if pq is not None and pq.q is Quality.BAD:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _flag(state: DeviceState, point: str) -> bool | None:
    value = state.values.get(point)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return None


def movement(action: Action, target_pct: float | None, opening_m: float, limits: GateLimits) -> str | None:
    """'open', 'close' or None (no movement) for the action from the current opening."""
    if action is Action.OPEN:
        return "open"
    if action is Action.CLOSE:
        return "close"
    if action is Action.SET_OPENING and target_pct is not None:
        target_m = target_pct / 100 * limits.full_opening_m
        if abs(target_m - opening_m) < 1e-9:
            return None
        return "open" if target_m > opening_m else "close"
    return None


def check(
    action: Action,
    target_pct: float | None,
    state: DeviceState | None,
    limits: GateLimits,
    now_ms: int,
    max_age_ms: int,
) -> Refusal | None:
    """The first gate interlock the command fails, or None. ``stop`` passes every check (the contract)."""
    if action is Action.STOP:
        return None
    if action is Action.SET_OPENING:
        if target_pct is None:
            return Refusal(Interlock.OUT_OF_LIMITS, "set_opening needs target_pct", 422, "target_pct")
        if not limits.min_pct <= target_pct <= limits.max_pct:
            return Refusal(Interlock.OUT_OF_LIMITS, f"target {target_pct} % is outside this gate's limits "
                           f"[{limits.min_pct}, {limits.max_pct}] %", 409, "target_pct")  # fmt: skip
    elif target_pct is not None:
        return Refusal(Interlock.OUT_OF_LIMITS, f"{action.value} takes no target_pct", 422, "target_pct")
    if state is None or not state.has_values or state.last_seen_ms is None:
        return Refusal(Interlock.NO_DATA, "no telemetry of this gate has been received")
    if now_ms - state.last_seen_ms > max_age_ms:
        age = (now_ms - state.last_seen_ms) / 1000
        return Refusal(Interlock.NO_DATA, f"the gate's last telemetry is {age:.0f} s old")
    if state.online is False:
        return Refusal(Interlock.NO_DATA, f"the gate is offline: {state.status_reason or 'no reason given'}")
    remote = _flag(state, "remote_mode")
    opening = _number(state, "gate_opening")
    if remote is None or opening is None:
        return Refusal(Interlock.NO_DATA, "remote_mode or gate_opening is not known")
    if not remote:
        return Refusal(Interlock.LOCAL_MODE, "the gate's selector is in local")
    fault = _number(state, "fault_code")
    if fault:
        return Refusal(Interlock.GATE_FAULT, f"fault code {fault:g} is set")
    if _flag(state, "estop"):
        return Refusal(Interlock.GATE_FAULT, "emergency stop is pressed")
    if _flag(state, "overload"):
        return Refusal(Interlock.GATE_FAULT, "motor overload trip")
    return _head(action, target_pct, state, opening, limits)


def _head(
    action: Action, target_pct: float | None, state: DeviceState, opening_m: float, limits: GateLimits
) -> Refusal | None:
    move = movement(action, target_pct, opening_m, limits)
    limit = limits.max_head_open_m if move == "open" else limits.max_head_close_m if move == "close" else None
    if limit is None:
        return None
    up, down = _number(state, "level_up"), _number(state, "level_down")
    if up is None or down is None:
        return Refusal(Interlock.NO_DATA, "level_up or level_down is not known")
    head = abs(up - down)
    if head > limit:
        return Refusal(Interlock.LEVEL_DIFFERENCE,
                       f"level difference {head:.2f} m is above the safe limit {limit:g} m for {move}ing")  # fmt: skip
    return None
