"""What the command modules share: running in the foreground (a stop event set by SIGINT and SIGTERM, a task dump
on SIGUSR1) and the type of the object commands register on.

Every ``lifeline/*_cli.py`` module (and ``bench``) exposes ``add_parsers(sub: Subparsers)``, which ``lifeline.cli``
calls; commands that run until stopped (``edge``, ``bridge``, ``rules``, ``hj212``, ``simulate``, ``up``) and the
benchmarks use the helpers here; commands that read a config report its problems with ``report_problems``. It
imports nothing of the CLI, so no module needs to import ``lifeline.cli`` back.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from infra.config_loader import ConfigError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # what ``add_subparsers()`` returns


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


def report_problems(exc: ConfigError) -> int:
    """A config's problems on stderr, one a line (file, line, field, reason), then how many; returns exit code 1."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
    return 1
