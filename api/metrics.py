"""The API's counters in Prometheus text format (requests by route and status, commands by result, ...)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return f"{{{inner}}}" if inner else ""


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


def render(
    requests: Mapping[tuple[str, str, int], int],
    commands: Mapping[str, int],
    refusals: Mapping[str, int],
    gauges: Mapping[str, float],
    *,
    bad_results: Mapping[str, int] | None = None,
) -> str:
    out = ["# HELP lifeline_api_requests_total HTTP requests by route template and status",
           "# TYPE lifeline_api_requests_total counter"]  # fmt: skip
    for (method, route, status), n in sorted(requests.items()):
        labels = _labels([("method", method), ("route", route), ("status", str(status))])
        out.append(f"lifeline_api_requests_total{labels} {n}")
    out += ["# HELP lifeline_api_commands_total gate commands by result (published, refused, completed, ...)",
            "# TYPE lifeline_api_commands_total counter"]  # fmt: skip
    for result, n in sorted(commands.items()):
        out.append(f"lifeline_api_commands_total{_labels([('result', result)])} {n}")
    out += ["# HELP lifeline_api_command_refusals_total gate commands refused at the API, by interlock",
            "# TYPE lifeline_api_command_refusals_total counter"]  # fmt: skip
    for interlock, n in sorted(refusals.items()):
        out.append(f"lifeline_api_command_refusals_total{_labels([('interlock', interlock)])} {n}")
    out += ["# HELP lifeline_api_command_results_refused_total command results not recorded, by why (signature: "
            "unsigned or not by the site's key; other_command: answers another command)",
            "# TYPE lifeline_api_command_results_refused_total counter"]  # fmt: skip
    for why, n in sorted((bad_results or {}).items()):
        out.append(f"lifeline_api_command_results_refused_total{_labels([('reason', why)])} {n}")
    for name, value in sorted(gauges.items()):
        kind = "counter" if name.endswith("_total") else "gauge"
        out += [f"# TYPE {name} {kind}", f"{name} {value:g}"]
    return "\n".join(out) + "\n"
