"""The storage side of the valid means (the maths stays in ``rules._means``): the InfluxQL that reads a period's
minute sums and the stored hourly rows, and the rows that store the means. Pure, no I/O.

Stored as ``<measurement>_hourly`` / ``_daily`` (``storage.schema``) with the source's tags, at the period's start:
``P`` the (rounded) mean and ``P.n`` the count behind it; an invalid period stores ``P.n``, ``P.q = 2`` and
``P.reason`` instead of a value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from storage import influxql as ql
from storage.lineproto import FieldValue, encode_row
from storage.schema import COUNT_SUFFIX, QUALITY_SUFFIX, REASON_SUFFIX

__all__ = ["MeanLike", "count_alias", "means_row", "minute_query", "stored_fields", "stored_query", "sum_alias"]

_BAD = 2  # the wire contract's Quality.BAD code, as the bridge stores it


class MeanLike(Protocol):
    """A period's mean: ``value`` None when the period is invalid (``reason`` says why), ``count`` behind it."""

    @property
    def value(self) -> float | None: ...

    @property
    def count(self) -> int: ...

    @property
    def reason(self) -> str: ...


def sum_alias(point: str, uncertain: bool = False) -> str:
    """The column of ``minute_query``'s answer holding a minute's sum of ``point`` (of its uncertain samples)."""
    return ("u" if uncertain else "") + "s_" + point


def count_alias(point: str, uncertain: bool = False) -> str:
    """The column of ``minute_query``'s answer holding a minute's sample count of ``point``."""
    return ("u" if uncertain else "") + "n_" + point


def minute_query(
    measurement: str,
    points: Sequence[str],
    start_ms: int,
    end_ms: int,
    retention_policy: str | None = None,
    energy: Collection[str] = (),
) -> str:
    """Per source (every tag) and minute of ``[start_ms, end_ms)``: sum and count of each point, and of its
    uncertain samples (to subtract: InfluxQL 1.x cannot select rows whose ``.q`` field is absent, and a bad sample
    has no value to count). The uncertain rows come back as series of their own, told apart by their aliases.
    A point in ``energy`` (a sound level in dB) is summed as its energy ``10^(L/10)``, through a subquery (InfluxQL
    1.x aggregates no expression), under the same aliases."""
    source = ql.source(measurement, retention_policy)
    span = ql.time_range(start_ms, end_ms)

    def sum_count(point: str, uncertain: bool) -> list[str]:
        return [
            ql.call("sum", point, sum_alias(point, uncertain)),
            ql.call("count", point, count_alias(point, uncertain)),
        ]

    def per_minute(columns: list[str], terms: list[str]) -> str:
        return ql.select(columns, source, terms, group_by="*", every_ms=60_000, fill_none=True)

    def energy_per_minute(point: str, uncertain: bool) -> str:
        terms = [*span, ql.compare(point + QUALITY_SUFFIX, "=", 1)] if uncertain else span
        inner = ql.select([f"pow(10, {ql.ident(point)} / 10) AS {ql.ident(_ENERGY)}"], source, terms, group_by="*")
        columns = [
            ql.call("sum", _ENERGY, sum_alias(point, uncertain)),
            ql.call("count", _ENERGY, count_alias(point, uncertain)),
        ]
        return ql.select(columns, f"({inner})", span, group_by="*", every_ms=60_000, fill_none=True)

    plain = [p for p in points if p not in energy]
    out = [per_minute([c for p in plain for c in sum_count(p, False)], span)] if plain else []
    out += [per_minute(sum_count(p, True), [*span, ql.compare(p + QUALITY_SUFFIX, "=", 1)]) for p in plain]
    out += [energy_per_minute(p, uncertain) for p in points if p in energy for uncertain in (False, True)]
    return ql.statements(out)


_ENERGY = "energy"  # the subquery's column of a sound level's energy


def stored_fields(points: Iterable[str]) -> list[str]:
    """The fields of stored means that a daily mean reads: each point's mean and count."""
    return [f for p in points for f in (p, p + COUNT_SUFFIX)]


def stored_query(
    measurement: str, fields: Sequence[str], start_ms: int, end_ms: int, retention_policy: str | None = None
) -> str:
    """The stored hourly (or daily) rows of ``[start_ms, end_ms)``, per source (every tag)."""
    source = ql.source(measurement, retention_policy)
    return ql.select([ql.ident(f) for f in fields], source, ql.time_range(start_ms, end_ms), group_by="*")


def means_row(
    measurement: str,
    tags: Iterable[tuple[str, str]],
    means: Mapping[str, MeanLike],
    ts_ms: int,
    extra: Mapping[str, FieldValue] | None = None,
) -> str:
    """One stored row (line protocol, ms precision): per point (sorted) its count and mean, or its count, bad
    quality and reason; then ``extra`` fields (a noise verdict)."""
    fields: dict[str, FieldValue | None] = {}
    for point, m in sorted(means.items()):
        fields[point + COUNT_SUFFIX] = int(m.count)
        if m.value is not None:
            fields[point] = float(m.value)
        else:
            fields[point + QUALITY_SUFFIX] = _BAD
            fields[point + REASON_SUFFIX] = m.reason
    fields.update(extra or {})
    return encode_row(measurement, tags, fields, ts_ms)
