"""A stored reading is never overwritten with another value. Pure: the bridge asks, InfluxDB is read elsewhere.

InfluxDB keeps one value per (series, field, time): a line with the time of a stored point replaces its fields. An
honest redelivery (the broker's after a reconnect, the edge's after a lost ``Stored``) carries the same values and is
welcome; a line with the same device, point and time and another value (a stolen edge account resending a reading
as 0.1 -> 55) is refused and dead-lettered.

No read per write. Per series (measurement and tags: one device's readings), the guard keeps:

- ``mark``: the newest sample time this bridge has let through or found stored; a line after it is new (1.x cannot
  have a point there that this bridge did not write). Unknown after a start until one read learns it (lazily: only
  for the series that send something).
- ``recent``: the lines of the last ``per_series`` times let through, so that a redelivery of a recent line is
  judged here (the same line: accepted; another value for a point: refused).

Only a line at or before the mark and not in ``recent`` (an old sample, or any sample before the mark is learnt)
needs InfluxDB: ``CHECK``; the bridge reads all of a batch's checks at once and calls ``checked``. A line is judged
by point: a point (value, ``.q``, ``.reason``) stored at that time must come again unchanged; a point not stored
there yet may be added (one device may send its points at one time in more than one message).

Memory: at most ``max_series`` series, each with ``per_series`` to twice that many entries (a time and its line),
so at most ``max_series * 2 * per_series * (190 + the line's length)`` bytes; measured with tracemalloc, 1,000 series
of 64 entries of a 10-point line (177 characters) take 23 MB (twice that at most). A message whose times are all
after the mark costs one dict update (measured in the bridge: about 1 µs a message of one line, 4 µs of ten).

Several bridges in one shared group each see part of a device's messages: a line after this bridge's mark may be
at a time another bridge stored. ``trust_mark=False`` (more than one bridge) then checks every line not in
``recent`` against InfluxDB (one read a batch).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from storage.schema import QUALITY_SUFFIX, REASON_SUFFIX

__all__ = ["Guard", "Verdict", "conflict", "parse_fields"]

FieldValue = float | int | bool | str


class Verdict(enum.Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"
    CHECK = "check"  # ask InfluxDB what is stored at that time, then ``Guard.checked``


_MIN = -(2**63)


@dataclass(slots=True)
class _Series:
    mark: int | None = None  # None: not learnt since this bridge started
    newest: int = _MIN  # the newest time let through (the mark once learnt is at least this)
    # time -> the line let through at that time, in the order let through (about time order): past twice
    # ``per_series`` entries the older half goes at once (amortised: no bookkeeping per line)
    recent: dict[int, str] = field(default_factory=dict)
    unverified: set[int] = field(default_factory=set)  # let through before InfluxDB was asked: a match is checked


class Guard:
    """What to do with each line of a series (see the module docstring). A line is remembered whole: the bridge
    holds it anyway, and equal lines of one series and time are the same reading."""

    def __init__(self, per_series: int = 64, max_series: int = 100_000, *, trust_mark: bool = True) -> None:
        if per_series < 1 or max_series < 1:
            raise ValueError("per_series and max_series must be at least 1")
        self.per_series = per_series
        self.max_series = max_series
        self.trust_mark = trust_mark
        self._cap = 2 * per_series  # a series holds per_series to twice that many entries
        self._series: dict[str, _Series] = {}

    def __len__(self) -> int:
        return len(self._series)

    def mark(self, series: str) -> int | None:
        s = self._series.get(series)
        return s.mark if s is not None else None

    def needs_mark(self, series: str) -> bool:
        """Whether the series' mark is still to be learnt (``learn``)."""
        s = self._series.get(series)
        return s is None or s.mark is None

    def admit_all(self, series: str, lines: list[str], times: list[int]) -> Sequence[tuple[int, Verdict, str]]:
        """The verdicts on one message's lines (of ``series``, at ``times``) that are not ``ACCEPT``, by index in
        ``lines`` (empty when all are accepted). The common case, every time after the mark, is judged at once."""
        s = self._series.get(series) or self._new(series)
        mark = s.mark
        if self.trust_mark and mark is not None:
            # every remembered time is at or before the mark: times after it are new, and repeat none
            recent = s.recent
            if len(times) == 1:
                if times[0] > mark:
                    recent[times[0]] = lines[0]
                    if len(recent) > self._cap:
                        self._trim(s)
                    s.newest = s.mark = times[0]
                    return ()
            elif min(times) > mark:
                recent.update(zip(times, lines, strict=True))
                if len(recent) > self._cap:
                    self._trim(s)
                s.newest = s.mark = max(times)
                return ()
        elif mark is None and not any(ts in s.recent for ts in times):  # before the mark is learnt: all to check
            s.recent.update(zip(times, lines, strict=True))
            s.unverified.update(times)
            if len(s.recent) > self._cap:
                self._trim(s)
            s.newest = max(s.newest, *times)
            return [(index, Verdict.CHECK, "") for index in range(len(times))]
        out = []
        for index, (line, ts) in enumerate(zip(lines, times, strict=True)):
            verdict, why = self.admit(series, line, ts)
            if verdict is not Verdict.ACCEPT:
                out.append((index, verdict, why))
        return out

    def admit(self, series: str, line: str, ts: int) -> tuple[Verdict, str]:
        """The verdict on one line of ``series`` at ``ts`` and, for ``REFUSE``, the reason. Lines let through (or to
        be checked) are remembered."""
        s = self._series.get(series) or self._new(series)
        known = s.recent.get(ts)
        if known is not None:
            if known != line:
                why = conflict(parse_fields(_fields(known, series)), parse_fields(_fields(line, series)))
                if why:
                    return Verdict.REFUSE, f"would overwrite the reading at {ts}: {why}"
                # other points at the same time: now both are there (kept as one line of both field sets)
                s.recent[ts] = f"{series} {_fields(known, series)},{_fields(line, series)} {ts}"
            return (Verdict.CHECK if ts in s.unverified else Verdict.ACCEPT), ""
        new = self.trust_mark and s.mark is not None and ts > s.mark
        s.recent[ts] = line
        if len(s.recent) > self._cap:
            self._trim(s)
        if ts > s.newest:
            s.newest = ts
            if new:
                s.mark = ts
        if new:
            return Verdict.ACCEPT, ""
        s.unverified.add(ts)
        return Verdict.CHECK, ""

    def checked(self, series: str, line: str, ts: int, stored: Mapping[str, object] | None) -> str:
        """After the check of a line: ``stored`` is the row InfluxDB has at ``ts`` (None: nothing). Returns the
        reason to refuse it ("" to accept); a refused line is forgotten (what is stored stays the reference)."""
        why = conflict(stored, parse_fields(_fields(line, series))) if stored else ""
        reason = f"would overwrite the reading at {ts}: {why}" if why else ""
        s = self._series.get(series)
        if s is None or s.recent.get(ts) != line:
            return reason
        if why:
            del s.recent[ts]
        s.unverified.discard(ts)
        return reason

    def verified(self, series: str, times: Sequence[int]) -> None:
        """InfluxDB holds nothing at ``times``: the lines let through there are no longer to be checked."""
        s = self._series.get(series)
        if s is not None and s.unverified:
            s.unverified.difference_update(times)

    def learn(self, series: str, newest_stored: int | None) -> None:
        """The newest time InfluxDB holds for the series (None: nothing stored); the mark is set once, at the first
        answer: later lines at or before it that ``recent`` does not hold are checked."""
        s = self._series.get(series) or self._new(series)
        if s.mark is not None:
            return
        s.mark = max(s.newest, newest_stored if newest_stored is not None else _MIN)

    def forget(self, series: str, ts: int, line: str) -> None:
        """InfluxDB refused the line for good: it is not stored, so it is no reference for a later one."""
        s = self._series.get(series)
        if s is not None and s.recent.get(ts) == line:
            del s.recent[ts]
            s.unverified.discard(ts)

    def _new(self, series: str) -> _Series:
        if len(self._series) >= self.max_series:
            del self._series[next(iter(self._series))]  # the series first seen longest ago goes (insertion order)
        s = self._series[series] = _Series()
        return s

    def _trim(self, s: _Series) -> None:
        """The newest ``per_series`` entries stay (by the order let through)."""
        kept = list(s.recent.items())[-self.per_series :]
        s.recent = dict(kept)
        if s.unverified:
            s.unverified &= s.recent.keys()


def _fields(line: str, series: str) -> str:
    """The field set of a line of ``series`` (between the series and the time)."""
    return line[len(series) + 1 : line.rfind(" ")]


def _point(name: str) -> str:
    for suffix in (QUALITY_SUFFIX, REASON_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):  # InfluxDB's JSON writes 2.0 as 2
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def conflict(stored: Mapping[str, object] | None, incoming: Mapping[str, FieldValue]) -> str:
    """Why ``incoming`` would change a point ``stored`` holds ("" if it would not). A point is its value, ``.q`` and
    ``.reason``: stored with any of them, it must come again the same; a point not stored may be added."""
    if not stored:
        return ""
    points = {_point(name) for name in incoming}
    for point in sorted(points):
        names = (point, point + QUALITY_SUFFIX, point + REASON_SUFFIX)
        before = [stored.get(n) for n in names]
        if all(v is None for v in before):
            continue
        after = [incoming.get(n) for n in names]
        for name, old, new in zip(names, before, after, strict=True):
            if (old is None) != (new is None) or (old is not None and not _same(old, new)):
                return f"{name} stored {old!r}, received {new!r}"
    return ""


def parse_fields(text: str) -> dict[str, FieldValue]:
    """The field set of a line as ``storage.lineproto`` writes it: keys escape ``,``, ``=`` and space with a
    backslash; string values are double-quoted with ``\\`` and ``"`` escaped; ``123i`` is an integer; ``true`` and
    ``false`` booleans; anything else a float. ValueError for a field set that is not well formed."""
    out: dict[str, FieldValue] = {}
    i, n = 0, len(text)
    while i < n:
        key: list[str] = []
        while i < n and text[i] != "=":
            if text[i] == "\\" and i + 1 < n:
                i += 1
            key.append(text[i])
            i += 1
        if i >= n or not key:
            raise ValueError(f"not a field set: {text[:80]!r}")
        i += 1  # '='
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '\\"':
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise ValueError(f"unterminated string in {text[:80]!r}")
            i += 1  # closing quote
            out["".join(key)] = "".join(value)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            out["".join(key)] = _scalar(text[i:end])
            i = end
        if i < n:
            if text[i] != ",":
                raise ValueError(f"not a field set: {text[:80]!r}")
            i += 1
    return out


def _scalar(raw: str) -> FieldValue:
    if raw in ("true", "t", "T", "True", "TRUE"):
        return True
    if raw in ("false", "f", "F", "False", "FALSE"):
        return False
    try:
        return int(raw[:-1]) if raw.endswith("i") else float(raw)
    except ValueError:
        raise ValueError(f"not a field value: {raw[:80]!r}") from None
