"""Gaps in an MQTT sensor's own message counter (a profile's ``mqtt.sequence``), counted. Pure; no clock needed.

A sensor that numbers its messages tells the edge what it never heard: messages the broker dropped (a broker
restarted without the edge's session, a queue limit) or the sensor sent while nothing listened. Those readings
cannot be recovered, but they must not vanish uncounted.
"""

from __future__ import annotations

from dataclasses import dataclass

REORDER = 100  # a counter this little behind the last is a late redelivery (QoS 1 after a reconnect), not a restart


@dataclass(slots=True)
class SeqTracker:
    """The last counter value heard from one sensor, and what its jumps add up to."""

    modulo: int | None = None
    last: int | None = None
    missed: int = 0  # messages numbered by the sensor that never arrived
    restarts: int = 0  # the counter went back (the sensor restarted): no gap can be told across it

    def heard(self, seq: int) -> int:
        """Record message ``seq``; how many the sensor sent since the last one heard that never arrived."""
        if self.last is None:
            self.last = seq
            return 0
        step = seq - self.last
        if self.modulo is not None:
            step %= self.modulo
            if step > self.modulo // 2:  # behind, across the wrap or not: a late one
                step -= self.modulo
        if step == 0 or -REORDER <= step < 0:  # a redelivery, or a late one: nothing missed, the last stays
            return 0
        self.last = seq
        if step < 0:
            self.restarts += 1
            return 0
        self.missed += step - 1
        return step - 1
