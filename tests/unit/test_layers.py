"""The layering of the packages, checked on their imports (every ``import`` and ``from … import``, also inside
functions). A service never imports a sibling service; services meet through MQTT topics, InfluxDB and the alert
store, and share code only through the packages below them:

    telemetry        the wire contract                       imports no first-party package
    infra            shared infrastructure (config loading,  imports no first-party package
                     clock, metrics, MQTT clients, InfluxDB
                     connection and reader, storage schema)
    device_profiles  profile schema and catalogue            telemetry, infra
    simulators, edge_agent, broker_bridge, rules
                     services                                 telemetry, infra, device_profiles
    simulators       (also)                                   + rules (the standards its devices behave by: the
                                                                gas table's limits and set points)
    alerts           alert lifecycle, store, notification     + rules (the rule and transition types it alerts on)
    reports          report builders and renderers            telemetry, infra, storage, rules (the standards),
                                                                alerts (the store, for safety reports)
    api              HTTP API and console                     + alerts (the store the rules service writes),
                                                                rules (the domain standards it computes with),
                                                                reports (the exports it serves)
    lifeline         composition root, the CLI               every product package
    testing          the test and bench harness              + lifeline (the server runners it builds on)
    bench            benchmarks                              + testing
    tests            the suites                              anything

The product (every package but testing, bench and tests) never imports the harness: ``lifeline bench`` is found
through an entry point (``lifeline.commands`` in pyproject.toml), not imported. And no package imports another that
imports it back, through any chain (a general cycle check over the package import graph).

A failure names FILE:LINE of each forbidden import, or the packages of each cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Set
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = {"telemetry", "infra", "device_profiles"}
ALLOWED: dict[str, set[str]] = {
    "telemetry": set(),
    "infra": set(),
    "storage": {"telemetry", "infra"},
    "device_profiles": {"telemetry", "infra"},
    "simulators": BASE | {"rules"},
    "edge_agent": BASE,
    "broker_bridge": BASE | {"storage"},
    "rules": BASE | {"storage"},
    "alerts": BASE | {"rules"},
    "reports": {"telemetry", "infra", "storage", "rules", "alerts"},
    "api": BASE | {"alerts", "rules", "storage", "reports"},
}
PRODUCT = set(ALLOWED) | {"lifeline"}
ALLOWED["lifeline"] = PRODUCT - {"lifeline"}
ALLOWED["testing"] = set(PRODUCT)
ALLOWED["bench"] = PRODUCT | {"testing"}
HARNESS = {"testing", "bench"}
FIRST_PARTY = PRODUCT | HARNESS | {"tests"}


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def first_party_imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, module) of every import of another first-party package in ``package``'s files."""
    out: list[tuple[str, int, str]] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            top = module.split(".")[0]
            if top in FIRST_PARTY and top != package:
                out.append((str(path.relative_to(ROOT)), line, module))
    return out


def forbidden_imports() -> list[str]:
    problems: list[str] = []
    for package, allowed in sorted(ALLOWED.items()):
        for path, line, module in first_party_imports(package):
            if module.split(".")[0] not in allowed:
                problems.append(f"{path}:{line}: {package} imports {module}")
    return problems


def import_graph() -> dict[str, set[str]]:
    """Package -> the first-party packages its files import."""
    return {p: {m.split(".")[0] for _, _, m in first_party_imports(p)} for p in sorted(FIRST_PARTY)}


def cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: each strongly connected set of two or more packages, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_service_imports_a_sibling() -> None:
    problems = forbidden_imports()
    assert not problems, "forbidden imports (see tests/unit/test_layers.py for the layering):\n" + "\n".join(problems)


def test_the_product_never_imports_the_harness() -> None:
    harness = [
        f"{path}:{line}: {package} imports {module}"
        for package in sorted(PRODUCT)
        for path, line, module in first_party_imports(package)
        if module.split(".")[0] in HARNESS | {"tests"}
    ]
    assert not harness, "product code imports the test or bench harness:\n" + "\n".join(harness)


def test_no_import_cycle_between_packages() -> None:
    found = cycles(import_graph())
    assert not found, f"import cycles between packages: {found}"


def test_the_harness_is_above_the_product() -> None:
    graph = import_graph()
    assert "testing" in graph["bench"] or "testing" in graph["tests"]  # the check sees the harness's users
    assert "lifeline" in graph["testing"]  # it builds on the product's runners


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
        ({"lifeline": {"bench"}, "bench": {"testing"}, "testing": {"lifeline"}}, [["bench", "lifeline", "testing"]]),
    ],
    ids=["chain", "pair", "triangle-with-a-tail", "two-cycles", "lifeline-bench-through-testing"],
)
def test_the_cycle_check_finds_cycles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_the_check_sees_an_import_inside_a_function() -> None:
    tree = ast.parse("def f():\n    from edge_agent.config import load_site\n")
    assert imported(tree) == [(2, "edge_agent.config")]


def test_every_package_is_placed() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages <= FIRST_PARTY, f"place these packages in the layering: {sorted(packages - FIRST_PARTY)}"
