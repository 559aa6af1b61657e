"""YAML loading that remembers where each value stood, so that errors can name the line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration or profile file that is not valid; ``problems`` name file, line, field and reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class YamlDoc:
    path: Path
    data: object
    node: yaml.Node | None

    def line_of(self, loc: Sequence[int | str]) -> int | None:
        """1-based line of the value at ``loc`` (or of the deepest part of it that exists)."""
        node = self.node
        line = None if node is None else node.start_mark.line + 1
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            node, start = found
            line = start.line + 1
        return line


def _child(node: yaml.Node | None, part: int | str) -> tuple[yaml.Node, yaml.Mark] | None:
    """The node at ``part`` below ``node`` and where it starts; a mapping entry starts at its key (a block
    mapping's value only starts on the next line)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value, key.start_mark
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: yaml.Node = node.value[part]
        return item, item.start_mark
    return None


def read_yaml(path: Path) -> YamlDoc:
    """Parse one YAML document; a syntax error becomes a ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}{line}: not valid YAML: {exc.problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    return YamlDoc(path, data, node)


def describe_loc(data: object, loc: Sequence[int | str]) -> str:
    """A field path a person can read: list items are named by their 'name' or 'id' where they have one."""
    out: list[str] = []
    cur = data
    for part in loc:
        if isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur):
            cur = cur[part]
            label = cur.get("name") or cur.get("id") if isinstance(cur, dict) else None
            out.append(f"[{part}]" + (f" ({label})" if label else ""))
            continue
        out.append(("." if out else "") + str(part))
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "".join(out)


def validate(model: type[M], doc: YamlDoc, what: str) -> M:
    """Validate ``doc`` against ``model``; raise ConfigError listing every problem with file, line and field."""
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{doc.path}:1: {what} must be a mapping of keys to values"])
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc, what)) from exc


def validation_problems(exc: ValidationError, doc: YamlDoc, what: str) -> list[str]:
    problems = []
    for err in exc.errors():
        # A model-level validator may point below its model (schema._problem): extend the location with it.
        at = (err.get("ctx") or {}).get("at", ())
        loc = [p for p in (*err["loc"], *at) if isinstance(p, int | str)]
        line = doc.line_of(loc)
        where = f"{doc.path}:{line}" if line else str(doc.path)
        field = describe_loc(doc.data, loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {what}, field {field}: {msg}")
    return problems
