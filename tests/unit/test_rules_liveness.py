"""No false "no data": silence is judged by sample time, a whole site gone quiet is one "agent lost", and nothing is
judged by the wall clock while the engine itself is cut off or a site drains its backlog. Time is a parameter."""

from __future__ import annotations

from typing import Any

import pytest

from rules import Engine, Rule, RuleFile, Transition
from telemetry.models import AgentState, Telemetry

S = 1000
T0 = 1_760_000_000_000
DEVICES = ("d1", "d2", "d3")

RULES: list[Rule] = RuleFile.model_validate(
    {
        "rules": [
            {
                "id": "silent",
                "title": "Modbus device sends no data",
                "select": {"profile": "p"},
                "severity": "warning",
                "deadman": {"intervals": 5, "interval_s": 1},
            },
            {
                "id": "agent.lost",
                "title": "Edge agent lost",
                "select": {"device": "agent"},
                "severity": "critical",
                "agent": {"timeout_s": 60},
            },
        ]
    }
).rules


def msg(device: str, ts: int, site: str = "s1") -> Telemetry:
    return Telemetry.model_validate(
        {
            "site": site,
            "device": device,
            "profile": "p",
            "measurement": "m",
            "seq": 0,
            "samples": [{"ts": ts, "values": {"x": 1.0}}],
        }
    )


def agent(online: bool, ts: int, reason: str = "") -> AgentState:
    return AgentState(site="s1", agent="edge-s1", online=online, ts=ts, reason=reason, devices=list(DEVICES))


def poll(engine: Engine, ts: int, received: int | None = None, devices: tuple[str, ...] = DEVICES) -> list[Transition]:
    """One poll of the site's devices sampled at ``ts`` and received at ``received`` (default: at once)."""
    out: list[Transition] = []
    for device in devices:
        out += engine.observe(msg(device, ts), received if received is not None else ts + 50)
    return out


def keys(transitions: list[Transition]) -> list[tuple[str, str, Any, int]]:
    return [(t.rule, t.device, t.severity, t.ts) for t in transitions]


@pytest.mark.parametrize("outage_s", [20, 40, 120], ids=["outage-20s", "outage-40s", "outage-120s"])
def test_a_broker_outage_whose_backlog_arrives_afterwards_raises_nothing(outage_s: int) -> None:
    """The edge kept polling and buffering through the outage; the engine was cut off (its link down, then the
    reconnect grace), and the backlog arrives in order afterwards: no device was silent, no agent was lost."""
    engine = Engine(RULES)
    engine.agent_state(agent(True, T0 - S))
    out: list[Transition] = []
    for t in range(0, 30):  # normal operation, ticks every second
        out += poll(engine, T0 + t * S)
        out += engine.tick(T0 + t * S + 100)
    down, up = T0 + 30 * S, T0 + (30 + outage_s) * S
    for now in range(down, up, S):  # the engine's link is down: nothing arrives, ticks say cut off
        out += engine.tick(now, cut_off=True)
    for i, ts in enumerate(range(down, up + 30 * S, S)):  # the backlog drains at 10 polls a second, then live
        received = up + i * 100
        out += poll(engine, ts, received=max(received, ts + 50))
        out += engine.tick(max(received, ts + 50), cut_off=received - up < 30 * S)
    for t in range(0, 120):  # long after: live
        now = up + 30 * S + t * S
        out += poll(engine, now)
        out += engine.tick(now + 100)
    assert keys(out) == []
    assert engine.active() == {}


def test_the_engine_cut_off_judges_no_site_lost_however_long() -> None:
    engine = Engine(RULES)
    engine.agent_state(agent(True, T0))
    poll(engine, T0)
    assert engine.tick(T0 + 3_600 * S, cut_off=True) == []


def test_a_site_draining_its_backlog_is_not_lost() -> None:
    """Messages arrive now with samples far behind the wall clock: the site is being drained, not lost."""
    engine = Engine(RULES, max_lag_ms=10 * S)
    engine.agent_state(agent(True, T0 - 10 * S))
    now = T0 + 3_600 * S
    poll(engine, T0, received=now)
    assert engine.tick(now + 5 * S) == []  # within max_lag of the last arrival: draining
    assert engine.tick(now + 11 * S) == []  # a whole timeout from the end of the engine's own cut-off (now + 5 s)
    (lost,) = engine.tick(now + 65 * S)  # then nothing more arrived: lost, dated by the samples' time
    assert (lost.rule, lost.device, lost.severity, lost.ts) == ("agent.lost", "agent", "critical", T0 + 60 * S)


def test_after_the_engines_own_outage_every_site_gets_a_whole_timeout_to_be_heard_again() -> None:
    """The edges reconnect with their own backoff, some later than the engine: not lost meanwhile."""
    engine = Engine(RULES)
    engine.agent_state(agent(True, T0 - 10 * S))
    poll(engine, T0)
    assert engine.tick(T0 + 120 * S, cut_off=True) == []  # the engine's link was down for two minutes
    assert engine.tick(T0 + 150 * S) == []  # connected, grace over: the site's edge is still reconnecting
    assert engine.tick(T0 + 209 * S) == []
    (lost,) = engine.tick(T0 + 210 * S)  # a whole timeout since the engine was live again, and not a sample
    assert lost.rule == "agent.lost"


def test_a_whole_site_gone_quiet_is_one_agent_lost_alert_not_one_per_device() -> None:
    engine = Engine(RULES)
    engine.agent_state(agent(True, T0 - 10 * S))
    out: list[Transition] = []
    for t in range(10):
        out += poll(engine, T0 + t * S)
    for now in range(T0 + 10 * S, T0 + 120 * S, S):
        out += engine.tick(now)
    assert keys(out) == [("agent.lost", "agent", "critical", T0 + 69 * S)]
    assert "nothing heard from any device of the site" in out[0].reason
    # the agent is back: its samples clear it, dated after the raise
    back = poll(engine, T0 + 200 * S)
    assert keys(back) == [("agent.lost", "agent", None, T0 + 200 * S)]


def test_the_agents_death_raises_one_alert_and_holds_the_devices_deadman_until_its_birth() -> None:
    engine = Engine(RULES)
    for t in range(10):
        poll(engine, T0 + t * S)
    # the will (its ts: when the agent connected), arrived at 10 s; believed once no birth followed for 30 s
    assert engine.agent_state(agent(False, T0 - 3_600 * S, "connection lost"), T0 + 10 * S) == []
    assert engine.tick(T0 + 39 * S) == []
    assert engine.tick(T0 + 45 * S, cut_off=True) == []  # the engine could not have seen a birth: held
    (lost,) = engine.tick(T0 + 45 * S)
    assert (lost.rule, lost.device, lost.severity) == ("agent.lost", "agent", "critical")
    assert lost.ts == T0 + 9 * S  # no earlier than its last sample
    assert "agent edge-s1 is gone (connection lost)" in lost.reason
    # its backlog's last messages (one device only) come late: the others fell behind, yet nothing per device
    assert poll(engine, T0 + 20 * S, devices=("d1",)) == []
    assert engine.tick(T0 + 300 * S) == []
    assert engine.active() == {("agent.lost", "s1", "agent", ""): "critical"}
    (back,) = engine.agent_state(agent(True, T0 + 400 * S))
    assert (back.rule, back.severity, back.ts) == ("agent.lost", None, T0 + 400 * S)
    assert back.ts >= lost.ts


def test_one_device_silent_while_its_site_speaks_is_reported_once_and_its_clear_is_never_dated_before() -> None:
    engine = Engine(RULES)
    out: list[Transition] = []
    for t in range(20):
        out += poll(engine, T0 + t * S, devices=("d1", "d2") if t >= 5 else DEVICES)
        out += engine.tick(T0 + t * S + 100)
    assert keys(out) == [("silent", "d3", "warning", T0 + 9 * S)]  # its last sample at 4 s, silent 5 s later
    # a late sample of d3 (sampled at 6 s, delivered now) clears it: dated at the raise, not before
    assert keys(engine.observe(msg("d3", T0 + 6 * S), T0 + 21 * S)) == [("silent", "d3", None, T0 + 9 * S)]


def test_liveness_survives_a_restart_of_the_engine() -> None:
    engine = Engine(RULES)
    poll(engine, T0)
    engine.agent_state(agent(False, T0))
    assert len(engine.tick(T0 + 30 * S)) == 1
    restarted = Engine.from_state(RULES, engine.state())
    assert restarted.active() == engine.active() == {("agent.lost", "s1", "agent", ""): "critical"}
    assert restarted.tick(T0 + 600 * S) == []
    assert [t.severity for t in restarted.agent_state(agent(True, T0 + 700 * S))] == [None]


def test_a_site_without_an_agent_is_never_judged_lost_by_silence() -> None:
    """An HJ 212 ingest's stations may push hourly: no agent, so no agent lost; each device has its own rules."""
    engine = Engine(RULES)
    poll(engine, T0)
    assert engine.tick(T0 + 3_600 * S) == []


def test_a_connection_lost_and_taken_up_again_at_once_raises_nothing() -> None:
    """Measured under lifeline up: a last will, and the agent's birth a second later."""
    engine = Engine(RULES)
    poll(engine, T0)
    assert engine.agent_state(agent(False, T0 - 60 * S, "connection lost"), T0 + S) == []
    assert engine.tick(T0 + 2 * S) == []
    assert engine.agent_state(agent(True, T0 + 2 * S), T0 + 2 * S) == []
    assert engine.tick(T0 + 600 * S, cut_off=True) == []
    assert engine.active() == {}


def test_a_checkpoint_of_the_previous_release_still_loads() -> None:
    old = {
        "version": 1,
        "profiles": [["s1", "d1", "p"]],
        "alerts": [
            {"rule": "silent", "site": "s1", "device": "d1", "point": "", "active": "warning", "last_ts": T0}
            | {"heard_ms": T0 + 50}  # the receive time it judged by
        ],
    }
    engine = Engine.from_state(RULES, old)
    assert engine.active() == {("silent", "s1", "d1", ""): "warning"}
    assert [t.severity for t in engine.observe(msg("d1", T0 + S))] == [None]


@pytest.mark.parametrize(
    ("select", "message"),
    [
        ({"device": "agent", "profile": "p"}, "selects device 'agent'"),
        ({"device": "gate-1"}, "selects device 'agent'"),
    ],
)
def test_an_agent_rule_selects_the_agent_only(select: dict[str, Any], message: str) -> None:
    rule = {"id": "a", "title": "t", "select": select, "severity": "warning", "agent": {}}
    with pytest.raises(ValueError, match=message):
        RuleFile.model_validate({"rules": [rule]})


def test_a_delay_does_not_expire_on_the_wall_clock_while_cut_off_or_draining() -> None:
    """A bad quality held for 60 s raises on the wall clock only while the data is current: the backlog may show
    the point good again a second later."""
    rule = RuleFile.model_validate(
        {
            "rules": [
                {
                    "id": "bad",
                    "title": "Bad quality",
                    "select": {"profile": "p"},
                    "severity": "info",
                    "bad_quality": {"for_s": 60},
                }
            ]
        }
    ).rules
    bad = Telemetry.model_validate(
        {
            "site": "s1",
            "device": "d1",
            "profile": "p",
            "measurement": "m",
            "seq": 0,
            "samples": [{"ts": T0, "values": {"x": None}, "quality": {"x": {"q": "bad", "reason": "timeout"}}}],
        }
    )
    engine = Engine(rule)
    assert engine.observe(bad, T0 + 50) == []
    assert engine.tick(T0 + 120 * S, cut_off=True) == []  # the engine's link is down: unknown, held
    later = T0 + 3_600 * S
    assert engine.observe(msg("d2", T0 + S), later) == []  # the site's backlog arrives an hour late
    assert engine.tick(later + S) == []  # draining: held
    assert [t.severity for t in engine.observe(msg("d1", T0 + S), later + 2 * S)] == []  # good again: nothing raised
    assert engine.active() == {}
    live = Engine(rule)
    live.observe(bad, T0 + 50)
    assert [t.severity for t in live.tick(T0 + 60 * S)] == ["info"]  # current data: the delay expires as before
