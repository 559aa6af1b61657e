"""Each renderer produces a valid file that carries the title, the standards, the Beijing period and the rows:
CSV read back with the csv module, XLSX loaded back with openpyxl, the PDF's text extracted with pdftotext."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess

from openpyxl import load_workbook

from reports import AqiDay, Report, ReportPeriod, air_report, render
from reports.render import PDF_MAX_ROWS

MONTH = ReportPeriod.parse("month", "2026-03")
DAY_MS = 86_400_000


def _report() -> Report:
    days = [
        AqiDay("city", "air1", MONTH.start_ms, 45, 1, "优", (), (), "HJ 633-2026"),
        AqiDay("city", "air1", MONTH.start_ms + DAY_MS, 135, 3, "轻度污染", ("pm25",), (), "HJ 633-2026"),
    ]
    return air_report(MONTH, days, scope="区域 east", generated_ms=MONTH.start_ms)


def pdf_text(data: bytes) -> str:
    assert shutil.which("pdftotext"), "pdftotext is missing: scripts/setup installs it (Debian poppler-utils)"
    return subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


def test_csv_has_the_header_totals_and_rows() -> None:
    data = render(_report(), "csv")
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheet programs read UTF-8 Chinese
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["报表", "环境空气质量月报 2026年03月"]
    assert ["执行标准及版本", "HJ 633-2026; GB 3095 (二级)"] in rows
    assert ["统计时段", "2026-03-01 00:00 – 2026-04-01 00:00 (北京时间 UTC+8)"] in rows
    assert ["优良天数比例(%)", "50"] in rows
    assert ["city", "air1", "2026-03-02", "135", "3", "轻度污染", "pm25", "", "HJ 633-2026"] in rows


def test_xlsx_loads_back_with_numbers_as_numbers() -> None:
    wb = load_workbook(io.BytesIO(render(_report(), "xlsx")))
    assert wb.sheetnames == ["报表", "days", "stations"]
    cover = [tuple(r) for r in wb["报表"].iter_rows(values_only=True)]
    assert ("报表", "环境空气质量月报 2026年03月") in cover
    assert ("优良天数比例(%)", 50.0) in cover
    days = [tuple(r) for r in wb["days"].iter_rows(values_only=True)]
    assert days[0][0] == "日空气质量指数(AQI)"
    assert days[1][:4] == ("站点", "监测点", "日期(北京时间)", "AQI")
    assert days[3][3] == 135  # a number, not text


def test_pdf_is_a_pdf_with_the_chinese_heading() -> None:
    data = render(_report(), "pdf")
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    text = pdf_text(data)
    for expected in ("环境空气质量月报", "HJ 633-2026", "北京时间", "轻度污染", "优良天数比例"):
        assert expected in text


def test_pdf_of_a_long_table_is_cut_to_a_printable_size() -> None:
    days = [
        AqiDay("city", f"air{i}", MONTH.start_ms + d * DAY_MS, 60, 2, "良", ("pm10",), (), "HJ 633-2026")
        for i in range(80)
        for d in range(31)
    ]
    report = air_report(MONTH, days, scope="x", generated_ms=0)
    assert len(report.table("days").rows) == 2480 > PDF_MAX_ROWS
    data = render(report, "pdf")
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert f"共 2480 行, 此处列出前 {PDF_MAX_ROWS} 行" in text
