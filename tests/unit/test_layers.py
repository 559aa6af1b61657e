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
    alerts           alert lifecycle, store, notification     + rules (the rule and transition types it alerts on)
    api              HTTP API and console                     + alerts (the store the rules service writes),
                                                                rules (the domain standards it computes with)
    lifeline, bench  composition root, benchmarks            anything

A failure names FILE:LINE of each forbidden import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = {"telemetry", "infra", "device_profiles"}
ALLOWED: dict[str, set[str]] = {
    "telemetry": set(),
    "infra": set(),
    "storage": {"telemetry", "infra"},
    "device_profiles": {"telemetry", "infra"},
    "simulators": BASE,
    "edge_agent": BASE,
    "broker_bridge": BASE | {"storage"},
    "rules": BASE | {"storage"},
    "alerts": BASE | {"rules"},
    "api": BASE | {"alerts", "rules", "storage"},
}
FIRST_PARTY = set(ALLOWED) | {"lifeline", "bench", "testing"}


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def forbidden_imports() -> list[str]:
    problems: list[str] = []
    for package, allowed in sorted(ALLOWED.items()):
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imported(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                top = module.split(".")[0]
                if top in FIRST_PARTY and top != package and top not in allowed:
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {module}")
    return problems


def test_no_service_imports_a_sibling() -> None:
    problems = forbidden_imports()
    assert not problems, "forbidden imports (see tests/unit/test_layers.py for the layering):\n" + "\n".join(problems)


def test_the_check_sees_an_import_inside_a_function() -> None:
    tree = ast.parse("def f():\n    from edge_agent.config import load_site\n")
    assert imported(tree) == [(2, "edge_agent.config")]


def test_every_package_is_placed() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= FIRST_PARTY, f"place these packages in the layering: {sorted(packages - FIRST_PARTY)}"
