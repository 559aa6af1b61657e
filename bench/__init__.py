"""Benchmarks that print figures, run by ``lifeline bench NAME``: loopback only, bounded in count and time.

One module a benchmark, each with ``run(args) -> int``; their arguments are registered here, in one place, and a
module is imported only when its benchmark runs (so the ``lifeline`` command starts without loading them all).
Figures are printed, each with the machine's core count (bench._figures), and written by ``--json PATH``; never
asserted by tests; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from infra import logs

__all__ = ["add_parsers"]

_JSON_HELP = "also write the figures, with the core count and the command, to PATH as JSON (-: standard output)"


def _runner(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        logs.setup("WARNING")
        module = importlib.import_module(f"bench.{name}")
        code: int = module.run(args)
        return code

    return run


def _add(sub: Any, name: str, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    p.set_defaults(func=_runner(name))
    return p


def add_parsers(sub: Any) -> None:  # noqa: PLR0915 - one flat table of every bench's arguments
    """``lifeline bench ...``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="target", required=True)

    p = _add(bench_sub, "edge", "how many Modbus devices one agent polls on time")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds (default 1)")
    p.add_argument("--step-seconds", type=float, default=8.0, help="how long each device count runs")
    p.add_argument("--max-devices", type=int, default=8000, help="stop the search here")
    p.add_argument("--start", type=int, default=250, help="first device count (doubled until over the limit)")
    p.add_argument("--workers", default="auto", help="the agent's workers: setting (default auto); 1 runs after it")
    p.add_argument("--modbus-client", default="lean", choices=["lean", "pymodbus"], help="modbus: client:")

    p = _add(bench_sub, "bridge", "readings/s the bridge stores in InfluxDB, and its latency")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--readings", type=int, default=1_000_000, help="readings per drain case (a fifth for 1/message)")
    p.add_argument("--live-seconds", type=float, default=10.0)
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument("--reference", action="store_true", help="drain the reference bridge alone (paho + orjson)")
    p.add_argument("--drain-only", action="store_true", help="only the drain cases (Lifeline and the reference)")
    p.add_argument("--per-message", default="1,10,100", help="readings per message of the cases (default 1,10,100)")
    p.add_argument("--ceiling-seconds", type=float, default=4.0, help="InfluxDB's ceiling: seconds per writer count")
    p.add_argument("--direct", action="store_true", help="bridge and ceiling write to influxd, not the write gateway")

    p = _add(bench_sub, "alerts", "reading-to-notification latency under load; max readings/s of one engine")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--rate", type=int, default=20_000, help="readings/s offered in the steady case (default 20k)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the steady case")
    p.add_argument("--probe-interval", type=float, default=0.25, help="seconds between gas-leak probes")
    p.add_argument("--messages", type=int, default=50_000, help="messages queued for the max case (10 readings each)")
    p.add_argument(
        "--devices",
        type=int,
        default=0,
        help="instead: CPU a message of one engine (in process) at 100 and at this many detectors, --seconds long",
    )

    p = _add(bench_sub, "api", "latency of the API's latest and history reads")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--devices", type=int, default=50, help="devices of the site (default 50)")
    p.add_argument("--interval-s", type=int, default=60, help="seconds between stored samples (default 60)")
    p.add_argument("--repeats", type=int, default=50, help="requests per case (default 50)")

    p = _add(bench_sub, "hj212", "packets/s one HJ 212 ingest process parses, answers and forwards with 500 stations")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--stations", type=int, default=500, help="connected stations (default 500)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each phase (default 8)")
    p.add_argument("--interval-s", type=float, default=1.0, help="seconds between a station's paced packets")
    p.add_argument("--no-reference", action="store_true", help="skip the minimal reference server's run")
    p.add_argument("--rounds", type=int, default=4, help="flat-out rounds, taking turns with the reference")

    p = _add(bench_sub, "report", "a month of a 500-station district's reports: time, peak memory, checked numbers")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--sources", type=int, default=500, help="pollution sources, hourly rows each (default 500)")
    p.add_argument("--stations", type=int, default=500, help="air stations, a daily AQI each (default 500)")
    p.add_argument("--month", default="2026-03", help="the month, YYYY-MM (default 2026-03)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic rows")

    p = _add(bench_sub, "district", "the whole chain of lifeline up loaded as k Baoshans: the largest k on this box")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--max-k", type=int, default=16, help="stop after this many districts (k doubles from 1)")
    p.add_argument("--step-seconds", type=float, default=60.0, help="how long each k runs (default 60)")
    p.add_argument("--quick", action="store_true", help="20 s steps, k up to 2: a short run")
    p.add_argument("--probe-interval", type=float, default=0.5, help="seconds between alarm probes (default 0.5)")
    p.add_argument("--publishers", type=int, default=2, help="MQTT connections of the load (default 2)")
    p.add_argument("--keep-going", action="store_true", help="run every k up to --max-k, even past a failed one")
    p.add_argument(
        "--data-dir", default=None, help="lifeline up's data and logs here, kept (default: a temporary folder)"
    )

    p = _add(bench_sub, "lineproto", "line protocol encoding speed: the bridge's encoder against influxdb_client's")
    p.add_argument("--json", metavar="PATH", help=_JSON_HELP)
    p.add_argument("--points", type=int, default=200_000, help="values encoded by the bridge's encoder")
    p.add_argument("--client-points", type=int, default=20_000, help="values encoded by influxdb_client's Point")
