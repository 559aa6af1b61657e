"""A report as a file: CSV (stdlib, UTF-8 with a byte-order mark so spreadsheet programs read the Chinese),
XLSX (openpyxl: a cover sheet, then one sheet per table) and PDF (reportlab, Chinese headings in a CJK font: WenQuanYi
Zen Hei where installed, else reportlab's built-in CID font STSong-Light). Every format carries the title, the
standards and editions used, the period in Beijing time and the totals. Pure: bytes out, no files written."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from reports.model import Cell, Report, beijing_text

__all__ = ["FORMATS", "MEDIA_TYPES", "Format", "render", "render_csv", "render_pdf", "render_xlsx"]

Format = Literal["csv", "xlsx", "pdf"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx", "pdf")
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
CJK_FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # Debian fonts-wqy-zenhei (scripts/setup installs it)
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
)


def _header(report: Report) -> list[tuple[str, str]]:
    return [
        ("报表", report.title),
        ("Report", report.title_en),
        ("执行标准及版本", "; ".join(report.standards)),
        ("统计时段", report.period.text),
        ("范围", report.scope),
        ("生成时间", beijing_text(report.generated_ms) + " (北京时间)"),
    ]


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- CSV -------------------------------------------------------------------------------------------------------
def render_csv(report: Report) -> bytes:
    """The header lines, the totals, then each table under its heading, blank lines between."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for key, value in _header(report):
        w.writerow([key, value])
    w.writerow([])
    w.writerow(["合计", "Totals"])
    for t in report.totals:
        w.writerow([t.label, _text(t.value)])
    for table in report.tables:
        w.writerow([])
        w.writerow([table.title])
        w.writerow([c.zh for c in table.columns])
        w.writerows([_text(v) for v in row] for row in table.rows)
    for note in report.notes:
        w.writerow([])
        w.writerow([note])
    return buf.getvalue().encode("utf-8-sig")


# --- XLSX ------------------------------------------------------------------------------------------------------
def render_xlsx(report: Report) -> bytes:
    """A cover sheet (header, totals, notes) and one sheet per table with its Chinese headings; numbers stay numbers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    cover = wb.create_sheet("报表")
    for key, value in _header(report):
        cover.append([key, value])
    cover.append([])
    cover.append(["合计"])
    for t in report.totals:
        cover.append([t.label, t.value])
    for note in report.notes:
        cover.append([note])
    bold = Font(bold=True)
    for table in report.tables:
        ws = wb.create_sheet(table.name[:31])
        ws.append([table.title])
        from openpyxl.cell import WriteOnlyCell

        heads = []
        for c in table.columns:
            cell = WriteOnlyCell(ws, value=c.zh)
            cell.font = bold
            heads.append(cell)
        ws.append(heads)
        for row in table.rows:
            ws.append(list(row))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- PDF -------------------------------------------------------------------------------------------------------
_FONT = "LifelineCJK"
# reportlab ships no type information: its objects are opaque here
Flowable = Any
ParagraphStyleT = Any


def _cjk_font() -> str:
    """Register the CJK font once; its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    if _FONT in pdfmetrics.getRegisteredFontNames():
        return _FONT
    for path in CJK_FONT_FILES:
        if path.is_file():
            pdfmetrics.registerFont(TTFont(_FONT, str(path), subfontIndex=0))
            return _FONT
    # No TrueType CJK font installed: the built-in CID font (the reader supplies the glyphs)
    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


PDF_MAX_ROWS = 2000  # per table: past it the PDF says how many rows are in the CSV/XLSX instead (a printable size)


def render_pdf(report: Report) -> bytes:
    """A landscape A4 document: title, standards, period, totals, then each table (repeated headings per page)."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    font = _cjk_font()
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=22, spaceAfter=6)
    head = ParagraphStyle("head", fontName=font, fontSize=12, leading=16, spaceBefore=8, spaceAfter=4)
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
    cell = ParagraphStyle("cell", fontName=font, fontSize=7, leading=9)
    story: list[Flowable] = [Paragraph(report.title, title)]
    for key, value in _header(report)[1:]:
        story.append(Paragraph(f"{key}: {_escape(value)}", body))
    story.append(Paragraph("合计", head))
    totals = [[t.label, _text(t.value)] for t in report.totals]
    story.append(_grid(totals, cell, font, widths=[70 * mm, 40 * mm]))
    for table in report.tables:
        story.append(Paragraph(table.title, head))
        rows = table.rows[:PDF_MAX_ROWS]
        data = [[c.zh for c in table.columns], *[[_text(v) for v in row] for row in rows]]
        story.append(_grid(data, cell, font, repeat=1))
        if len(table.rows) > len(rows):
            story.append(Paragraph(f"(共 {len(table.rows)} 行, 此处列出前 {len(rows)} 行; 全部见 CSV/XLSX)", body))
    for note in report.notes:
        story.append(Spacer(1, 4))
        story.append(Paragraph(_escape(note), body))
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=report.title,
        author="Lifeline",
    )
    doc.build(story, onFirstPage=_footer(report, font), onLaterPages=_footer(report, font))
    return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _grid(
    data: list[list[str]], style: ParagraphStyleT, font: str, repeat: int = 0, widths: list[float] | None = None
) -> Flowable:
    from reportlab.lib import colors
    from reportlab.platypus import LongTable, Paragraph, TableStyle

    cells = [[Paragraph(_escape(v), style) for v in row] for row in data]
    t = LongTable(cells, colWidths=widths, repeatRows=repeat, hAlign="LEFT")
    commands: list[tuple[object, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if repeat:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke))
    t.setStyle(TableStyle(commands))
    return t


def _footer(report: Report, font: str) -> Callable[[Any, Any], None]:
    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        page = canvas.getPageNumber()
        canvas.drawString(34, 18, f"{report.title} · {'; '.join(report.standards)} · 第 {page} 页")
        canvas.restoreState()

    return draw


_RENDERERS: dict[Format, Callable[[Report], bytes]] = {"csv": render_csv, "xlsx": render_xlsx, "pdf": render_pdf}


def render(report: Report, fmt: Format) -> bytes:
    """``report`` in ``fmt``."""
    return _RENDERERS[fmt](report)
