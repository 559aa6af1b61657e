"""How CLI commands are registered: one ``add_parsers(sub)`` per command module, all of them in ``lifeline.cli``,
none importing ``lifeline.cli`` back (no import cycle); the benchmarks through the ``lifeline.commands`` entry point
(``lifeline`` never imports ``bench``), every benchmark module reachable as ``lifeline bench NAME``."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from lifeline import cli

ROOT = Path(__file__).resolve().parents[2]
CLI_MODULES = sorted(p.stem for p in (ROOT / "lifeline").glob("*_cli.py"))
BENCH_MODULES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
SOURCES = sorted(p for d in ("lifeline", "bench") for p in (ROOT / d).glob("*.py") if p.name != "__main__.py")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("name", CLI_MODULES)
def test_every_cli_module_is_registered_with_add_parsers(name: str) -> None:
    module = importlib.import_module(f"lifeline.{name}")
    assert callable(module.add_parsers)
    assert module in cli.COMMANDS


def test_only_command_modules_are_registered() -> None:
    assert len(cli.COMMANDS) == len(CLI_MODULES)


def test_bench_is_a_plugin_of_the_installed_package() -> None:
    assert bench.add_parsers in cli.plugins()
    assert bench not in cli.COMMANDS


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nothing_imports_the_cli_back(path: Path) -> None:
    assert "lifeline.cli" not in _imports(path)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _bench_commands() -> dict[str, argparse.ArgumentParser]:
    return _subcommands(_subcommands(cli.parser())["bench"])


@pytest.mark.parametrize("name", BENCH_MODULES)
def test_every_benchmark_module_is_a_bench_command(name: str) -> None:
    assert name in _bench_commands()
    assert callable(importlib.import_module(f"bench.{name}").run)


def test_bench_arguments_parse_to_their_runner() -> None:
    args = cli.parser().parse_args(["bench", "lineproto", "--points", "10"])
    assert (args.target, args.points, args.json) == ("lineproto", 10, None)
    assert callable(args.func)


def test_benchmarks_are_not_loaded_to_start_the_cli() -> None:
    code = (
        "import sys, lifeline.cli; lifeline.cli.parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('bench.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.strip() == "[]"
