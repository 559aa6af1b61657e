"""Alert rules: YAML rule files validated at load, and a pure streaming evaluator.

- ``load_rules(paths)`` reads rule files and folders (``rules/packs`` ships the standard packs) and raises one
  ``device_profiles.ConfigError`` naming ``FILE:LINE: rule 'ID', field F: reason`` for every problem.
- ``Engine(rules)``: ``observe(msg)`` and ``tick(now_ms)`` return ``Transition``s, only on a change;
  ``state()`` / ``Engine.from_state(rules, data)`` carry the state over a restart.
"""

from __future__ import annotations

from pathlib import Path

from rules.evaluate import AlertState, Engine, Transition
from rules.loader import load_rules, rule_files
from rules.schema import SEVERITY_RANK, Rule, RuleFile, Severity

PACKS = Path(__file__).parent / "packs"

__all__ = [
    "PACKS",
    "SEVERITY_RANK",
    "AlertState",
    "Engine",
    "Rule",
    "RuleFile",
    "Severity",
    "Transition",
    "load_rules",
    "rule_files",
]
