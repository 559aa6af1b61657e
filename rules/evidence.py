"""What raised an alert: the readings a rule judged, kept with the alert (``alert_evidence`` in the alert store).

The engine remembers a key's samples only while its condition holds (the rare case; the common one, nothing asked
and nothing active, does no work here), at most :data:`SAMPLES` of them, each with its time and the values of the
points the rule reads (and their quality when not good). A raise or an escalation carries them: the samples over
which the condition held up to the transition, so an on-delay's whole run is there. A rate or noise rule carries
its window's readings (what the change or the Leq was computed from); a window rule carries the window's figures
(statistic, value, count, period). Stored history can be erased or rewritten; the alert keeps its own proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules.schema import Rule
from telemetry.models import Quality, Value
from telemetry.wire import SampleLike

__all__ = ["SAMPLES", "Evidence", "Reading", "reading", "rule_points"]

SAMPLES = 10  # readings kept per alert raise: enough for an on-delay's run at a few seconds a sample


@dataclass(frozen=True, slots=True)
class Reading:
    ts: int  # sample time, epoch ms
    values: dict[str, Value]
    quality: dict[str, str] | None = None  # point -> quality, for points whose quality is not good

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": self.ts, "values": self.values}
        if self.quality:
            out["quality"] = self.quality
        return out


@dataclass(frozen=True, slots=True)
class Evidence:
    """The readings (oldest first) and, for a window rule, the window's figures, of one raise or escalation."""

    readings: tuple[Reading, ...] = ()
    window: dict[str, Any] | None = None

    def readings_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.readings]

    @classmethod
    def from_kept(cls, kept: list[list[Any]]) -> Evidence:
        """From an alert state's kept entries ``[ts, values, quality]`` (see :func:`reading`)."""
        return cls(tuple(Reading(int(e[0]), dict(e[1]), dict(e[2]) if len(e) > 2 and e[2] else None) for e in kept))


def _points_of(rule: Rule) -> tuple[str, ...]:
    if rule.threshold is not None:
        return (rule.threshold.point,)
    if rule.rate is not None:
        return (rule.rate.point,)
    if rule.state is not None:
        return (rule.state.point,)
    terms = rule.all_ if rule.all_ is not None else rule.any_
    if terms is not None:
        return tuple(dict.fromkeys(term.point for term in terms))
    if rule.deviation is not None:
        return (rule.deviation.point, rule.deviation.reference)
    if rule.frozen is not None:
        return (rule.frozen.point,)
    if rule.noise is not None:
        return tuple(p for p in (rule.noise.point, rule.noise.lmax_point) if p)
    if rule.tide_gate is not None:
        tg = rule.tide_gate
        return (tg.upstream, tg.downstream, tg.opening)
    return ()


def rule_points(rule: Rule, point: str) -> tuple[str, ...]:
    """The points of a sample that tell why ``rule`` judged key ``point`` (a bad-quality rule: the key's own)."""
    if rule.bad_quality is not None:
        return (point,) if point else ()
    return _points_of(rule)


def reading(sample: SampleLike, points: tuple[str, ...]) -> list[Any]:
    """A kept entry (JSON-safe, for the engine's checkpoint): ``[ts, {point: value}, {point: quality}]``."""
    values = sample.values
    kept = {p: values[p] for p in points if p in values}
    quality: dict[str, str] = {}
    if sample.quality:
        for p in points:
            pq = sample.quality.get(p)
            if pq is not None and pq.q is not Quality.GOOD:
                quality[p] = pq.q.value
    return [sample.ts, kept, quality]
