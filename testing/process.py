"""Lifeline's services run as they are in production, each its own process, for tests and benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lifeline.runners import stop_process

_METRIC = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$")


class ServiceProcess:
    """A Lifeline service in its own process (``python -m lifeline COMMAND --config FILE``), watched through its
    metrics endpoint: started once ``ready_metric`` reads 1."""

    def __init__(self, command: list[str], config: Path, metrics_port: int, log: Path, ready_metric: str) -> None:
        self.command, self.config, self.metrics_port, self.log = command, config, metrics_port, log
        self.ready_metric = ready_metric
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        argv = [sys.executable, "-m", "lifeline", "--log-level", "WARNING", *self.command, "--config", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.metrics().get(self.ready_metric) == 1:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{' '.join(self.command)} did not connect; see {self.log}")

    def metrics(self) -> dict[str, float]:
        """The service's metrics now, by name with labels (empty while it does not answer)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            found = _METRIC.match(line)
            if found:
                out[found.group(1)] = float(found.group(2))
        return out

    def stop(self) -> None:
        """SIGTERM, up to 20 s for the service to finish its work, then SIGKILL."""
        stop_process(self.proc, 20.0)
