"""InfluxQL building: the only place a statement's text is put together. Pure, no I/O.

Quoting, as InfluxDB 1.x's InfluxQL scanner reads it (``influxql/scanner.go``, ``ScanString``): an identifier goes
in double quotes and a string literal in single quotes; inside both, backslash, the quote character and newline are
escaped (``\\\\``, ``\\"`` or ``\\'``, ``\\n``): a raw newline ends the statement with "bad string", any other escape
is "bad escape". Every name (measurement, retention policy, tag, field, alias) goes through ``ident`` and every
tag value through ``string``; times are integers (``<n>ms``), numbers are formatted from ``int``/``float``, and
functions, comparison operators and the fill come from fixed lists. Nothing a caller gives is pasted raw.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Literal, get_args

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "call",
    "compare",
    "create_database",
    "duration",
    "eq",
    "ident",
    "one_of",
    "select",
    "show_field_keys",
    "show_measurements",
    "source",
    "sources",
    "statements",
    "string",
    "time_at",
    "time_range",
    "where",
]

Aggregate = Literal["mean", "median", "min", "max", "first", "last", "sum", "count", "spread"]
AGGREGATES: frozenset[str] = frozenset(get_args(Aggregate))
Operator = Literal["=", "!=", "<", "<=", ">", ">="]
_OPERATORS: frozenset[str] = frozenset(get_args(Operator))

_SECOND = 1000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def ident(name: str) -> str:
    """An identifier in double quotes; backslash, double quote and newline escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def string(value: str) -> str:
    """A string literal in single quotes; backslash, single quote and newline escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def source(measurement: str, retention_policy: str | None = None) -> str:
    """``"rp"."measurement"`` (or just the measurement: the database's default policy)."""
    return (f"{ident(retention_policy)}." if retention_policy else "") + ident(measurement)


def sources(measurements: Sequence[str], retention_policy: str | None = None) -> str:
    """Several measurements of one statement (their series come back one by one)."""
    if not measurements:
        raise ValueError("a statement needs at least one measurement")
    return ",".join(source(m, retention_policy) for m in measurements)


def _number(value: float | int) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(value) if isinstance(value, float) else str(int(value))


def eq(tag: str, value: str) -> str:
    """``"tag" = 'value'`` (InfluxDB answers a tag equality from its index)."""
    return f"{ident(tag)} = {string(value)}"


def one_of(tag: str, values: Collection[str]) -> str:
    """The tag equals one of ``values`` (in their order, repeats left out): OR-ed equalities rather than a regex,
    so ``string`` is the only escaping needed, and InfluxDB answers each from its index."""
    if isinstance(values, str):
        raise TypeError("values must be a collection of strings, not one str")
    terms = [eq(tag, v) for v in dict.fromkeys(values)]
    if not terms:
        raise ValueError(f"one_of({tag!r}) needs at least one value")
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def compare(field: str, op: Operator, value: float | int) -> str:
    """``"field" <op> <number>``."""
    if op not in _OPERATORS:
        raise ValueError(f"operator must be one of {sorted(_OPERATORS)}, got {op!r}")
    return f"{ident(field)} {op} {_number(value)}"


def time_range(start_ms: int | None = None, end_ms: int | None = None) -> list[str]:
    """``time >= start`` and ``time < end`` (ms, integers), the bounds given."""
    terms = []
    if start_ms is not None:
        terms.append(f"time >= {int(start_ms)}ms")
    if end_ms is not None:
        terms.append(f"time < {int(end_ms)}ms")
    return terms


def time_at(ts_ms: int) -> str:
    """``time = <ts>ms``."""
    return f"time = {int(ts_ms)}ms"


def where(terms: Sequence[str]) -> str:
    """`` WHERE a AND b`` of the terms given (built by the functions here), or "" without any."""
    return f" WHERE {' AND '.join(terms)}" if terms else ""


def call(function: Aggregate, field: str, alias: str | None = None) -> str:
    """``fn("field") AS "alias"`` (the alias defaults to the field)."""
    if function not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {sorted(AGGREGATES)}, got {function!r}")
    return f"{function}({ident(field)}) AS {ident(alias if alias is not None else field)}"


def duration(ms: int) -> str:
    """A duration literal: the largest whole unit (``1h``, ``90s``, ``250ms``)."""
    if ms <= 0:
        raise ValueError(f"a duration must be positive, got {ms}")
    for unit, size in (("d", _DAY), ("h", _HOUR), ("m", _MINUTE), ("s", _SECOND)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{int(ms)}ms"


def select(
    columns: Sequence[str] | Literal["*"],
    source_: str,
    terms: Sequence[str] = (),
    *,
    group_by: Sequence[str] | Literal["*"] = (),
    every_ms: int | None = None,
    fill_none: bool = False,
    newest_first: bool = False,
    limit: int | None = None,
) -> str:
    """One SELECT statement. ``columns``: ``"*"``, or expressions from ``call`` / ``ident``; ``source_`` from
    ``source``/``sources``; ``terms`` from ``eq``, ``one_of``, ``compare``, ``time_range``; ``group_by`` tag names
    (quoted here) or ``"*"`` (every tag); ``every_ms``: ``GROUP BY time(...)`` buckets."""
    cols = "*" if columns == "*" else ", ".join(columns)
    if not cols:
        raise ValueError("a statement needs at least one column")
    groups: list[str] = []
    if every_ms is not None:
        groups.append(f"time({duration(every_ms)})")
    if group_by == "*":
        groups.append("*")
    elif group_by:
        groups.append(",".join(ident(tag) for tag in group_by))
    text = f"SELECT {cols} FROM {source_}{where(terms)}"
    if groups:
        text += " GROUP BY " + ", ".join(groups)
    if fill_none:
        text += " fill(none)"
    if newest_first:
        text += " ORDER BY time DESC"
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    return text


def show_field_keys(source_: str) -> str:
    return f"SHOW FIELD KEYS FROM {source_}"


def show_measurements(limit: int = 1) -> str:
    return f"SHOW MEASUREMENTS LIMIT {int(limit)}"


def create_database(name: str) -> str:
    return f"CREATE DATABASE {ident(name)}"


def statements(parts: Sequence[str]) -> str:
    """Several statements in one request (their results come back in order)."""
    return "; ".join(parts)
