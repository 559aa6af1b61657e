"""What every benchmark prints and writes: each figure with the machine's core count, and ``--json PATH``.

``os.cpu_count()`` is the machine's cores; ``os.sched_getaffinity(0)`` the ones this process may run on (a
container or ``taskset`` may allow fewer). The README's figures are copied from these files.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["cores", "figure", "machine", "write_json"]


def machine() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_count": os.cpu_count(), "usable_cpus": usable, "python": platform.python_version()}


def cores() -> str:
    m = machine()
    return f"[{m['cpu_count']} cores, {m['usable_cpus']} usable]"


def figure(line: str) -> None:
    """Print one figure's line with the core count."""
    print(f"{line}  {cores()}", flush=True)


def write_json(path: str | None, bench: str, figures: Any) -> None:
    """Write the figures with the machine and the command to ``path`` ("-": standard output); None: nothing."""
    if not path:
        return
    doc = {
        "bench": bench,
        "command": "lifeline bench " + " ".join(sys.argv[sys.argv.index(bench) :])
        if bench in sys.argv
        else f"lifeline bench {bench}",
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": figures,
    }
    text = json.dumps(doc, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)
