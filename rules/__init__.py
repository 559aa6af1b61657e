"""Alert rules: YAML rule files validated at load, and a pure streaming evaluator.

- ``load_rules(paths)`` reads rule files and folders (``rules/packs`` ships the standard packs) and raises one
  ``infra.config_loader.ConfigError`` naming ``FILE:LINE: rule 'ID', field F: reason`` for every problem.
- ``Engine(rules)``: ``observe(msg)``, ``status(st)``, ``agent_state(st)`` and ``tick(now_ms, cut_off=...)`` return
  ``Transition``s, only on a change; ``state()`` / ``Engine.from_state(rules, data)`` carry the state over a restart.
  Silence is judged by sample time against the rest of the site; a whole site gone is one ``agent`` rule alert
  (``rules.evaluate``). The service validates every message first (``device_profiles.validate``, as the bridge).
- ``WindowEvaluator(rules, query)`` judges ``window`` rules (a point's hourly or daily mean, max, min or sample
  count against levels, and no-data checks) from InfluxDB once per period; ``ScheduledRules(evaluator, sink)`` runs
  it on cron jobs (``start()``, ``await stop()``, ``await run_due(now_ms)``).
- A raise or escalation carries its ``Evidence`` (``rules.evidence``): the readings that raised it, or a window
  rule's figures; the alert store keeps them with the alert.
"""

from __future__ import annotations

from pathlib import Path

from rules.evaluate import AlertState, Engine, Transition
from rules.evidence import Evidence, Reading
from rules.loader import load_rules, rule_files
from rules.scheduled import ScheduledRules, WindowEvaluator, period_bounds
from rules.schema import SEVERITY_RANK, AlertKey, Rule, RuleFile, Severity, Window

PACKS = Path(__file__).parent / "packs"

__all__ = [
    "PACKS",
    "SEVERITY_RANK",
    "AlertKey",
    "AlertState",
    "Engine",
    "Evidence",
    "Reading",
    "Rule",
    "RuleFile",
    "ScheduledRules",
    "Severity",
    "Transition",
    "Window",
    "WindowEvaluator",
    "load_rules",
    "period_bounds",
    "rule_files",
]
