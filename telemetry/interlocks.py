"""Remote-control interlocks of a sluice gate: one pure module, checked twice (decision record 008).

The API checks a command against the gate's live telemetry so that an operator hears the reason at once; the edge
agent checks it again against a fresh Modbus read right before writing, because telemetry can be a second old and
the edge is the last line. Both call :func:`check` here, with the same points, order and wording, so a refusal
reads the same whichever side gives it. No I/O: the callers read the gate and pass its values in.

The checks follow shared standards/sluice.md "Remote-control interlocks (practice)": selector in remote and no
emergency stop (local operators have priority); no fault, overload or power loss (do not drive a faulty hoist);
one command at a time and no reversal under load; target within the gate's travel and not already on the limit
switch in that direction; level difference within the site's allowed head for the movement. Freshness is the
caller's part: the edge reads the gate just before calling :func:`check`, the API refuses telemetry that is old.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from telemetry.commands import Action, Interlock
from telemetry.models import Value

__all__ = [
    "NO_STATE",
    "REASON_CODES",
    "STATE_POINTS",
    "WRITE_POINTS",
    "GateLimits",
    "GateState",
    "Limits",
    "Refusal",
    "check",
    "direction",
    "fault_of",
    "missing_points",
    "opening_range_top",
    "target_of",
]

# Points of the sluice_gate_plc profile the interlocks read (STATE_POINTS) and the edge writes (WRITE_POINTS).
NUMBER_POINTS = ("gate_opening", "level_up", "level_down", "fault_code")
FLAG_POINTS = (
    "remote_mode",
    "moving_open",
    "moving_close",
    "estop",
    "power_ok",
    "limit_open",
    "limit_closed",
    "overload",
)
STATE_POINTS = (*NUMBER_POINTS, *FLAG_POINTS)
WRITE_POINTS = ("target_opening", "cmd_open", "cmd_close", "cmd_stop")
LEVEL_POINTS = ("level_up", "level_down")  # may be unknown: only a movement under a head limit needs them

NO_STATE = "the gate's state could not be read"
_ORDER = "need min_opening_m < max_opening_m <= full_opening_m, got {min:g}, {max:g}, {full:g}"
_EPS = 1e-9  # 2.02 - 2.0 is a hair above 0.02 in binary


def _number(values: Mapping[str, Value], name: str) -> float | None:
    v = values.get(name)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _flag(values: Mapping[str, Value], name: str) -> bool | None:
    v = values.get(name)
    return v if isinstance(v, bool) else None  # the profile declares these as bits: a number is not a flag


def missing_points(values: Mapping[str, Value]) -> list[str]:
    """The state points the interlocks need that ``values`` lacks (absent, None, or not of the point's type)."""
    numbers = [n for n in NUMBER_POINTS if n not in LEVEL_POINTS and _number(values, n) is None]
    return numbers + [n for n in FLAG_POINTS if _flag(values, n) is None]


@dataclass(frozen=True, slots=True)
class GateState:
    """The gate at one moment (a fresh read at the edge, live telemetry at the API). Levels may be unknown."""

    opening_m: float
    level_up_m: float | None
    level_down_m: float | None
    remote: bool
    fault_code: int
    estop: bool
    overload: bool
    power_ok: bool
    moving_open: bool
    moving_close: bool
    limit_open: bool
    limit_closed: bool

    @classmethod
    def from_values(cls, values: Mapping[str, Value]) -> GateState | None:
        """The state from point values; None when a point the interlocks need is missing (:func:`missing_points`)."""
        if missing_points(values):
            return None
        opening, fault = _number(values, "gate_opening"), _number(values, "fault_code")
        assert opening is not None
        assert fault is not None
        return cls(
            opening_m=opening,
            level_up_m=_number(values, "level_up"),
            level_down_m=_number(values, "level_down"),
            remote=values["remote_mode"] is True,
            fault_code=int(fault),
            estop=values["estop"] is True,
            overload=values["overload"] is True,
            power_ok=values["power_ok"] is True,
            moving_open=values["moving_open"] is True,
            moving_close=values["moving_close"] is True,
            limit_open=values["limit_open"] is True,
            limit_closed=values["limit_closed"] is True,
        )

    @property
    def moving(self) -> bool:
        return self.moving_open or self.moving_close

    @property
    def head_m(self) -> float | None:
        """|level_up - level_down|, or None when a level is unknown."""
        if self.level_up_m is None or self.level_down_m is None:
            return None
        return abs(self.level_up_m - self.level_down_m)

    def as_values(self) -> dict[str, Value]:
        """For ``before``/``after`` of a result (unknown levels are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class _Ranged(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def range(self) -> tuple[float, float] | None: ...


def opening_range_top(points: Iterable[_Ranged]) -> float | None:
    """The top of the ``gate_opening`` point's range among a profile's points (m): the full opening of a gate whose
    limits do not give one, at the edge and at the API alike."""
    point = next((p for p in points if p.name == "gate_opening"), None)
    return point.range[1] if point is not None and point.range is not None else None


class GateLimits(BaseModel):
    """A gate's limits as configured: the one model the edge (``control:`` of a gate) and the API (``gates:``) use,
    with the same defaults.

    Everything is in metres, because the standards measure the gate that way: the gate opening is a height in m
    (shared standards/sluice.md: ``gate_opening`` 闸门开度 m; SL 651-2014 element ``09`` G "gate opening height
    (m)"; SL 323 ``GTOPHGT``), and the head is the difference of two water levels in m of the station datum. A
    command's ``target_pct`` (percent of ``full_opening_m``, the wire contract) is turned into metres before any check
    (:func:`target_of`). The allowed head has no default: it is a site value set by the flood-control dispatch rules
    (sluice.md, "level difference within the gate's allowed head for opening (site value)"), so it must be written,
    as a number or as null for deliberately none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    full_opening_m: float | None = Field(
        default=None, gt=0, le=50, description="opening of 100 %; default: the top of the profile's gate_opening range"
    )
    min_opening_m: float = Field(default=0.0, ge=0, description="lowest target a command may drive to (close)")
    max_opening_m: float | None = Field(default=None, gt=0, description="highest target (open); default: full")
    tolerance_m: float = Field(default=0.02, gt=0, le=1, description="|opening - target| that counts as reached")
    max_head_open_m: float | None = Field(
        ge=0,
        description="largest |level_up - level_down| at which an opening movement may start (a site value, "
        "required); null: no limit",
    )
    max_head_close_m: float | None = Field(default=None, ge=0, description="the same for closing; default: no limit")

    @model_validator(mode="after")
    def _ordered(self) -> GateLimits:
        """What can be checked without the profile: min < max <= full (``resolve`` checks the rest)."""
        full = self.full_opening_m
        high = self.max_opening_m if self.max_opening_m is not None else full
        if high is not None and not self.min_opening_m < high <= (full if full is not None else high):
            why = _ORDER.format(min=self.min_opening_m, max=high, full=full if full is not None else high)
            raise PydanticCustomError("value_error", why, {"at": ("min_opening_m",)})
        return self

    def full_opening(self, range_top_m: float | None) -> float:
        """The full opening: configured, or ``range_top_m`` (the top of the profile's ``gate_opening`` range)."""
        if self.full_opening_m is not None:
            return self.full_opening_m
        if range_top_m is None:
            raise ValueError("the gate's profile gives no gate_opening range: set full_opening_m")
        return range_top_m

    def resolve(self, range_top_m: float | None) -> Limits:
        """The limits the checks use, every default filled in; ValueError when the full opening is not known or the
        range is empty."""
        full = self.full_opening(range_top_m)
        high = self.max_opening_m if self.max_opening_m is not None else full
        if not self.min_opening_m < high <= full:
            raise ValueError(_ORDER.format(min=self.min_opening_m, max=high, full=full))
        return Limits(full, self.min_opening_m, high, self.tolerance_m, self.max_head_open_m, self.max_head_close_m)


@dataclass(frozen=True, slots=True)
class Limits:
    """A gate's limits resolved (:meth:`GateLimits.resolve`): what :func:`check` compares with, in metres."""

    full_opening_m: float
    min_opening_m: float
    max_opening_m: float
    tolerance_m: float
    max_head_open_m: float | None  # None: no limit for opening movements
    max_head_close_m: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    interlock: Interlock
    reason: str
    field: str | None = None  # the Command field at fault, if one is (the target)
    # the stable code of ``reason`` (interlock.<name>[.<case>]) a console translates ("": interlock.<name>) and the
    # values the reason names; neither takes part in equality (the reason says the same)
    code: str = dataclasses.field(default="", compare=False)
    params: Mapping[str, object] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def reason_code(self) -> str:
        return self.code or f"interlock.{self.interlock.value}"


def target_of(action: Action, target_pct: float | None, limits: Limits) -> float | None:
    """The opening a command drives to (m); None for stop. Open and close go to the configured limits."""
    if action is Action.OPEN:
        return limits.max_opening_m
    if action is Action.CLOSE:
        return limits.min_opening_m
    if action is Action.SET_OPENING:
        assert target_pct is not None  # Command's validator guarantees it
        return round(limits.full_opening_m * target_pct / 100.0, 3)
    return None


def direction(opening_m: float, target_m: float, tolerance_m: float) -> int:
    """+1 to open, -1 to close, 0 when the gate is already within tolerance of the target."""
    if abs(opening_m - target_m) <= tolerance_m + _EPS:
        return 0
    return 1 if target_m > opening_m else -1


def fault_of(state: GateState, labels: Mapping[int, str] | None = None) -> str | None:
    """What keeps the hoist from running, in words; None when nothing does."""
    if state.estop:
        return "emergency stop pressed"
    if state.fault_code:
        label = (labels or {}).get(state.fault_code)
        return f"fault_code {state.fault_code}" + (f" ({label})" if label else "")
    if state.overload:
        return "motor overload trip"
    if not state.power_ok:
        return "power lost"
    return None


def _fault_code(state: GateState) -> str:
    if state.estop:
        return "interlock.gate_fault.estop"
    if state.fault_code:
        return "interlock.gate_fault.fault_code"
    return "interlock.gate_fault.overload" if state.overload else "interlock.gate_fault.power"


def _fault_params(state: GateState, labels: Mapping[int, str] | None) -> dict[str, object]:
    if state.estop or not state.fault_code:
        return {}
    return {"fault_code": state.fault_code, "label": (labels or {}).get(state.fault_code, "")}


# Every code a refusal of :func:`check` may carry (the console's catalogue must translate each).
REASON_CODES = (
    "interlock.busy.other_command",
    "interlock.busy.moving",
    "interlock.out_of_limits.range",
    "interlock.out_of_limits.upper_switch",
    "interlock.out_of_limits.lower_switch",
    "interlock.no_data.state",
    "interlock.no_data.level",
    "interlock.local_mode",
    "interlock.gate_fault.estop",
    "interlock.gate_fault.fault_code",
    "interlock.gate_fault.overload",
    "interlock.gate_fault.power",
    "interlock.level_difference.opening",
    "interlock.level_difference.closing",
)


def check(
    action: Action,
    target_m: float | None,
    state: GateState | None,
    limits: Limits,
    *,
    busy: bool,
    fault_labels: Mapping[int, str] | None = None,
) -> Refusal | None:
    """The first interlock that refuses the command, or None when it may be written to the gate.

    ``stop`` is never refused. The order puts what needs no reading first, so that a refusal names the most
    basic reason: busy, out of limits, no data, local mode, fault, moving, limit switch, level difference.
    ``state`` None means the gate's state is not known (the caller says why, after :data:`NO_STATE`).
    """
    if action is Action.STOP:
        return None
    if busy:
        return Refusal(Interlock.BUSY, "another command runs on this gate", code="interlock.busy.other_command")
    assert target_m is not None
    low, high = limits.min_opening_m, limits.max_opening_m
    if not low - _EPS <= target_m <= high + _EPS:
        return Refusal(
            Interlock.OUT_OF_LIMITS,
            f"target {target_m:g} m outside the gate's range [{low:g}, {high:g}] m",
            "target_pct",
            "interlock.out_of_limits.range",
            {"target_m": target_m, "low_m": low, "high_m": high},
        )
    if state is None:
        return Refusal(Interlock.NO_DATA, NO_STATE, code="interlock.no_data.state")
    if not state.remote:
        return Refusal(Interlock.LOCAL_MODE, "selector in local: local operators have priority")
    fault = fault_of(state, fault_labels)
    if fault is not None:
        return Refusal(Interlock.GATE_FAULT, fault, code=_fault_code(state), params=_fault_params(state, fault_labels))
    if state.moving:
        # one command at a time, and no reversal under load: a gate moving under local control is busy
        return Refusal(Interlock.BUSY, "the gate is moving (stop it first)", code="interlock.busy.moving")
    move = direction(state.opening_m, target_m, limits.tolerance_m)
    if move > 0 and state.limit_open:
        return Refusal(Interlock.OUT_OF_LIMITS, "upper limit switch is on", code="interlock.out_of_limits.upper_switch")
    if move < 0 and state.limit_closed:
        return Refusal(Interlock.OUT_OF_LIMITS, "lower limit switch is on", code="interlock.out_of_limits.lower_switch")
    allowed = limits.max_head_open_m if move > 0 else limits.max_head_close_m if move < 0 else None
    if allowed is not None:
        head = state.head_m
        if head is None:
            return Refusal(Interlock.NO_DATA, "a water level could not be read", code="interlock.no_data.level")
        if head > allowed + _EPS:
            what = "opening" if move > 0 else "closing"
            return Refusal(
                Interlock.LEVEL_DIFFERENCE,
                f"head {head:.2f} m above {allowed:g} m allowed for {what}",
                code=f"interlock.level_difference.{what}",
                params={"head_m": round(head, 2), "allowed_m": allowed},
            )
    return None
