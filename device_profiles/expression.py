"""Small arithmetic over a sample's points, for values a manual composes from several registers. Pure; no ``eval``.

``total_whole + total_fraction / 1000`` is parsed once with Python's ``ast`` and only these nodes are allowed:
numbers, point names, ``+ - * / // % **``, unary ``+ -``, parentheses, and calls of ``min``, ``max``, ``abs`` and
``round``. Anything else (attributes, subscripts, comparisons, other calls, strings) is refused when the profile
loads, naming what was found. ``**`` takes an exponent of at most 64 in absolute value, so that no expression can
make a number too large to hold; a division by zero is a value that cannot be computed (``ExpressionError``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CALLS: dict[str, Callable[..., float]] = {"min": min, "max": max, "abs": abs, "round": round}
_MAX_POWER = 64
_MAX_NODES = 200


class ExpressionError(ValueError):
    """An expression that is not allowed, or a value it cannot compute (the message says which)."""


@dataclass(frozen=True, slots=True)
class Expression:
    text: str
    tree: ast.expr
    names: tuple[str, ...]  # the points it reads, in order of first use

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The value for ``values`` (every name in ``names``); ExpressionError when it cannot be computed."""
        try:
            result = _eval(self.tree, values)
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except OverflowError:
            raise ExpressionError("result too large") from None
        except KeyError as exc:
            raise ExpressionError(f"no value for {exc.args[0]!r}") from None
        if not math.isfinite(result):
            raise ExpressionError(f"result {result} is not a finite number")
        return float(result)


@lru_cache(maxsize=1024)
def parse_expression(text: str) -> Expression:
    """The checked expression; ExpressionError names the first thing that is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError) as exc:  # ValueError: a null byte
        raise ExpressionError(f"{text!r} is not an arithmetic expression ({getattr(exc, 'msg', exc)})") from None
    names: list[str] = []
    count = 0
    for node in ast.walk(tree):
        count += 1
        _check(node, names)
    if count > _MAX_NODES:
        raise ExpressionError(f"expression has {count} parts, more than {_MAX_NODES}")
    return Expression(text, tree, tuple(dict.fromkeys(names)))


def _check(node: ast.AST, names: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"{node.value!r} is not a number")
    elif isinstance(node, ast.Name):
        if node.id not in _CALLS:
            names.append(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed (only + - * / // % **)")
        if isinstance(node.op, ast.Pow) and not (
            isinstance(node.right, ast.Constant) and isinstance(node.right.value, int | float)
        ):
            raise ExpressionError("the exponent of ** must be a number")
        if isinstance(node.op, ast.Pow) and abs(node.right.value) > _MAX_POWER:  # type: ignore[attr-defined]
            raise ExpressionError(f"the exponent of ** must lie within ±{_MAX_POWER}")
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _CALLS or node.keywords:
            raise ExpressionError(f"only {', '.join(_CALLS)} may be called, with plain arguments")
        if not node.args:
            raise ExpressionError(f"{node.func.id}() needs an argument")
    elif not isinstance(node, ast.operator | ast.unaryop | ast.Load):
        raise ExpressionError(f"{type(node).__name__} is not allowed in an expression (arithmetic only)")


def _eval(node: ast.expr, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)  # parse_expression let numbers only through
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, values))
    assert isinstance(node, ast.Call)
    assert isinstance(node.func, ast.Name)
    args = [_eval(a, values) for a in node.args]
    if node.func.id == "round" and len(args) == 2:
        return float(round(args[0], int(args[1])))
    return float(_CALLS[node.func.id](*args))
