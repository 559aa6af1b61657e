"""Load rule files and folders; every problem in every file is collected into one ConfigError."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from infra.config_loader import ConfigError, YamlDoc, describe_loc, read_yaml
from rules.schema import Rule, RuleFile


def rule_files(paths: Iterable[Path | str]) -> list[Path]:
    """The YAML files named, and those in the folders named (sorted, not recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


def load_rules(paths: Iterable[Path | str]) -> list[Rule]:
    """Every rule of the files and folders ``paths``; raise ConfigError naming file:line, rule and field."""
    problems: list[str] = []
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for path in rule_files(paths):
        try:
            doc = read_yaml(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        loaded = _validate(doc, problems)
        for i, rule in enumerate(loaded):
            where = f"{path}:{doc.line_of(['rules', i, 'id']) or 1}"
            if rule.id in first_seen:
                problems.append(f"{where}: rule {rule.id!r}, field id: duplicate id (first at {first_seen[rule.id]})")
                continue
            first_seen[rule.id] = where
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return rules


def _validate(doc: YamlDoc, problems: list[str]) -> list[Rule]:
    if doc.data is None:
        return []  # an empty file holds no rules
    if not isinstance(doc.data, dict):
        problems.append(f"{doc.path}:1: rule file must be a mapping with a 'rules' list")
        return []
    try:
        return RuleFile.model_validate(doc.data).rules
    except ValidationError as exc:
        problems.extend(_describe(exc, doc))
        return []


def _describe(exc: ValidationError, doc: YamlDoc) -> list[str]:
    out = []
    for err in exc.errors():
        at = (err.get("ctx") or {}).get("at", ())
        loc: list[int | str] = [p for p in (*err["loc"], *at) if isinstance(p, int | str)]
        line = doc.line_of(loc)
        where = f"{doc.path}:{line}" if line else str(doc.path)
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {_who(doc.data, loc)}: {msg}")
    return out


def _who(data: object, loc: Sequence[int | str]) -> str:
    """``rule 'ID', field F`` for a problem inside a rule; ``field F`` for one outside any rule."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(data, dict):
        items = data.get("rules")
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        rid = item.get("id") if isinstance(item, dict) else None
        name = f"rule {rid!r}" if isinstance(rid, str) else f"rule #{loc[1] + 1}"
        return f"{name}, field {describe_loc(item, loc[2:]) or '(the rule)'}"
    return f"field {describe_loc(data, loc) or '(top level)'}"
