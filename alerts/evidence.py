"""An alert's evidence in the alert store: the readings (or a window rule's figures) that raised or escalated it.

One row per raise or escalation, appended in the transaction that saves the alert's transition (so an alert raised
has its evidence, or neither was stored), never rewritten: ``rules.evidence`` says what is kept. The API's alert
detail shows them (``GET /api/alerts/{id}``: ``evidence``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from alerts import _tables as t
from alerts.lifecycle import Severity
from rules.evidence import Evidence

__all__ = ["EvidenceRow", "add", "rows"]


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    id: int
    alert_id: int
    ts_ms: int  # the transition's time
    severity: Severity  # what it raised or escalated to
    readings: list[dict[str, Any]]  # [{"ts": ms, "values": {point: value}, "quality": {point: q}?}], oldest first
    window: dict[str, Any] | None  # a window rule's figures

    def to_json(self) -> dict[str, Any]:
        return {
            "ts_ms": self.ts_ms,
            "severity": self.severity.value,
            "readings": self.readings,
            "window": self.window,
        }


def add(conn: Connection, alert_id: int, ts_ms: int, severity: Severity, evidence: Evidence) -> None:
    """Append one raise's or escalation's evidence (in the transaction that saves the alert)."""
    window = None if evidence.window is None else orjson.dumps(evidence.window).decode()
    conn.execute(
        insert(t.alert_evidence).values(
            alert_id=alert_id,
            ts_ms=ts_ms,
            severity=severity.rank,
            readings=orjson.dumps(evidence.readings_json()).decode(),
            window=window,
        )
    )


def rows(conn: Connection, alert_id: int) -> list[EvidenceRow]:
    """The alert's evidence, oldest first."""
    c = t.alert_evidence.c
    found = conn.execute(select(t.alert_evidence).where(c.alert_id == alert_id).order_by(c.id))
    return [
        EvidenceRow(
            r.id,
            r.alert_id,
            r.ts_ms,
            Severity.from_rank(r.severity),
            orjson.loads(r.readings),
            None if r.window is None else orjson.loads(r.window),
        )
        for r in found
    ]
