"""The garbage collector set for a long-running service process, once its configuration is loaded.

A service allocates and frees small objects by the million (messages, samples, readings); none of them is in a
reference cycle, so reference counting frees them. The cyclic collector still runs every 700 net allocations and,
every so often, walks every long-lived object: the profiles, sites, rules and per-device state loaded at the start.
Measured in an edge worker polling 3,000 devices a second: 5 % of its CPU was the collector. So, after start-up:
``gc.freeze()`` moves what start-up made out of the collector's sight, and the first generation is collected every
10,000 allocations instead of 700. Cycles are still collected, less often.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000


def tune_for_throughput() -> None:
    """Call once the process has loaded its configuration and built its long-lived objects."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
