"""infra.gc_tuning: what start-up made is out of the collector's sight, and cycles are still collected."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, weakref
from infra.gc_tuning import GEN0_THRESHOLD, tune_for_throughput
class Node: pass
tune_for_throughput()
assert gc.get_threshold()[0] == GEN0_THRESHOLD
assert gc.get_freeze_count() > 0
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after start-up
gone = weakref.ref(a)
del a, b
gc.collect()
print(gone() is None)
"""


def test_start_up_frozen_and_later_cycles_collected() -> None:
    # a process of its own: the tuning is process-wide and this one runs the other tests
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "True"
