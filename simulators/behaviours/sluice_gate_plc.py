"""A sluice-gate hoist PLC on a tidal river in Shanghai (profile ``sluice_gate_plc``).

Commands follow typical hoist PLC practice (shared standards/sluice.md "Typical PLC I/O"): the client writes
``target_opening`` and then pulses ``cmd_open`` or ``cmd_close``; the PLC latches the run and drives the gate at
a finite speed until it reaches the target, a limit switch, a stop command, a fault or the selector turned to
local. ``cmd_open`` with a target at or below the opening drives to fully open, ``cmd_close`` with a target at or
above it drives to fully closed. ``jam()`` makes the gate stick while the hoist runs (a stall the PLC misses).

Refused commands are accepted on the wire and ignored, as most PLCs do (the coil write succeeds; the state bits
show that nothing moved): every remote command while the selector is in local, a run while a fault, the emergency
stop or a power loss is present, and a reversal while moving (stop first). Coils read back 0: the PLC clears a
pulse once it has latched it.

Hydraulics, plausible rather than exact: the outer, tidal level follows a semi-diurnal M2 tide on the Wusong datum;
the inner river relaxes to its control level, rises with rain and rises or falls with the flow through the gate;
the flow is a submerged-orifice flow from the head and the opening. ``flood_side`` says which side of the gate is
the outer one (shared standards/sluice.md: a site attribute, recorded as the device tag ``flood_side`` for the
rules): ``downstream`` for an inner river's gate at its mouth, as at Yunzaobang and Lianqi (the inner river is the
level above the sluice, ``level_up``; the Huangpu / Yangtze tide the level below, ``level_down``); ``upstream``
(the default, as older scenarios assumed) puts the tide on ``level_up``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from simulators.behaviours._base import Behaviour, BehaviourParams, Pulse, Value, clamp

M2_PERIOD_S = 12.4206 * 3600  # principal lunar semi-diurnal tide
G = 9.81

# fault_code states of the profile
FAULT_NONE = 0
FAULT_OVERLOAD = 1
FAULT_PHASE_LOSS = 2
FAULT_ENCODER = 3
FAULT_OVERTRAVEL = 4
FAULT_STALL = 5
FAULT_ESTOP = 6


class GateParams(BehaviourParams):
    max_opening_m: float = Field(default=6.0, gt=0, le=6.5, description="travel from closed to the upper limit")
    speed_m_s: float = Field(default=0.005, gt=0, le=10.0, description="hoist speed (typical 0.3 m/min; tests: fast)")
    initial_opening_m: float = Field(default=0.0, ge=0, le=6.5)
    width_m: float = Field(default=8.0, gt=0, description="gate width, for the orifice flow")
    discharge_coeff: float = Field(default=0.6, gt=0, le=1)
    tide_mean_m: float = Field(default=2.2, description="mean outer level, Wusong datum")
    tide_amplitude_m: float = Field(default=1.4, ge=0, le=3)
    tide_phase_h: float = Field(default=0.0, description="hours the tide runs late against the reference")
    inner_level_m: float = Field(default=2.6, description="inner-river control level, Wusong datum")
    inner_area_m2: float = Field(default=400_000.0, gt=0, description="water surface behind the gate")
    inner_relax_h: float = Field(default=8.0, gt=0, description="time the inner river takes to drain to control")
    remote: bool = Field(default=True, description="selector in remote at start")
    flood_side: Literal["upstream", "downstream"] = Field(
        default="upstream", description="the side of the outer, tidal water: downstream for a river-mouth gate"
    )


class SluiceGate(Behaviour):
    profile = "sluice_gate_plc"

    def __init__(self, seed: int, params: GateParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or GateParams()
        self.opening = clamp(self.p.initial_opening_m, 0.0, self.p.max_opening_m)
        self.target = self.opening
        self.goal: float | None = None  # latched run: where the hoist is driving to
        self.direction = 0  # +1 opening, -1 closing
        self.remote = self.p.remote
        self.fault_code = FAULT_NONE
        self.overload = False
        self.estop = False
        self.power_ok = True
        self.inner = self.p.inner_level_m  # the inner river's level without the rain on it, Wusong datum
        self.rains: list[Pulse] = []
        self.flow = 0.0
        self.refused = 0  # commands ignored (local mode, fault, reversal)
        self.jammed = False  # the motor runs, the gate does not move (a stall the PLC does not detect)

    # -- commands ---------------------------------------------------------------------------------------
    def write(self, point: str, value: Value, now: float) -> bool:
        self.step(now)
        if point == "target_opening":
            if isinstance(value, str):
                return False
            self.target = clamp(float(value), 0.0, self.p.max_opening_m)
            return True
        if point not in ("cmd_open", "cmd_close", "cmd_stop", "cmd_fault_reset") or not value:
            return point.startswith("cmd_")  # releasing a pulse coil is accepted and does nothing
        if not self.remote:
            return self._refuse()
        if point == "cmd_stop":
            self._halt()
            return True
        if point == "cmd_fault_reset":
            return self._reset_fault()
        return self._run(+1 if point == "cmd_open" else -1)

    def _refuse(self) -> bool:
        self.refused += 1
        return False

    def _run(self, direction: int) -> bool:
        if not self.can_run or (self.direction and self.direction != direction):
            return self._refuse()
        if direction > 0:
            goal = self.target if self.target > self.opening else self.p.max_opening_m
            if self.opening >= self.p.max_opening_m:
                return self._refuse()
        else:
            goal = self.target if self.target < self.opening else 0.0
            if self.opening <= 0.0:
                return self._refuse()
        self.goal, self.direction = goal, direction
        return True

    def _reset_fault(self) -> bool:
        if self.estop or not self.power_ok:
            return self._refuse()
        self.fault_code, self.overload = FAULT_NONE, False
        return True

    def _halt(self) -> None:
        self.goal, self.direction = None, 0

    @property
    def can_run(self) -> bool:
        return self.fault_code == FAULT_NONE and not self.overload and not self.estop and self.power_ok

    # -- faults and field events, on demand -------------------------------------------------------------------
    def set_remote(self, remote: bool) -> None:
        """The local/remote selector at the station; turning it to local stops a run (local operators take over)."""
        if self.remote and not remote:
            self._halt()
        self.remote = remote

    def jam(self, jammed: bool = True) -> None:
        """The gate sticks in its guides: the hoist runs (moving bits on) but the opening no longer changes."""
        self.jammed = jammed

    def trip(self, code: int = FAULT_OVERLOAD) -> None:
        """A hoist fault (a fault_code of the profile); motion stops. Overload also sets the thermal-trip input."""
        self.fault_code = code
        self.overload = self.overload or code == FAULT_OVERLOAD
        self._halt()

    def press_estop(self) -> None:
        self.estop = True
        self.trip(FAULT_ESTOP)

    def release_estop(self) -> None:
        """The button is released; the fault stays until a fault reset."""
        self.estop = False

    def set_power(self, ok: bool) -> None:
        self.power_ok = ok
        if not ok:
            self._halt()

    def rain(self, now: float, rise_m: float = 0.5, hours: float = 6.0) -> None:
        """A rain surge on the inner river: rises over an hour, decays over ``hours``."""
        self.rains.append(Pulse(start=now, peak=rise_m, rise_s=3600.0, decay_s=hours * 3600 / 3))

    # -- model ----------------------------------------------------------------------------------------------
    def outer_level(self, now: float) -> float:
        """The outer, tidal level (Wusong datum)."""
        phase = 2 * math.pi * (now - self.p.tide_phase_h * 3600) / M2_PERIOD_S
        return self.p.tide_mean_m + self.p.tide_amplitude_m * math.cos(phase)

    def inner_level(self, now: float) -> float:
        """The inner river's level (Wusong datum), with the rain on it."""
        self.rains = [r for r in self.rains if not r.over(now)]
        return self.inner + sum(r.at(now) for r in self.rains)

    def levels(self, now: float) -> tuple[float, float]:
        """(level_up, level_down): the levels above and below the sluice, by the flood side."""
        outer, inner = self.outer_level(now), self.inner_level(now)
        return (outer, inner) if self.p.flood_side == "upstream" else (inner, outer)

    def orifice_flow(self, level_up: float, level_down: float) -> float:
        """Flow through the gate (m³/s, positive downstream): Q = Cd·b·a·√(2g|Δh|), sign of Δh."""
        head = level_up - level_down
        q = self.p.discharge_coeff * self.p.width_m * self.opening * math.sqrt(2 * G * abs(head))
        return clamp(math.copysign(q, head), -500.0, 500.0)

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        # integrate in slices of at most 10 s so the inner level and the hoist do not overshoot
        t = now - dt
        while dt > 0:
            h = min(dt, 10.0)
            t += h
            dt -= h
            self._move(h)
            up, down = self.levels(t)
            self.flow = self.orifice_flow(up, down)
            inflow = self.flow if self.p.flood_side == "upstream" else -self.flow  # into the inner river
            relax = (self.inner - self.p.inner_level_m) / (self.p.inner_relax_h * 3600)
            self.inner += h * (inflow / self.p.inner_area_m2 - relax)
        return self.values(now)

    def _move(self, h: float) -> None:
        if not self.direction or self.goal is None or self.jammed:
            return
        nxt = self.opening + self.direction * self.p.speed_m_s * h
        if (self.direction > 0 and nxt >= self.goal) or (self.direction < 0 and nxt <= self.goal):
            nxt = self.goal
            self._halt()
        if nxt >= self.p.max_opening_m or nxt <= 0.0:  # a limit switch cuts the motor at either end of travel
            self._halt()
        self.opening = clamp(nxt, 0.0, self.p.max_opening_m)

    def values(self, now: float) -> dict[str, Value]:
        moving = self.direction != 0
        current = (18.0 + 4.0 * self.rng.random()) if moving else 0.1 * self.rng.random()
        up, down = self.levels(now)
        return {
            "gate_opening": round(self.opening, 3),
            "level_up": round(up + self.rng.gauss(0, 0.005), 2),
            "level_down": round(down + self.rng.gauss(0, 0.005), 2),
            "motor_current": round(current, 1),
            "fault_code": self.fault_code,
            "remote_mode": self.remote,
            "moving_open": self.direction > 0,
            "moving_close": self.direction < 0,
            "estop": self.estop,
            "power_ok": self.power_ok,
            "target_opening": round(self.target, 3),
            "flow": round(self.flow, 2) + 0.0,  # no -0.0
            "limit_open": self.opening >= self.p.max_opening_m - 1e-6,
            "limit_closed": self.opening <= 1e-6,
            "overload": self.overload,
            "cmd_open": False,
            "cmd_close": False,
            "cmd_stop": False,
            "cmd_fault_reset": False,
        }


def create(seed: int, params: Mapping[str, object]) -> SluiceGate:
    return SluiceGate(seed, GateParams.model_validate(params))
