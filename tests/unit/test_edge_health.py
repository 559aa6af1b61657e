"""The edge's health, pure: a failed outbox write classified (a full disk or another write failure), the sentences
the alerts carry, the sensor link's losses counted; and the shipped pack's rules raise and clear on those points."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from edge_agent import EdgeAgent, EdgeConfig, build_site
from edge_agent import agent as agent_module
from edge_agent.health import (
    LinkWatch,
    OutboxCondition,
    OutboxFault,
    OutboxFaultLatch,
    classify,
    quota_problem,
    write_problem,
)
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


FULL, FAILED = OutboxFault.DISK_FULL, OutboxFault.WRITE_FAILED
MIB = 1 << 20


def test_a_failure_between_two_reports_is_in_the_next_report_though_writes_succeeded_since() -> None:
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=10.0)
    assert latch.report(0.0, 5 * MIB) is None
    latch.failed(FULL, "database or disk is full", 3.0)
    assert latch.fault is FULL  # raised at once (the metric)
    latch.written()  # SQLite wrote into pages it freed: the disk is no less full
    latch.written()
    assert latch.report(10.0, 5 * MIB) is FULL
    assert latch.error == "database or disk is full"


def test_disk_full_wins_over_other_failures_since_the_last_report() -> None:
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=10.0)
    latch.failed(FULL, "database or disk is full", 1.0)
    latch.failed(FAILED, "disk I/O error", 2.0)
    assert latch.fault is FULL
    assert latch.report(10.0, 0) is FULL
    assert latch.error == "database or disk is full"
    latch.failed(FAILED, "disk I/O error", 12.0)
    assert latch.report(20.0, 5 * MIB) is FAILED
    assert latch.error == "disk I/O error"


def test_the_fault_holds_while_the_disk_is_short_though_every_write_succeeds() -> None:
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=10.0)
    latch.failed(FULL, "database or disk is full", 1.0)
    latch.written()
    assert latch.report(10.0, 0) is FULL
    for now in (20.0, 30.0, 40.0):
        latch.written()
        assert latch.report(now, 0) is FULL
    latch.written()
    assert latch.report(50.0, MIB - 1) is FULL
    assert latch.report(60.0, MIB) is None  # space back, writes good, no failure for a report interval
    assert latch.fault is None
    assert latch.error == ""


def test_the_fault_clears_only_a_report_interval_after_the_last_failure() -> None:
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=10.0)
    latch.failed(FULL, "database or disk is full", 9.5)
    latch.written()
    assert latch.report(10.0, 5 * MIB) is FULL  # latched
    assert latch.report(15.0, 5 * MIB) is FULL  # an early report: not a full interval since the failure
    assert latch.report(19.5, 5 * MIB) is None


def test_the_fault_holds_while_the_last_write_failed() -> None:
    """A report between two retries (a report interval shorter than the writer's retry) sees no new failure, but the
    last write failed: still faulty, whatever the free space says."""
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=0.3)
    latch.failed(FAILED, "attempt to write a readonly database", 0.0)
    assert latch.report(0.3, 5 * MIB) is FAILED
    assert latch.report(0.6, 5 * MIB) is FAILED
    assert latch.report(0.9, 5 * MIB) is FAILED
    latch.written()
    assert latch.report(1.2, 5 * MIB) is None


def test_unknown_free_space_does_not_hold_the_fault() -> None:
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=1.0)
    latch.failed(FULL, "database or disk is full", 0.0)
    latch.written()
    assert latch.report(1.0, None) is FULL
    assert latch.report(2.0, None) is None


def test_a_disk_short_of_space_is_full_before_any_write_fails() -> None:
    """Acknowledged rows free pages that SQLite reuses: at 0 bytes free the writes may all succeed for a while."""
    latch = OutboxFaultLatch(min_free_bytes=MIB, hold_s=1.0)
    latch.written()
    assert latch.report(1.0, 5 * MIB) is None
    assert latch.report(2.0, MIB - 1) is FULL
    assert latch.error == f"{MIB - 1:,} bytes free, under {MIB:,}"
    assert latch.report(3.0, 0) is FULL
    assert latch.report(4.0, MIB) is None
    assert latch.report(5.0, None) is None  # unknown: no guess


class StepClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        return 1_780_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now


def test_the_agents_health_says_disk_full_while_the_disk_stays_full_though_writes_succeed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edge's real path: a write fails for lack of space, the next one succeeds into freed pages at 0 bytes
    free; every health report until the space is back says "disk full" (telemetry and metric), then it clears."""
    config = EdgeConfig.model_validate(
        {
            "site": "s1",
            "state_dir": str(tmp_path),
            "publish": {"health_interval_s": 2.0, "outbox_min_free_bytes": 4096},
            "devices": [{"id": "gas-1", "profile": "gas_detector"}],
        }
    )
    clock = StepClock()
    a = EdgeAgent(build_site(config), clock=clock)
    free = {"bytes": 10 * 4096}
    monkeypatch.setattr(agent_module, "free_bytes", lambda folder: free["bytes"])
    full = _sqlite_error("database or disk is full", sqlite3.SQLITE_FULL)

    def report() -> tuple[object, object, object]:
        values = a.health_values(int(clock.time() * 1000))
        disk_full = 'lifeline_edge_outbox_disk_full{site="s1"} 1' in a.metrics_text()
        return values["outbox_fault"], values["outbox_write_problem"], disk_full

    assert report() == ("", "", False)
    clock.now += 0.5
    free["bytes"] = 0
    a.writer._failed(OutboxFault.DISK_FULL, full)
    assert a.writer.failing
    a.writer._succeeded()  # the next write went in, into pages SQLite freed: 0 bytes free all along
    assert not a.writer.failing
    clock.now += 1.5
    fault, text, metric = report()
    assert (fault, metric) == ("disk_full", True)
    assert text == "outbox disk full: 0 bytes free on " + str(tmp_path) + "; keeping 0 messages in memory"
    for _ in range(3):  # writes keep succeeding, the disk stays full: so does the fault
        clock.now += 2.0
        a.writer._succeeded()
        assert report()[0] == "disk_full"
    free["bytes"] = 10 * 4096
    clock.now += 2.0
    assert report() == ("", "", False)
