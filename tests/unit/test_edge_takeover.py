"""An edge's uplink session taken over (issue 24): edge_agent.health.TakeoverWatch tells a takeover from a broker
restart (time is a parameter), and rules/packs/edge.yaml raises and clears its alert on the health point."""

from __future__ import annotations

import pytest

from edge_agent.health import TakeoverWatch, parse_uptime
from infra.mqtt import SESSION_TAKEN_OVER
from rules import PACKS, Engine, load_rules
from telemetry import Sample, Telemetry

STEP_MS = 10_000  # the health interval


@pytest.mark.parametrize(
    ("code", "by_broker", "uptime_s", "down_s", "taken"),
    [
        pytest.param(SESSION_TAKEN_OVER, True, None, 1.0, True, id="reason-0x8E"),
        pytest.param(None, True, 3600, 2.0, True, id="closed-by-a-broker-that-stayed-up"),
        pytest.param(None, True, 1, 5.0, False, id="closed-by-a-broker-that-restarted"),
        pytest.param(None, False, 3600, 2.0, False, id="lost-not-closed-by-the-broker"),  # a reset or a time-out
        pytest.param(0x8B, True, 0, 2.0, False, id="server-shutting-down"),
    ],
)
def test_a_takeover_is_told_from_a_restart(
    code: int | None, by_broker: bool, uptime_s: int | None, down_s: float, taken: bool
) -> None:
    watch = TakeoverWatch("broker:8883")
    now = 1000.0
    known = watch.connection_ended(now, code, by_broker)
    if uptime_s is not None:
        known = watch.broker_uptime(uptime_s, now + down_s) or known
    assert known is taken
    assert watch.count == int(taken)
    assert watch.restarts == int(uptime_s is not None and not taken and by_broker)
    assert bool(watch.problem(now + down_s)) is taken


def test_the_uptime_judges_only_the_connection_that_ended_before_it() -> None:
    watch = TakeoverWatch("broker:8883")
    assert watch.broker_uptime(3600, 10.0) is False  # heard at the first connection: nothing ended before
    watch.connection_ended(20.0, None, by_broker=True)
    assert watch.broker_uptime(3600, 21.0) is True
    assert watch.broker_uptime(3601, 22.0) is False  # the next uptime of the same connection says nothing new
    assert watch.count == 1


def test_the_problem_is_held_ten_minutes_after_the_last_takeover() -> None:
    watch = TakeoverWatch("broker:8883")
    watch.connection_ended(0.0, SESSION_TAKEN_OVER, True)
    watch.connection_ended(100.0, SESSION_TAKEN_OVER, True)
    assert "taken over 2 times this run, last 499 s ago" in watch.problem(599.0)
    assert watch.problem(699.0) != ""
    assert watch.problem(700.0) == ""


@pytest.mark.parametrize(
    ("payload", "seconds"),
    [(b"1234 seconds", 1234), (b"0 seconds", 0), (b"soon", None), (b"", None)],
    ids=["seconds", "zero", "words", "empty"],
)
def test_the_brokers_uptime_is_read(payload: bytes, seconds: int | None) -> None:
    assert parse_uptime(payload) == seconds


def _health(ts: int, problem: str) -> Telemetry:
    values: dict[str, float | int | bool | str | None] = {
        "outbox_messages": 0,
        "uplink_sessions_taken_over": 1 if problem else 0,
        "uplink_takeover_problem": problem,
    }
    return Telemetry(
        site="s1",
        device="edge",
        profile="edge_agent",
        measurement="edge_agent",
        seq=ts // STEP_MS + 1,
        run="r1",
        samples=[Sample(ts=ts, values=values)],
    )


def test_the_takeover_rule_raises_at_once_and_clears_with_the_problem() -> None:
    (rule,) = [r for r in load_rules([PACKS / "edge.yaml"]) if r.id == "edge.uplink.session_taken_over"]
    engine = Engine([rule])
    said = "uplink session taken over 1 times this run, last 3 s ago (broker b:8883): another client connected"
    problems = ["", said, said, ""]
    got = [
        (t.ts // STEP_MS, t.severity) for i, p in enumerate(problems) for t in engine.observe(_health(i * STEP_MS, p))
    ]
    assert got == [(1, "critical"), (3, None)]
