"""Rule files: validation names file:line, rule and field; every shipped pack loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config_loader import ConfigError
from rules import PACKS, load_rules

GOOD = """\
rules:
  - id: t.lel
    title: gas
    select: {profile: gas_detector}
    threshold:
      point: lel
      direction: high
      levels:
        - {severity: warning, value: 25}
        - {severity: critical, value: 50}
"""


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "value: 50",
            "value: 20",
            ":10: rule 't.lel', field threshold.levels[1].value: a high level must be above",
            id="levels-unordered",
        ),
        pytest.param(
            "critical, value",
            "warning, value",
            ":10: rule 't.lel', field threshold.levels[1].severity:",
            id="severities-unordered",
        ),
        pytest.param(
            "direction: high", "direction: up", ":7: rule 't.lel', field threshold.direction:", id="bad-direction"
        ),
        pytest.param(
            "direction: high",
            "direction: high\n      deadband: -1",
            ":8: rule 't.lel', field threshold.deadband:",
            id="negative-deadband",
        ),
        pytest.param("id: t.lel", "id: T LEL", ":2: rule 'T LEL', field id:", id="bad-id"),
        pytest.param(
            "{profile: gas_detector}",
            "{site: s1}",
            ":4: rule 't.lel', field select.profile: give at least",
            id="select-too-wide",
        ),
        pytest.param(
            "    threshold:",
            "    severity: warning\n    threshold:",
            ":5: rule 't.lel', field severity:",
            id="severity-on-threshold",
        ),
        pytest.param(
            "    title: gas",
            "    title: gas\n    colour: red",
            ":4: rule 't.lel', field colour: Extra inputs",
            id="unknown-field",
        ),
        pytest.param(
            "    threshold:",
            "    severity: warning\n    frozen: {point: lel, samples: 3}\n    threshold:",
            ":2: rule 't.lel', field id: give exactly one condition",
            id="two-kinds",
        ),
    ],
)
def test_schema_error_names_file_line_rule_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_rules([path])
    assert any(p.startswith(str(path)) and expected in p for p in err.value.problems), err.value.problems


def test_good_file_loads(tmp_path: Path) -> None:
    (rule,) = load_rules([_write(tmp_path, GOOD)])
    assert rule.kind == "threshold"


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yaml")
    _write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError) as err:
        load_rules([tmp_path])
    (problem,) = err.value.problems
    assert problem.startswith(f"{tmp_path / 'b.yaml'}:2: rule 't.lel', field id: duplicate id")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules:\n  - id: [\n")
    with pytest.raises(ConfigError, match=r"r\.yaml:\d+: not valid YAML"):
        load_rules([path])


@pytest.mark.parametrize("pack", sorted(PACKS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_pack_loads(pack: Path) -> None:
    assert load_rules([pack])


def test_all_packs_together_have_unique_ids() -> None:
    rules = load_rules([PACKS])
    assert {"gas.lel", "fire.alarm", "device.silent.modbus", "sluice.high_level_gate_closed"} <= {r.id for r in rules}
