"""Reports and exports of the environment bureau and the safety inspectors: pure builders over the rows the rules
engine stores (valid means, daily AQI, daily water class) and the alert store's histories, a typed report model, and
renderers to CSV, XLSX and PDF. Reading the rows (``reports.read``) is the only I/O, and it goes through ``storage``
and ``alerts.store``.

Public API:
    ReportPeriod                      a Beijing-time natural day or month (``ReportPeriod.parse("month", "2026-03")``)
    Report, Table, Column, Total      the report model (title, standards and editions, period, tables, totals)
    MeanRow, AqiDay, WaterDay,        the input rows
    AlarmRecord, StateStep
    source_report                     per pollution source: valid means and flags, exceedances against the permit,
                                      emitted totals, data capture (SourceReportBuilder: fed a day at a time)
    air_report                        daily AQI, category, primary pollutant, days per category, good days (%)
    water_report                      daily class against the target class, days on target (%)
    safety_report                     alarms per enterprise and detector, time to acknowledge and to close
    render, Format, FORMATS           a report as csv | xlsx | pdf bytes (``MEDIA_TYPES`` for HTTP)
    KINDS                             the report kinds: source, air, water, safety
"""

from __future__ import annotations

from reports.air import air_report
from reports.model import BEIJING, Cell, Column, Report, ReportPeriod, Table, Total
from reports.render import FORMATS, MEDIA_TYPES, Format, render
from reports.rows import AlarmRecord, AqiDay, MeanRow, StateStep, WaterDay
from reports.safety import safety_report
from reports.source import SourceReportBuilder, source_report
from reports.water import water_report

__all__ = [
    "BEIJING",
    "FORMATS",
    "KINDS",
    "MEDIA_TYPES",
    "AlarmRecord",
    "AqiDay",
    "Cell",
    "Column",
    "Format",
    "MeanRow",
    "Report",
    "ReportPeriod",
    "SourceReportBuilder",
    "StateStep",
    "Table",
    "Total",
    "WaterDay",
    "air_report",
    "render",
    "safety_report",
    "source_report",
    "water_report",
]

KINDS = ("source", "air", "water", "safety")
