"""The ``lifeline`` command: one entry point for every component."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from device_profiles import ConfigError, load_profiles
from device_profiles.catalogue_loader import profile_files
from lifeline import logs


def _validate_files(raw_paths: list[str], load: Callable[[list[Path]], str]) -> int:
    """Shared by ``profiles validate`` and ``rules validate``: exit 2 for missing paths, 1 for problems."""
    paths = [Path(p) for p in raw_paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}: no such file or folder", file=sys.stderr)
    if missing:
        return 2
    try:
        summary = load(paths)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _profiles_validate(args: argparse.Namespace) -> int:
    def load(paths: list[Path]) -> str:
        profiles = load_profiles(paths)
        files = profile_files(paths)
        return f"{len(profiles)} profile(s) in {len(files)} file(s) are valid: {', '.join(sorted(profiles))}"

    return _validate_files(args.paths, load)


def _rules_validate(args: argparse.Namespace) -> int:
    from rules import load_rules

    def load(paths: list[Path]) -> str:
        rules = load_rules(paths)
        return f"{len(rules)} rule(s) are valid: {', '.join(r.id for r in rules)}"

    return _validate_files(args.paths, load)


def _edge(args: argparse.Namespace) -> int:
    from edge_agent import EdgeAgent, load_site, plan_report
    from edge_agent.planner import PlanError

    try:
        site = load_site(Path(args.config))
        if args.plan:
            print(plan_report(site))
            return 0
    except (ConfigError, PlanError) as exc:
        print(exc, file=sys.stderr)
        return 1
    logs.setup(args.log_level)
    agent = EdgeAgent(site)
    return run_until_signal(agent.run)


def _simulate(args: argparse.Namespace) -> int:
    from lifeline.simulate import simulate

    logs.setup(args.log_level)
    return simulate(args)


def _up(args: argparse.Namespace) -> int:
    from lifeline.up import up

    logs.setup(args.log_level)
    return up(args)


def _bench(args: argparse.Namespace) -> int:
    from lifeline.bench import bench

    logs.setup("WARNING")
    return bench(args)


def install_stop_signals() -> asyncio.Event:
    """An event that SIGINT (Ctrl-C) and SIGTERM set, on the running loop; SIGUSR1 prints every task's stack."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    return stop


def dump_tasks() -> None:
    """Where every asyncio task of this process waits (for a process that seems stuck: kill -USR1 PID)."""
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task.get_coro()}", file=sys.stderr)
        task.print_stack(limit=8, file=sys.stderr)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main(stop_event)`` on a fresh loop; SIGINT and SIGTERM set the event."""

    async def runner() -> None:
        await main(install_stop_signals())

    asyncio.run(runner())
    return 0


def _rules_parsers(sub: Any) -> None:
    rules = sub.add_parser("rules", help="alert rules: run the engine and alert manager (default), or validate")
    rules_sub = rules.add_subparsers(dest="action", required=False)
    rval = rules_sub.add_parser("validate", help="validate rule files or folders")
    rval.add_argument("paths", nargs="+", metavar="PATH")
    rval.set_defaults(func=_rules_validate)
    from lifeline import rules_cli

    rules.add_argument("--config", help="service configuration (YAML) when run without an action")
    rules.set_defaults(func=rules_cli.run)
    rules_cli.add_parsers(sub, rules_sub)


def _bench_parsers(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="target", required=True)
    be = bench_sub.add_parser("edge", help="how many Modbus devices one agent polls on time")
    be.add_argument("--json", action="store_true", help="print one JSON object")
    be.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds (default 1)")
    be.add_argument("--step-seconds", type=float, default=8.0, help="how long each device count runs")
    be.add_argument("--max-devices", type=int, default=8000, help="stop the search here")
    be.add_argument("--start", type=int, default=250, help="first device count (doubled until over the limit)")
    be.set_defaults(func=_bench)
    bb = bench_sub.add_parser("bridge", help="readings/s the bridge stores in InfluxDB, and its latency")
    bb.add_argument("--json", action="store_true", help="print a JSON list, one object a case")
    bb.add_argument("--readings", type=int, default=300_000, help="readings per drain case (a fifth for 1/message)")
    bb.add_argument("--live-seconds", type=float, default=10.0)
    bb.add_argument("--latency-seconds", type=float, default=10.0)
    bb.set_defaults(func=_bench)
    from lifeline.bench_alerts import add_parser as add_bench_alerts
    from lifeline.bench_api import add_parser as add_bench_api
    from lifeline.bench_hj212 import add_parser as add_bench_hj212

    add_bench_alerts(bench_sub)
    add_bench_api(bench_sub)
    add_bench_hj212(bench_sub)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifeline", description="Telemetry platform for a city's lifelines.")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = p.add_subparsers(dest="command", required=True)

    prof = sub.add_parser("profiles", help="device profiles")
    prof_sub = prof.add_subparsers(dest="action", required=True)
    val = prof_sub.add_parser("validate", help="validate profile files or folders")
    val.add_argument("paths", nargs="+", metavar="PATH")
    val.set_defaults(func=_profiles_validate)

    _rules_parsers(sub)

    edge = sub.add_parser("edge", help="run a site's edge agent")
    edge.add_argument("--config", required=True, metavar="SITE.yaml")
    edge.add_argument("--plan", action="store_true", help="print each device's request plan and exit")
    edge.set_defaults(func=_edge)

    sim = sub.add_parser("simulate", help="run a simulated district (Modbus devices and MQTT sensors)")
    sim.add_argument("--scenario", default="baoshan", help="scenario name or YAML file (default baoshan)")
    sim.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT", help="where MQTT sensors publish")
    sim.add_argument("--credentials", metavar="DIR",
                     help="the broker's credentials folder (lifeline broker config): the sensors publish as "
                          "sim-sensors and the site configs get their edge accounts")  # fmt: skip
    sim.add_argument("--ca-file", help="MQTT over TLS: the CA that signed the broker's certificate")
    sim.add_argument("--sites-dir", default="var/sites", help="where to write each site's edge config")
    sim.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.set_defaults(func=_simulate)

    from lifeline.api_cli import add_parser as add_api_parser
    from lifeline.bridge_cli import add_parsers
    from lifeline.broker_cli import add_parsers as add_broker_parsers
    from lifeline.hj212_cli import add_parser as add_hj212_parser
    from lifeline.keys_cli import add_parser as add_keys_parser

    add_parsers(sub)
    add_broker_parsers(sub)
    add_api_parser(sub)
    add_keys_parser(sub)
    add_hj212_parser(sub)

    up = sub.add_parser(
        "up", help="run the whole platform locally: broker, InfluxDB, bridge, rules, API, district, edge agents"
    )
    up.add_argument("--config", metavar="DEPLOY.yaml", help="deployment file (external broker or InfluxDB, ...)")
    up.add_argument("--scenario", default=None, help="simulated district (default baoshan)")
    up.add_argument("--data-dir", default=None, help="data and logs of the local servers (default var/up)")
    up.add_argument("--mqtt-port", type=int, default=1883, help="local broker port; if taken, a free one is used")
    up.add_argument("--influx-port", type=int, default=8086, help="local InfluxDB port; if taken, a free one")
    up.add_argument("--api-port", type=int, default=8080, help="the API's port; if taken, a free one")
    up.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    up.set_defaults(func=_up)

    _bench_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
