"""What the rules engine does per message and per tick does not grow with the district (issue 26): a checkpoint
exports again only the states that changed since the last one, a quiet state's entry holds only what differs from a
new state's, a batch of transitions is saved with what it changed since the last whole state (not the whole state),
and a tick looks at the deadman states and the running delays, not every state. The guarantees stay: a restarted
engine continues from the whole state and those changes, raises nothing twice, and still raises what a delay or a
silence was about to raise. Time is a parameter."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from device_profiles import load_catalogue
from device_profiles.validate import Registry
from infra.mqtt import Incoming
from rules import Engine, Rule, Transition, load_rules
from rules.config import PACKS, RulesConfig
from rules.service import RulesService
from telemetry import encode, topics
from telemetry.models import Telemetry

S = 1000
T0 = 1_760_000_000_000
RULES: list[Rule] = load_rules([PACKS])  # the shipped packs: gas.lel, the MQTT deadman, bad quality, ...


def gas(device: str, ts: int, lel: float = 1.0, site: str = "ent-1") -> Telemetry:
    return Telemetry.model_validate(
        {
            "site": site,
            "device": device,
            "profile": "gas_detector",
            "measurement": "gas_safety",
            "seq": 0,
            "samples": [{"ts": ts, "values": {"lel": lel, "alarm_level": 0, "battery": 90.0}}],
        }
    )


def entries(state: dict[str, Any], device: str) -> list[dict[str, Any]]:
    return [a for a in state["alerts"] if a["device"] == device]


def test_a_checkpoint_exports_again_only_the_states_that_changed() -> None:
    engine = Engine(RULES)
    for i in range(50):
        engine.observe(gas(f"g{i:02d}", T0), T0)
    first = engine.state()
    engine.observe(gas("g07", T0 + 10 * S), T0 + 10 * S)
    second = engine.state()
    assert len(first["alerts"]) == len(second["alerts"]) > 50
    for i in range(50):
        device = f"g{i:02d}"
        before, after = entries(first, device), entries(second, device)
        assert before
        assert len(before) == len(after)
        if device == "g07":
            assert all(a is not b for a, b in zip(before, after, strict=True))  # exported again
            assert {a["last_ts"] for a in after} == {T0 + 10 * S}
        else:
            assert all(a is b for a, b in zip(before, after, strict=True))  # the entry exported last time
    assert engine.state()["alerts"] == second["alerts"]  # nothing changed since: the same content
    # the checkpoint is JSON, and a restored engine exports what it was given
    restored = Engine.from_state(RULES, orjson.loads(orjson.dumps(second)))
    key = lambda a: (a["rule"], a["device"], a["point"])  # noqa: E731
    assert sorted(restored.state()["alerts"], key=key) == sorted(second["alerts"], key=key)


def test_a_quiet_state_keeps_only_what_differs_from_a_new_one_and_a_full_entry_still_loads() -> None:
    engine = Engine(RULES)
    engine.observe(gas("g1", T0), T0)
    (lel,) = [a for a in engine.state()["alerts"] if a["rule"] == "gas.lel"]
    assert lel == {
        "rule": "gas.lel",
        "site": "ent-1",
        "device": "g1",
        "point": "lel",
        "value": 1.0,
        "last_ts": T0,
        "detail": "lel = 1 (high)",
    }
    # an older release's entry, every field written out: loads, and the restored state shares nothing with it
    full = {
        **lel,
        "active": "warning",
        "target": "warning",
        "since": {"info": T0, "warning": T0},
        "below_since": None,
        "repeat": 0,
        "history": [],
        "changed_ts": T0,
        "evidence": [[T0, {"lel": 30.0}]],
    }
    data = {"version": 1, "alerts": [full], "profiles": [["ent-1", "g1", "gas_detector"]], "sites": {}}
    again = Engine.from_state(RULES, data)
    assert again.active() == {("gas.lel", "ent-1", "g1", "lel"): "warning"}
    (cleared,) = again.observe(gas("g1", T0 + S, lel=1.0), T0 + S)  # below the level less the deadband
    assert (cleared.rule, cleared.severity, cleared.previous) == ("gas.lel", None, "warning")
    assert full["since"] == {"info": T0, "warning": T0}
    assert full["evidence"] == [[T0, {"lel": 30.0}]]


def test_a_delay_running_at_a_checkpoint_still_raises_at_a_tick_after_a_restore() -> None:
    engine = Engine(RULES)
    for i in range(20):
        engine.observe(gas(f"g{i:02d}", T0), T0)
    assert engine.observe(gas("g03", T0 + S, lel=30.0), T0 + S) == []  # warning after its on-delay of 2 s
    restored = Engine.from_state(RULES, orjson.loads(orjson.dumps(engine.state())))
    for live in (engine, restored):
        assert live.tick(T0 + 2 * S) == []
        (raised,) = live.tick(T0 + 3 * S + 100)
        assert (raised.rule, raised.device, raised.severity, raised.previous) == ("gas.lel", "g03", "warning", None)
        assert live.tick(T0 + 4 * S) == []  # raised once


def test_a_silence_is_judged_at_a_tick_after_a_restore() -> None:
    engine = Engine(RULES)
    for i in range(20):
        engine.observe(gas(f"g{i:02d}", T0), T0)
    loud = [f"g{i:02d}" for i in range(20) if i != 5]
    for t in range(1, 7):  # every device but g05 every 100 s
        for device in loud:
            engine.observe(gas(device, T0 + t * 100 * S), T0 + t * 100 * S)
        if t == 3:
            engine = Engine.from_state(RULES, orjson.loads(orjson.dumps(engine.state())))
            assert engine.tick(T0 + t * 100 * S + 50) == []
    silent = [t for t in engine.tick(T0 + 600 * S + 50) if t.rule == "device.silent.mqtt"]
    assert [(t.device, t.severity, t.ts) for t in silent] == [("g05", "warning", T0 + 600 * S)]
    assert [t for t in engine.tick(T0 + 601 * S) if t.rule == "device.silent.mqtt"] == []


class _Store:
    """The alert store's named state blobs, through JSON as it keeps them; the sink saves with them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.transitions: list[Transition] = []

    def get_state(self, name: str) -> dict[str, Any] | None:
        blob = self.blobs.get(name)
        return None if blob is None else dict(orjson.loads(blob))

    def put_state(self, name: str, data: dict[str, Any]) -> None:
        self.blobs[name] = orjson.dumps(data)

    async def sink(self, transitions: list[Transition], checkpoint: tuple[str, dict[str, Any]] | None) -> None:
        self.transitions += transitions
        if checkpoint is not None:
            self.put_state(*checkpoint)


def _service(store: _Store, now: list[int], tmp_path: Path) -> RulesService:
    registry = Registry(dict(load_catalogue()), {("ent-1", f"g{i:02d}"): "gas_detector" for i in range(20)})
    config = RulesConfig(dead_letter_path=tmp_path / "dead.sqlite")
    return RulesService(config, RULES, store.sink, store, clock=lambda: now[0] / 1000, registry=registry)


async def _drain(service: RulesService, *messages: Telemetry) -> None:
    for i, msg in enumerate(messages):
        service.consumer.inbox.append(Incoming(0, i + 1, topics.telemetry(msg.site, msg.device), encode(msg), 0))
    await service.drain()


def test_a_batch_of_transitions_saves_what_it_changed_and_a_restart_continues_from_it(tmp_path: Path) -> None:
    asyncio.run(_batch_then_restart(tmp_path))


async def _batch_then_restart(tmp_path: Path) -> None:
    store, now = _Store(), [T0]
    first = _service(store, now, tmp_path)
    await _drain(first, *(gas(f"g{i:02d}", T0) for i in range(20)))
    await first.checkpoint()  # the whole state: generation 1
    whole = store.get_state("rules.engine")
    assert whole is not None
    assert whole["generation"] == 1
    assert len(whole["alerts"]) >= 20 * 4
    now[0] = T0 + 10 * S
    await _drain(first, gas("g03", T0 + 10 * S, lel=60.0))  # critical at once: a transition, saved with its changes
    (raised,) = store.transitions
    assert (raised.rule, raised.device, raised.severity) == ("gas.lel", "g03", "critical")
    changes = store.get_state("rules.engine/changes")
    assert changes is not None
    assert changes["base"] == 1
    assert {a["device"] for a in changes["alerts"]} == {"g03"}  # what the batch changed, not every state
    assert store.get_state("rules.engine") == whole  # the whole state was not written again
    first.dead_letters.close()

    # a crash here: the restarted engine knows the alert (from the whole state and the changes) and repeats nothing
    again = _service(store, now, tmp_path)
    assert again.engine.active() == {("gas.lel", "ent-1", "g03", "lel"): "critical"}
    now[0] = T0 + 11 * S
    await _drain(again, gas("g03", T0 + 11 * S, lel=60.0))
    assert len(store.transitions) == 1
    await _drain(again, gas("g03", T0 + 12 * S, lel=1.0))
    assert [(t.device, t.severity, t.previous) for t in store.transitions[1:]] == [("g03", None, "critical")]
    assert {a["device"] for a in store.get_state("rules.engine/changes")["alerts"]} == {"g03"}  # type: ignore[index]
    await again.checkpoint()  # generation 2: the changes saved before it are in it, and no longer apply
    again.dead_letters.close()
    third = _service(store, now, tmp_path)
    assert third.engine.active() == {}
    assert (
        third.engine.state()["alerts"]
        == Engine.from_state(RULES, store.get_state("rules.engine") or {}).state()["alerts"]
    )
    third.dead_letters.close()
