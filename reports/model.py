"""The report model every builder produces and every renderer reads: a title, the standards and editions used, the
period in Beijing time (Asia/Shanghai), tables of rows and the totals. Plain frozen data, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["BEIJING", "Cell", "Column", "PeriodKind", "Report", "ReportPeriod", "Table", "Total", "beijing_text"]

BEIJING = ZoneInfo("Asia/Shanghai")  # the reporting day of every Chinese environmental standard (HJ 633 §4.2.2)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

Cell = str | int | float | None
PeriodKind = Literal["day", "month"]
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def beijing_text(ms: int, with_time: bool = True) -> str:
    """``ms`` as a Beijing wall-clock text (``YYYY-MM-DD HH:MM`` or the date)."""
    at = datetime.fromtimestamp(ms / 1000, BEIJING)
    return at.strftime("%Y-%m-%d %H:%M") if with_time else at.strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """A natural day or month of Beijing time: ``[start_ms, end_ms)``."""

    kind: PeriodKind
    first_day: date

    @classmethod
    def parse(cls, kind: PeriodKind, text: str) -> ReportPeriod:
        """``day`` with ``YYYY-MM-DD``, ``month`` with ``YYYY-MM`` (or a date in it)."""
        m = _DATE.match(text)
        if m is None:
            raise ValueError(f"date {text!r}: give YYYY-MM-DD (day) or YYYY-MM (month)")
        year, month, day = int(m[1]), int(m[2]), m[3]
        if kind == "day" and day is None:
            raise ValueError(f"date {text!r}: a daily report needs YYYY-MM-DD")
        try:
            first = date(year, month, int(day) if kind == "day" and day else 1)
            if day is not None:
                date(year, month, int(day))  # a month given by one of its dates: the date must exist
        except ValueError as exc:
            raise ValueError(f"date {text!r}: {exc}") from exc
        return cls(kind, first)

    @property
    def last_day(self) -> date:
        if self.kind == "day":
            return self.first_day
        nxt = date(self.first_day.year + self.first_day.month // 12, self.first_day.month % 12 + 1, 1)
        return nxt - timedelta(days=1)

    @property
    def days(self) -> list[date]:
        n = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=i) for i in range(n)]

    @staticmethod
    def day_start_ms(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=BEIJING).timestamp() * 1000)

    @property
    def start_ms(self) -> int:
        return self.day_start_ms(self.first_day)

    @property
    def end_ms(self) -> int:
        return self.day_start_ms(self.last_day + timedelta(days=1))

    @property
    def hours(self) -> int:
        return (self.end_ms - self.start_ms) // HOUR_MS

    @property
    def label(self) -> str:
        if self.kind == "day":
            return self.first_day.strftime("%Y年%m月%d日")
        return self.first_day.strftime("%Y年%m月")

    @property
    def text(self) -> str:
        """The period as printed: its Beijing bounds."""
        return f"{beijing_text(self.start_ms)} – {beijing_text(self.end_ms)} (北京时间 UTC+8)"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str  # the heading printed
    en: str


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # a short key (an XLSX sheet name)
    title: str  # the Chinese heading
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def column(self, key: str) -> list[Cell]:
        """The values of column ``key`` (tests and the bench read them)."""
        i = [c.key for c in self.columns].index(key)
        return [row[i] for row in self.rows]


@dataclass(frozen=True, slots=True)
class Total:
    key: str
    label: str  # Chinese
    value: Cell


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # source | air | water | safety
    title: str  # Chinese
    title_en: str
    standards: tuple[str, ...]  # the standards and editions the figures follow
    period: ReportPeriod
    scope: str  # the sites or areas it covers
    generated_ms: int
    tables: tuple[Table, ...]
    totals: tuple[Total, ...]
    notes: tuple[str, ...] = ()

    def total(self, key: str) -> Cell:
        for t in self.totals:
            if t.key == key:
                return t.value
        raise KeyError(key)

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)
