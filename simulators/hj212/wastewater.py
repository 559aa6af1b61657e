"""A wastewater discharge outlet behind a treatment plant (profile ``wastewater_outlet_hj212``).

Treated effluent near the GB 8978-1996 first-class limits (shared standards/water.md): COD about 35 mg/L, NH3-N
about 2 mg/L, TP about 0.3 mg/L, TN about 10 mg/L, pH about 7.2. Flow follows the working day (most in the day
shift). A discharge upset (``upset``) multiplies the pollutants for a while and decays.
"""

from __future__ import annotations

from simulators.behaviours._base import Behaviour, Pulse, Value, bump, clamp


class WastewaterOutlet(Behaviour):
    profile = "wastewater_outlet_hj212"

    def __init__(self, seed: int, flow_l_s: float = 120.0) -> None:
        super().__init__(seed)
        self.flow_l_s = flow_l_s
        self.upsets: list[Pulse] = []

    def upset(self, now: float, factor: float = 4.0, duration_s: float = 1800.0) -> None:
        """A discharge upset from ``now``: pollutants up to ``factor`` times their normal level."""
        self.upsets.append(Pulse(now, factor - 1.0, rise_s=60.0, decay_s=duration_s / 3))

    def step(self, now: float) -> dict[str, Value]:
        self._advance(now)
        g = self.rng.gauss
        self.upsets = [u for u in self.upsets if not u.over(now)]
        k = 1.0 + sum(u.at(now) for u in self.upsets)
        flow = self.flow_l_s * (0.5 + 0.6 * bump(now, 14.0, 4.0))
        return {
            "cod": round(clamp(35.0 * k + g(0, 1.5), 0, 1000), 2),
            "nh3_n": round(clamp(2.0 * k + g(0, 0.1), 0, 100), 3),
            "tp": round(clamp(0.3 * k + g(0, 0.02), 0, 20), 3),
            "tn": round(clamp(10.0 * k + g(0, 0.4), 0, 100), 2),
            "ph": round(clamp(7.2 + g(0, 0.05), 0, 14), 2),
            "flow": round(clamp(flow + g(0, 2.0), 0, 5000), 2),
        }
