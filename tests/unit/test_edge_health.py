"""The edge's health, pure: a failed outbox write classified (a full disk or another write failure), the sentences
the alerts carry, the sensor link's losses counted; and the shipped pack's rules raise and clear on those points."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from edge_agent.health import LinkWatch, OutboxCondition, OutboxFault, classify, quota_problem, write_problem
from rules import PACKS, Engine, load_rules
from telemetry import Sample, Telemetry, Value


def _sqlite_error(message: str, code: int | None = None) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    if code is not None:
        exc.sqlite_errorcode = code  # set by SQLite on a real failure
    return exc


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        pytest.param(_sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), OutboxFault.DISK_FULL, id="full"),
        pytest.param(_sqlite_error("database or disk is full"), OutboxFault.DISK_FULL, id="full-by-message"),
        pytest.param(OSError(errno.ENOSPC, "No space left on device"), OutboxFault.DISK_FULL, id="enospc"),
        pytest.param(OSError(errno.EDQUOT, "Disk quota exceeded"), OutboxFault.DISK_FULL, id="quota-of-the-user"),
        pytest.param(_sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR), OutboxFault.WRITE_FAILED, id="io"),
        pytest.param(_sqlite_error("attempt to write a readonly database"), OutboxFault.WRITE_FAILED, id="readonly"),
        pytest.param(OSError(errno.EIO, "Input/output error"), OutboxFault.WRITE_FAILED, id="eio"),
        pytest.param(ValueError("a bug"), None, id="not-a-storage-error"),
    ],
)
def test_a_failed_write_is_classified(error: BaseException, fault: OutboxFault | None) -> None:
    assert classify(error) is fault


def condition(**changes: object) -> OutboxCondition:
    base: dict[str, object] = {
        "fault": None,
        "error": "",
        "folder": Path("/var/lib/lifeline/edge/s1"),
        "free_bytes": 0,
        "unwritten": 2310,
        "memory_dropped": 0,
        "quota_full": False,
        "messages": 10,
        "max_messages": 200_000,
        "bytes": 4096,
        "max_bytes": 8192,
        "dropped": 0,
    }
    return OutboxCondition(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        pytest.param({}, "", id="nothing-wrong"),
        pytest.param(
            {"fault": OutboxFault.DISK_FULL},
            "outbox disk full: 0 bytes free on /var/lib/lifeline/edge/s1; keeping 2,310 messages in memory",
            id="disk-full",
        ),
        pytest.param(
            {"fault": OutboxFault.DISK_FULL, "free_bytes": 4096, "memory_dropped": 1500},
            "outbox disk full: 4,096 bytes free on /var/lib/lifeline/edge/s1; keeping 2,310 messages in memory "
            "(1,500 oldest dropped over the memory limit)",
            id="disk-full-and-memory-limit",
        ),
        pytest.param(
            {"fault": OutboxFault.WRITE_FAILED, "error": "disk I/O error"},
            "outbox cannot write its file in /var/lib/lifeline/edge/s1 (disk I/O error); keeping 2,310 messages "
            "in memory",
            id="io-error",
        ),
    ],
)
def test_write_problem_says_what_and_how_many(changes: dict[str, object], text: str) -> None:
    assert write_problem(condition(**changes)) == text


def test_quota_problem_says_how_full_and_how_many_went() -> None:
    assert quota_problem(condition()) == ""
    full = condition(quota_full=True, messages=900, max_messages=1000, bytes=8000, dropped=12345)
    assert quota_problem(full) == (
        "outbox quota full: 900 of 1,000 messages, 8,000 of 8,192 bytes; dropping the oldest (12,345 dropped so far)"
    )


def test_link_watch_counts_losses_and_sessions_the_broker_lost() -> None:
    watch = LinkWatch("broker:8883", down_since=0.0)
    assert watch.problem(5.0) == "sensor link down for 5 s (broker broker:8883), lost 0 times this run"
    watch.changed(True, 6.0, session_present=False)  # the first connection: no session to lose yet
    assert (watch.connected, watch.problem(7.0), watch.sessions_lost) == (True, "", 0)
    watch.changed(False, 10.0, session_present=True)
    watch.changed(False, 12.0, session_present=False)  # a failed attempt while down: not another loss
    assert (watch.losses, watch.down_s(40.0)) == (1, 30.0)
    watch.changed(True, 41.0, session_present=True)  # the broker kept the session: nothing lost
    watch.changed(False, 50.0, session_present=True)
    watch.changed(True, 51.0, session_present=False)  # it did not
    assert (watch.losses, watch.sessions_lost, watch.down_s(60.0)) == (2, 1, 0.0)


STEP_MS = 10_000


def health(i: int, **values: Value) -> Telemetry:
    return Telemetry(
        site="s1",
        device="edge",
        profile="edge_agent",
        measurement="edge_agent",
        seq=i + 1,
        run="r1",
        samples=[Sample(ts=i * STEP_MS, values=values)],
    )


DISK_FULL = "outbox disk full: 0 bytes free on /var/lib/lifeline/edge/s1; keeping 2,310 messages in memory"
DOWN = "sensor link down for 70 s (broker b:8883), lost 1 times this run"


@pytest.mark.parametrize(
    ("rule", "point", "texts", "expected"),
    [
        pytest.param(
            "edge.outbox.cannot_write",
            "outbox_write_problem",
            ["", DISK_FULL, DISK_FULL, ""],
            [(1, "critical", DISK_FULL), (3, None, "")],
            id="disk-full-raises-with-its-sentence-and-clears",
        ),
        pytest.param(
            "edge.outbox.quota_full",
            "outbox_quota_problem",
            ["", "outbox quota full: ...", ""],
            [(1, "warning", "outbox quota full: ..."), (2, None, "")],
            id="quota-full",
        ),
        pytest.param(
            "edge.sensor_link.down",
            "sensor_link_problem",
            ["", *[DOWN] * 8, ""],
            [(7, "warning", DOWN), (9, None, "")],
            id="sensor-link-down-for-a-minute",
        ),
        pytest.param("edge.sensor_link.down", "sensor_link_problem", ["", DOWN, DOWN, ""], [], id="a-short-blip"),
    ],
)
def test_edge_pack_raises_on_the_health_sentences(
    rule: str, point: str, texts: list[str], expected: list[tuple[int, str | None, str]]
) -> None:
    (found,) = [r for r in load_rules([PACKS / "edge.yaml"]) if r.id == rule]
    engine = Engine([found])
    got = []
    for i, text in enumerate(texts):
        got += [(t.ts // STEP_MS, t.severity, t.value) for t in engine.observe(health(i, **{point: text}))]
    assert got == expected


def test_session_lost_rule_raises_when_the_count_grows() -> None:
    (rule,) = [r for r in load_rules([PACKS / "edge.yaml"]) if r.id == "edge.sensor_link.session_lost"]
    engine = Engine([rule])
    got = []
    for i, n in enumerate([0, 0, 1, 1]):
        got += [(t.ts // STEP_MS, t.severity) for t in engine.observe(health(i, sensor_link_sessions_lost=n))]
    assert got == [(2, "warning")]
