"""No false "no data" while an edge's backlog is on its way: the engine judges a device silent by sample time only
once the edge's own health says that what it took in the device's timeout has reached the centre. After a broker
outage the edge sends its live messages first (every device's newest, its health) and its backlog after them, and
the engine's link may come back before the edge's: a device's older samples may still wait in the edge's outbox
while the site's newest sample moves ahead. Time is a parameter."""

from __future__ import annotations

from typing import Any

from rules import Engine, Rule, RuleFile, Transition
from telemetry.models import AgentState, Telemetry

S = 1000
T0 = 1_760_000_000_000
DEVICES = ("gate-1", "air-1", "cems-1")

RULES: list[Rule] = RuleFile.model_validate(
    {
        "rules": [
            {
                "id": "device.silent.modbus",
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


def msg(device: str, ts: int) -> Telemetry:
    return Telemetry.model_validate(
        {
            "site": "s1",
            "device": device,
            "profile": "p",
            "measurement": "m",
            "seq": 0,
            "samples": [{"ts": ts, "values": {"x": 1.0}}],
        }
    )


def health(ts: int, oldest_unconfirmed_age_s: float) -> Telemetry:
    """The agent's own health (profile edge_agent): its outbox's oldest unconfirmed message is this old."""
    return Telemetry.model_validate(
        {
            "site": "s1",
            "device": "edge",
            "profile": "edge_agent",
            "measurement": "edge_agent",
            "seq": 0,
            "samples": [{"ts": ts, "values": {"oldest_unconfirmed_age_s": oldest_unconfirmed_age_s}}],
        }
    )


def keys(transitions: list[Transition]) -> list[tuple[str, str, Any, int]]:
    return [(t.rule, t.device, t.severity, t.ts) for t in transitions]


def live_site(engine: Engine, seconds: int) -> list[Transition]:
    """Normal operation up to T0 + seconds: every device each second, health every 10 s (outbox drained)."""
    engine.agent_state(AgentState(site="s1", agent="edge-s1", online=True, ts=T0 - S, devices=list(DEVICES)))
    out: list[Transition] = []
    for t in range(seconds):
        now = T0 + t * S
        for device in DEVICES:
            out += engine.observe(msg(device, now), now + 50)
        if t % 10 == 0:
            out += engine.observe(health(now, 0.2), now + 50)
        out += engine.tick(now + 100)
    return out


def test_a_devices_backlog_behind_the_sites_live_messages_raises_nothing() -> None:
    """The broker was away 40 s from T0 + 30 s. The engine is back first, its grace over; the edge then sends its
    live messages: the health (its outbox holds everything since the outage), gate-1 and cems-1 current, and
    air-1's messages of the outage come last, from the backlog, after many ticks."""
    engine = Engine(RULES)
    out = live_site(engine, 30)
    down, up = T0 + 30 * S, T0 + 70 * S
    for now in range(down, up, S):
        out += engine.tick(now, cut_off=True)
    out += engine.observe(health(up, (up - down) / S), up + 50)  # the edge's outbox holds the outage
    for t in range(0, 20):  # live: everything but air-1, whose samples the edge sends later
        now = up + t * S
        for device in ("gate-1", "cems-1"):
            out += engine.observe(msg(device, now), now + 50)
        if t % 10 == 0:
            out += engine.observe(health(now, (now - down) / S), now + 50)
        out += engine.tick(now + 100)
    assert keys(out) == []  # gate-1 is 30 s ahead of air-1's last sample, yet the edge has not confirmed its backlog
    replay = up + 20 * S
    for ts in range(down, replay, S):  # air-1's backlog, in order
        out += engine.observe(msg("air-1", ts), replay)
    for t in range(20, 40):
        now = up + t * S
        for device in DEVICES:
            out += engine.observe(msg(device, now), now + 50)
        if t % 10 == 0:
            out += engine.observe(health(now, 0.2), now + 50)  # confirmed: the outbox is drained
        out += engine.tick(now + 100)
    assert keys(out) == []
    assert engine.active() == {}


def test_devices_arriving_one_after_another_raise_nothing() -> None:
    """A site whose backlog comes device by device (all of gate-1's, then all of air-1's, ...) after the health:
    each device's samples run far ahead of the others' while the edge still holds the rest."""
    engine = Engine(RULES)
    out = live_site(engine, 30)
    down, up = T0 + 30 * S, T0 + 90 * S
    for now in range(down, up, S):
        out += engine.tick(now, cut_off=True)
    out += engine.observe(health(up, (up - down) / S), up + 50)
    received = up + 100
    for device in DEVICES:
        for ts in range(down, up, S):
            received += 10
            out += engine.observe(msg(device, ts), received)
            out += engine.tick(received)
    for t in range(0, 12):  # then live again, the outbox drained
        now = up + t * S
        for device in DEVICES:
            out += engine.observe(msg(device, now), now + 50)
        if t % 10 == 0:
            out += engine.observe(health(now, 0.1), now + 50)
        out += engine.tick(now + 100)
    assert keys(out) == []


def test_a_device_really_silent_is_raised_once_the_edge_confirms_its_outbox_past_the_timeout() -> None:
    """air-1 stops at T0 + 29 s while the others go on: the raise waits for a health whose outbox has confirmed
    everything taken up to its last sample plus the timeout, and is dated by its sample time."""
    engine = Engine(RULES)
    out = live_site(engine, 30)
    last = T0 + 29 * S
    for t in range(30, 45):
        now = T0 + t * S
        for device in ("gate-1", "cems-1"):
            out += engine.observe(msg(device, now), now + 50)
        out += engine.tick(now + 100)
    assert keys(out) == []  # the site's newest is 15 s past air-1's, but the newest health is from T0 + 20 s
    out += engine.observe(health(T0 + 33 * S, 4.5), T0 + 45 * S)  # confirmed up to T0 + 28.5 s: not yet
    assert keys(engine.tick(T0 + 45 * S + 200)) == []
    out += engine.observe(health(T0 + 40 * S, 0.3), T0 + 45 * S + 300)  # confirmed up to T0 + 39.7 s
    raised = engine.tick(T0 + 45 * S + 400)
    assert keys(raised) == [("device.silent.modbus", "air-1", "warning", last + 5 * S)]


def test_an_older_health_arriving_late_does_not_move_the_confirmation_back() -> None:
    engine = Engine(RULES)
    live_site(engine, 30)
    engine.observe(health(T0 + 40 * S, 0.2), T0 + 40 * S)
    engine.observe(health(T0 + 20 * S, 30.0), T0 + 41 * S)  # a resent one from the backlog
    for t in range(30, 41):
        now = T0 + t * S
        engine.observe(msg("gate-1", now), now + 50)
    (raised, raised2) = engine.tick(T0 + 41 * S)
    assert {raised.device, raised2.device} == {"air-1", "cems-1"}


def test_a_site_without_health_is_judged_by_sample_time_alone() -> None:
    """An agent that sends no health (an older release, an HJ 212 station): the site's newest sample decides."""
    engine = Engine(RULES)
    for t in range(10):
        for device in DEVICES:
            engine.observe(msg(device, T0 + t * S), T0 + t * S + 50)
    for t in range(10, 16):
        engine.observe(msg("gate-1", T0 + t * S), T0 + t * S + 50)
    raised = engine.tick(T0 + 16 * S)
    assert sorted(t.device for t in raised) == ["air-1", "cems-1"]


def test_a_resumed_session_handing_a_devices_samples_after_newer_ones_raises_nothing_while_cut_off() -> None:
    """The engine's session is resumed (its link back for less than the grace: cut off): the broker hands it what it
    queued meanwhile after newer messages of the site, gate-1's current sample and a health that has confirmed
    everything, before the other devices' samples of the outage. No silence is judged until the engine is caught up,
    and by then they are in."""
    engine = Engine(RULES)
    out = live_site(engine, 30)
    down, up = T0 + 30 * S, T0 + 150 * S
    for now in range(down, up, S):
        out += engine.tick(now, cut_off=True)
    out += engine.observe(msg("gate-1", up), up + 50)
    out += engine.observe(health(up, 0.2), up + 60)  # the edge's outbox confirmed: the bridge has stored it all
    out += engine.tick(up + 200, cut_off=True)  # the engine's link came back a moment ago
    assert keys(out) == []
    for ts in range(down, up + S, S):  # the queued session: every device's samples of the outage
        for device in ("air-1", "cems-1"):
            out += engine.observe(msg(device, ts), up + 1_000)
        out += engine.tick(up + 1_000, cut_off=True)
    for t in range(1, 40):  # caught up, live
        now = up + t * S
        for device in DEVICES:
            out += engine.observe(msg(device, now), now + 50)
        out += engine.tick(now + 100, cut_off=t < 30)
    assert keys(out) == []
    assert engine.active() == {}


def test_a_device_silent_through_the_cut_off_is_raised_once_the_engine_is_caught_up() -> None:
    engine = Engine(RULES)
    out = live_site(engine, 30)
    for t in range(30, 60):  # air-1 stopped at T0 + 29 s; the engine is cut off from T0 + 35 s to T0 + 45 s
        now = T0 + t * S
        for device in ("gate-1", "cems-1"):
            out += engine.observe(msg(device, now), now + 50)
        if t % 10 == 0:
            out += engine.observe(health(now, 0.2), now + 50)
        cut = 35 <= t < 45
        ticked = engine.tick(now + 100, cut_off=cut)
        if cut or t < 40:
            assert ticked == [], t
        out += ticked
    assert keys(out) == [("device.silent.modbus", "air-1", "warning", T0 + 34 * S)]
