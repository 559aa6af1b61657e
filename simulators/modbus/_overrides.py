"""Values forced over a behaviour's: set by hand, stuck, or spiked for a number of reads. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from simulators.behaviours import Value


@dataclass(slots=True)
class Spike:
    value: Value
    reads_left: int


@dataclass(slots=True)
class Overrides:
    """What a test or an operator forced on a device's points, applied over the behaviour's values."""

    forced: dict[str, Value] = field(default_factory=dict)
    stuck: dict[str, Value] = field(default_factory=dict)
    spikes: dict[str, Spike] = field(default_factory=dict)

    def apply(self, values: dict[str, Value]) -> dict[str, Value]:
        """``values`` with overrides in force; a stuck point keeps the value it had when it stuck."""
        out = dict(values)
        out.update(self.stuck)
        out.update(self.forced)
        out.update({name: s.value for name, s in self.spikes.items()})
        return out

    def count_reads(self, names: Iterable[str]) -> bool:
        """One read touched ``names``: spend their spikes; True if a spike ended (the image must be rebuilt)."""
        ended = False
        for name in names:
            spike = self.spikes.get(name)
            if spike is None:
                continue
            spike.reads_left -= 1
            if spike.reads_left <= 0:
                del self.spikes[name]
                ended = True
        return ended

    def clear(self, name: str | None = None) -> None:
        """Clear one point's overrides, or all of them."""
        for table in (self.forced, self.stuck, self.spikes):
            if name is None:
                table.clear()
            else:
                table.pop(name, None)

    def __bool__(self) -> bool:
        return bool(self.forced or self.stuck or self.spikes)
