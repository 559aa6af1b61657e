"""``lifeline report``: the safety report of a month from an SQLite alert store named by the API's config, written
to the file asked for in the format its extension names; bad arguments refused with a message."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook

from alerts.lifecycle import Alert, AlertKey, Severity, acknowledge, clear, raise_
from alerts.store import AlertMeta, AlertStore
from lifeline.cli import main
from reports import ReportPeriod

MINUTE = 60_000


@pytest.fixture
def config(tmp_path: Path) -> Path:
    db = tmp_path / "alerts.db"
    store = AlertStore.sqlite(db)
    t = ReportPeriod.parse("day", "2026-10-05").start_ms + 9 * 60 * MINUTE  # 09:00 Beijing
    alert = Alert(AlertKey("gas.lel_high", "factory-1", "gas-7", "lel"))
    raise_(alert, Severity.CRITICAL, 30.0, t)
    acknowledge(alert, "inspector", t + 3 * MINUTE)
    clear(alert, t + 12 * MINUTE)
    with store.begin() as tx:
        tx.save(alert, AlertMeta("LEL high", "safety", "east", "gas_detector"), None)
    store.close()
    path = tmp_path / "api.yaml"
    path.write_text(f"store:\n  url: sqlite:///{db}\nareas:\n  east: [factory-1]\n", encoding="utf-8")
    return path


def test_safety_report_of_an_area_as_xlsx(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "safety.xlsx"
    argv = ["report", "safety", "--period", "month", "--date", "2026-10", "--area", "east", "--out", str(out)]
    assert main([*argv, "--config", str(config)]) == 0
    assert "安全生产报警月报 2026年10月" in capsys.readouterr().out
    wb = load_workbook(io.BytesIO(out.read_bytes()))
    alarms = [tuple(r) for r in wb["alarms"].iter_rows(values_only=True)]
    assert alarms[2] == ("factory-1", "gas-7", "gas.lel_high", "critical", "2026-10-05 09:00", 3.0, 12.0)
    cover = dict(r[:2] for r in wb["报表"].iter_rows(values_only=True) if r and r[0])
    assert cover["范围"] == "区域 east"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--date", "2026-10", "--out", "x.docx"], "--format"),
        (["--date", "2026-10", "--area", "west", "--out", "x.csv"], "--area 'west'"),
        (["--date", "10/2026", "--out", "x.csv"], "date '10/2026'"),
    ],
    ids=["unknown-extension", "unknown-area", "bad-date"],
)
def test_bad_arguments_are_refused(config: Path, extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main(["report", "safety", "--period", "month", "--config", str(config), *extra])
