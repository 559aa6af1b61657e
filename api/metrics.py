"""The API's counters (requests by route and status, commands by result, ...) as Prometheus metric families."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping

from infra.metrics import Metric, counter, gauge


class RequestCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def add(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)


def collect(
    requests: Mapping[tuple[str, str, int], int],
    commands: Mapping[str, int],
    refusals: Mapping[str, int],
    gauges: Mapping[str, float],
    *,
    bad_results: Mapping[str, int] | None = None,
) -> Iterator[Metric]:
    """The API's metric families (``gauges``: names ending in ``_total`` are counters)."""
    yield counter(
        "lifeline_api_requests_total",
        "HTTP requests by route template and status",
        {(m, r, str(s)): n for (m, r, s), n in requests.items()},
        ("method", "route", "status"),
    )
    yield counter(
        "lifeline_api_commands_total",
        "gate commands by result (published, refused, completed, ...)",
        {(r,): n for r, n in commands.items()},
        ("result",),
    )
    yield counter(
        "lifeline_api_command_refusals_total",
        "gate commands refused at the API, by interlock",
        {(i,): n for i, n in refusals.items()},
        ("interlock",),
    )
    yield counter(
        "lifeline_api_command_results_refused_total",
        "command results not recorded, by why (signature: "
        "unsigned or not by the site's key; other_command: answers another command)",
        {(w,): n for w, n in (bad_results or {}).items()},
        ("reason",),
    )
    for name, value in sorted(gauges.items()):
        yield (counter if name.endswith("_total") else gauge)(name, "", value)
