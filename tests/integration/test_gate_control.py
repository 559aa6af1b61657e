"""Remote control of a simulated sluice gate through a real edge agent and a real Mosquitto.

The gate PLC is the simulator's, with a fast hoist, on a loopback port; commands are published (and signed with the
site's control key) as the API would, results read from the broker, each checked to be signed with the site key.
Levels are forced so that the head across the gate is known.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from device_profiles import load_catalogue
from edge_agent import EdgeAgent, EdgeConfig, build_site
from infra.deadletter import DeadLetterStore
from infra.mqtt import Client, client
from lifeline.broker_auth import api_account, edge_account
from simulators import ModbusDevice, SluiceGate
from simulators.behaviours import Behaviour
from simulators.behaviours.sluice_gate_plc import FAULT_OVERLOAD, FAULT_PHASE_LOSS, GateParams
from telemetry import decode_telemetry, topics
from telemetry.commands import Action, Command, CommandResult, Interlock, ResultState
from telemetry.keys import SiteKeyFiles, create_site_keys, load_signing_key, load_verify_key
from telemetry.signing import SigningKey, command_digest, sign, verify
from testing import Mosquitto
from tests.helpers import LoopThread, Received, Subscriber, account_for, client_account

pytestmark = pytest.mark.integration
SITE, GATE = "ctl-site", "gate-1"
OTHER_SITE = "other-site"
_ids = itertools.count(1)


class GateSim:
    """A simulated gate PLC served on its own loop thread."""

    def __init__(self, **params: Any) -> None:
        defaults = {"speed_m_s": 3.0, "max_opening_m": 6.5, "initial_opening_m": 1.0}
        self.gate = SluiceGate(5, GateParams.model_validate({**defaults, **params}))
        self.device = ModbusDevice(GATE, load_catalogue()["sluice_gate_plc"], self.gate, step_interval_s=0.02)

        async def main(stop: Any) -> None:
            await self.device.start()
            try:
                await stop.wait()
            finally:
                await self.device.stop()

        self.thread = LoopThread(main)
        deadline = time.monotonic() + 10
        while self.device.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.device.port, f"gate simulator did not start: {self.thread.error}"
        self.levels(up=3.0, down=2.6)

    def on_loop(self, fn: Callable[[], Any]) -> Any:
        done: list[Any] = []
        self.thread.call(lambda: done.append(fn()))
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.005)
        assert done, "call on the simulator's loop did not run"
        return done[0]

    def act(self, event: Callable[[SluiceGate], object]) -> None:
        def on_gate(b: Behaviour) -> None:
            assert isinstance(b, SluiceGate)
            event(b)

        self.on_loop(lambda: self.device.act(on_gate))

    def levels(self, up: float, down: float) -> None:
        def force() -> None:
            self.device.set_value("level_up", up)
            self.device.set_value("level_down", down)

        self.on_loop(force)

    def values(self) -> dict[str, Any]:
        result: dict[str, Any] = self.on_loop(self.device.values)
        return result

    def stop(self) -> None:
        self.thread.stop()


def site_config(broker: Mosquitto, sim: GateSim, tmp_path: Path, keys: bool = True, **control: Any) -> EdgeConfig:
    files = SiteKeyFiles.of(tmp_path / "keys", SITE)
    return EdgeConfig.model_validate(
        {
            "site": SITE,
            **(
                {"control_public_key": str(files.control_public), "site_private_key": str(files.site_private)}
                if keys
                else {}
            ),
            "broker": account_for(broker, edge_account(SITE), reconnect_initial_s=0.1, reconnect_max_s=0.5).model_dump(
                mode="json"
            ),
            "modbus": {"timeout_s": 0.5, "connect_timeout_s": 0.5, "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
            "dead_letter_path": str(tmp_path / "edge" / "dead.sqlite"),
            "state_dir": str(tmp_path / "edge"),
            "devices": [
                {
                    "id": GATE,
                    "profile": "sluice_gate_plc",
                    "host": "127.0.0.1",
                    "port": sim.device.port,
                    "poll_interval_s": 0.2,
                    "control": {
                        "min_opening_m": 0.0,
                        "max_opening_m": 6.0,
                        "tolerance_m": 0.02,
                        "timeout_s": 5.0,
                        "readback_interval_s": 0.05,
                        "max_head_open_m": 1.0,
                        **control,
                    },
                }
            ],
        }
    )


class Rig:
    """The gate, an agent, a subscriber to results and telemetry, and a way to send commands."""

    def __init__(
        self, broker: Mosquitto, tmp_path: Path, sim: dict[str, Any] | None = None, keys: bool = True, **control: Any
    ) -> None:
        self.broker, self.tmp_path = broker, tmp_path
        create_site_keys(tmp_path / "keys", [SITE, OTHER_SITE])  # kept when they exist (a second rig)
        files = SiteKeyFiles.of(tmp_path / "keys", SITE)
        self.control = load_signing_key(files.control_private)  # the API's key of this site
        self.other_control = load_signing_key(SiteKeyFiles.of(tmp_path / "keys", OTHER_SITE).control_private)
        self.site_key = load_verify_key(files.site_public) if keys else None  # None: results must be unsigned
        self.sim = GateSim(**(sim or {}))
        self.config = site_config(broker, self.sim, tmp_path, keys, **control)
        self.sub = Subscriber(broker, f"{topics.PREFIX}/{SITE}/#")
        self.client = mqtt_client(broker, "test-api")
        self.agent: EdgeAgent | None = None
        self.thread: LoopThread | None = None
        self.start_agent()

    def start_agent(self) -> None:
        self.agent = EdgeAgent(build_site(self.config))
        self.thread = LoopThread(self.agent.run)
        # the agent subscribes right after it connects: probe until a command to no device is answered
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = self.send(Action.STOP, device="nobody")
            try:
                self.sub.wait_for(partial(self._answered, probe.id), timeout=0.5)
                return
            except AssertionError:
                continue
        raise AssertionError("the agent never answered a command")

    def stop_agent(self) -> None:
        assert self.thread is not None
        self.thread.stop()
        self.thread = None

    def command(self, action: Action, *, device: str = GATE, ttl_ms: int = 30_000, **fields: Any) -> Command:
        now = int(time.time() * 1000)
        return Command(
            id=f"cmd-{next(_ids)}",
            site=SITE,
            device=device,
            action=action,
            issued_ms=now,
            expires_ms=now + ttl_ms,
            operator="duty-officer",
            source="127.0.0.1",
            **fields,
        )

    def send(
        self, action: Action | Command, *, device: str = GATE, key: SigningKey | bool | None = True, **fields: Any
    ) -> Command:
        """Publish a command on this site's topic of its device and id, signed with ``key`` (True: the site's
        control key; False: as it is, for a replay or an unsigned one)."""
        cmd = action if isinstance(action, Command) else self.command(action, device=device, **fields)
        if key is True:
            cmd = sign(cmd, self.control)
        elif isinstance(key, SigningKey):
            cmd = sign(cmd, key)
        self.publish(topics.command(SITE, cmd.device, cmd.id), cmd.model_dump_json().encode())
        return cmd

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def _answered(self, command_id: str, messages: list[Any]) -> bool:
        return bool(self._results(messages, command_id, "nobody"))

    def _results(
        self, messages: list[Any], command_id: str, device: str = GATE, *, receipts: bool = False
    ) -> list[CommandResult]:
        """The results of one command (without the receipt, ``received``, unless asked); each must be signed with the
        site key (or unsigned, by an agent without)."""
        topic = topics.command_result(SITE, device, command_id)
        results = [CommandResult.model_validate_json(m.payload) for m in messages if m.topic == topic]
        for r in results:
            if self.site_key is None:
                assert r.sig is None
            else:
                verify(r, self.site_key)  # raises SignatureError if not signed by this site's edge
        return [r for r in results if receipts or r.state is not ResultState.RECEIVED]

    def received(self, command_id: str, device: str = GATE) -> list[Received]:
        return [m for m in self.sub.snapshot() if m.topic == topics.command_result(SITE, device, command_id)]

    def results(self, command_id: str) -> list[CommandResult]:
        return self._results(self.sub.snapshot(), command_id)

    def wait_final(self, command_id: str, timeout: float = 10.0, count: int = 1) -> list[CommandResult]:
        """Every result of ``command_id`` once ``count`` final ones arrived."""
        got = self.sub.wait_for(
            lambda ms: sum(r.final for r in self._results(ms, command_id)) >= count, timeout=timeout
        )
        return self._results(got, command_id)

    def wait_state(self, command_id: str, state: ResultState, timeout: float = 5.0) -> None:
        self.sub.wait_for(lambda ms: any(r.state is state for r in self._results(ms, command_id)), timeout=timeout)

    def close(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        self.client.disconnect()
        self.client.loop_stop()
        self.sub.close()
        self.sim.stop()


def mqtt_client(broker: Mosquitto, client_id: str) -> Client:
    """This module's one way to connect to the broker (the place to add credentials)."""
    account = account_for(broker, api_account()) if client_id == "test-api" else client_account(broker, client_id)
    made = client(account, account.username or "")
    made.connect(broker.host, broker.port)
    made.loop_start()
    return made


@pytest.fixture
def make_rig(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(sim: dict[str, Any] | None = None, keys: bool = True, **control: Any) -> Rig:
        rig = Rig(mosquitto, tmp_path, sim, keys, **control)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


def states(results: list[CommandResult]) -> list[ResultState]:
    """The sequence with runs of progress collapsed to one."""
    out: list[ResultState] = []
    for r in results:
        if not (out and r.state is ResultState.PROGRESS and out[-1] is ResultState.PROGRESS):
            out.append(r.state)
    return out


# -- movements ------------------------------------------------------------------------------------------------------
def test_set_opening_reaches_its_target(rig: Rig) -> None:
    cmd = rig.send(Action.SET_OPENING, target_pct=40)
    results = rig.wait_final(cmd.id)
    assert states(results) == [ResultState.ACCEPTED, ResultState.PROGRESS, ResultState.COMPLETED]
    accepted, *progress, completed = results
    assert accepted.target_m == pytest.approx(2.6)
    assert accepted.before["opening_m"] == pytest.approx(1.0, abs=0.01)
    assert accepted.before["remote"] is True
    openings = [p.opening_m or 0.0 for p in progress]
    assert openings == sorted(openings)  # the gate only rose
    assert completed.opening_m == pytest.approx(2.6, abs=0.02)
    assert completed.after["opening_m"] == pytest.approx(2.6, abs=0.02)
    assert rig.sim.values()["gate_opening"] == pytest.approx(2.6, abs=0.02)
    # the final result is retained: a late reader sees how the command ended
    late = Subscriber(rig.broker, topics.command_result(SITE, GATE, cmd.id))
    (retained,) = late.wait_for(bool)
    late.close()
    assert retained.retain
    assert CommandResult.model_validate_json(retained.payload).state is ResultState.COMPLETED
    # polling went on during the movement
    moving = [
        s
        for m in rig.sub.snapshot()
        if m.topic == topics.telemetry(SITE, GATE)
        for s in decode_telemetry(m.payload).samples
        if s.values.get("moving_open")
    ]
    assert moving


@pytest.mark.parametrize(("action", "expected_m"), [(Action.OPEN, 6.0), (Action.CLOSE, 0.0)], ids=["open", "close"])
def test_open_and_close_drive_to_the_limits(rig: Rig, action: Action, expected_m: float) -> None:
    cmd = rig.send(action)
    results = rig.wait_final(cmd.id)
    assert states(results) == [ResultState.ACCEPTED, ResultState.PROGRESS, ResultState.COMPLETED]
    assert results[-1].after["opening_m"] == pytest.approx(expected_m, abs=0.02)
    assert results[-1].after["limit_closed"] is (expected_m == 0.0)


def test_stop_during_a_movement_ends_it(rig: Rig) -> None:
    move = rig.send(Action.OPEN)
    rig.wait_state(move.id, ResultState.PROGRESS)
    stop = rig.send(Action.STOP)
    moved = rig.wait_final(move.id)
    assert moved[-1].state is ResultState.FAILED
    assert moved[-1].reason == f"stopped by {stop.id}"
    assert moved[-1].after["moving_open"] is False  # read after the stop was sent
    stopped = rig.wait_final(stop.id)
    assert states(stopped) == [ResultState.ACCEPTED, ResultState.COMPLETED]
    assert stopped[-1].after["moving_open"] is False
    opening = rig.sim.values()["gate_opening"]
    assert 1.0 < opening < 6.0
    time.sleep(0.2)  # the gate stays where it stopped
    assert rig.sim.values()["gate_opening"] == opening


# -- refusals -------------------------------------------------------------------------------------------------------
def _local(rig: Rig) -> None:
    rig.sim.act(lambda g: g.set_remote(False))


def _fault(rig: Rig) -> None:
    rig.sim.act(lambda g: g.trip(FAULT_PHASE_LOSS))


def _head(rig: Rig) -> None:
    rig.sim.levels(up=4.5, down=2.6)


REFUSALS = [
    # (id, prepare the gate, command fields, interlock, words in the reason)
    ("local-mode", _local, {"action": Action.OPEN}, Interlock.LOCAL_MODE, "local"),
    ("active-fault", _fault, {"action": Action.OPEN}, Interlock.GATE_FAULT, "fault_code 2 (phase loss)"),
    ("out-of-limits", None, {"action": Action.SET_OPENING, "target_pct": 99}, Interlock.OUT_OF_LIMITS, "6.435"),
    ("head-too-large", _head, {"action": Action.OPEN}, Interlock.LEVEL_DIFFERENCE, "head 1.90 m"),
    ("stale", None, {"action": Action.OPEN, "expired": True}, Interlock.STALE, "expires_ms"),
    ("unknown-device", None, {"action": Action.OPEN, "device": "gate-9"}, Interlock.UNKNOWN_DEVICE, "controllable"),
]


@pytest.mark.parametrize(
    ("prepare", "fields", "interlock", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refused(
    rig: Rig, prepare: Callable[[Rig], None] | None, fields: dict[str, Any], interlock: Interlock, words: str
) -> None:
    if prepare is not None:
        prepare(rig)
    writes = rig.sim.device.writes
    fields = dict(fields)
    expired = fields.pop("expired", False)
    cmd = rig.command(fields.pop("action"), **fields)
    if expired:  # issued 3 s ago (within the 5 s delivery window), expired a second ago
        now = int(time.time() * 1000)
        cmd = cmd.model_copy(update={"issued_ms": now - 3_000, "expires_ms": now - 1000})
    rig.send(cmd)
    topic_device = cmd.device
    got = rig.sub.wait_for(lambda ms: any(r.final for r in rig._results(ms, cmd.id, topic_device)))
    (result,) = rig._results(got, cmd.id, topic_device)
    assert (result.state, result.interlock) == (ResultState.REJECTED, interlock)
    assert words in result.reason
    assert rig.sim.device.writes == writes  # nothing was written to the PLC


# -- delivery: receipt, delivery window, cancel ---------------------------------------------------------------------
def test_the_receipt_comes_first_signed_and_not_retained(rig: Rig) -> None:
    cmd = rig.send(Action.SET_OPENING, target_pct=40)
    rig.wait_final(cmd.id)
    results = rig._results(rig.sub.snapshot(), cmd.id, receipts=True)
    assert [r.state for r in results[:2]] == [ResultState.RECEIVED, ResultState.ACCEPTED]
    assert [r.state for r in results].count(ResultState.RECEIVED) == 1
    first = next(m for m in rig.received(cmd.id))
    assert not first.retain  # a receipt never replaces a retained final result


def test_a_command_held_back_past_the_delivery_window_is_refused_and_stays_refused(rig: Rig) -> None:
    writes, opening = rig.sim.device.writes, rig.sim.values()["gate_opening"]
    now = int(time.time() * 1000)
    # issued 20 s ago with a minute to live: not expired, but first seen after the 5 s delivery window
    held = rig.command(Action.SET_OPENING, target_pct=90).model_copy(
        update={"issued_ms": now - 20_000, "expires_ms": now + 40_000}
    )
    rig.send(held)
    (result,) = rig.wait_final(held.id)
    assert (result.state, result.interlock) == (ResultState.REJECTED, Interlock.LATE)
    assert "delivery window of 5 s" in result.reason
    rig.send(held)  # delivered again: a repeat of the refusal, never a run
    results = rig.wait_final(held.id, count=2)
    assert [(r.state, r.repeat) for r in results] == [(ResultState.REJECTED, False), (ResultState.REJECTED, True)]
    time.sleep(0.3)  # the hoist is fast (3 m/s): a movement would show by now
    assert rig.sim.device.writes == writes
    assert rig.sim.values()["gate_opening"] == opening


def test_a_command_cancelled_before_it_arrives_is_never_executed(rig: Rig) -> None:
    writes, opening = rig.sim.device.writes, rig.sim.values()["gate_opening"]
    late = rig.command(Action.SET_OPENING, target_pct=90)
    cancel = rig.send(Action.CANCEL, cancels=late.id)
    (done,) = rig.wait_final(cancel.id)
    assert done.state is ResultState.COMPLETED
    assert f"command {late.id} will not be executed" in done.reason
    rig.send(late)  # the intercepted command, let through later (within its delivery window)
    (result,) = rig.wait_final(late.id)
    assert (result.state, result.repeat) == (ResultState.REJECTED, True)
    assert f"cancelled by command {cancel.id}" in result.reason
    assert result.cmd_sha256 == command_digest(late)  # the answer names the command it refuses
    time.sleep(0.3)
    assert rig.sim.device.writes == writes
    assert rig.sim.values()["gate_opening"] == opening


def test_a_cancel_after_the_command_arrived_leaves_it(rig: Rig) -> None:
    cmd = rig.send(Action.SET_OPENING, target_pct=40)
    rig.wait_final(cmd.id)
    cancel = rig.send(Action.CANCEL, cancels=cmd.id)
    (done,) = rig.wait_final(cancel.id)
    assert done.state is ResultState.COMPLETED
    assert "was received before the cancel (completed)" in done.reason


def test_busy_while_another_command_runs(rig: Rig) -> None:
    rig.sim.act(lambda g: g.jam())
    first = rig.send(Action.OPEN)
    rig.wait_state(first.id, ResultState.PROGRESS)
    second = rig.send(Action.SET_OPENING, target_pct=10)
    (refused,) = rig.wait_final(second.id)
    assert (refused.state, refused.interlock) == (ResultState.REJECTED, Interlock.BUSY)
    rig.send(Action.STOP)
    assert rig.wait_final(first.id)[-1].state is ResultState.FAILED


# -- ends of a movement ---------------------------------------------------------------------------------------------
def test_fault_during_the_movement_fails_the_command(rig: Rig) -> None:
    cmd = rig.send(Action.OPEN)
    rig.wait_state(cmd.id, ResultState.PROGRESS)
    rig.sim.act(lambda g: g.trip(FAULT_OVERLOAD))
    final = rig.wait_final(cmd.id)[-1]
    assert final.state is ResultState.FAILED
    assert final.reason.startswith("gate fault: fault_code 1 (motor overload)")
    assert final.after["overload"] is True


def test_a_gate_that_never_gets_there_times_out_and_is_stopped(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(timeout_s=0.8)
    rig.sim.act(lambda g: g.jam())
    cmd = rig.send(Action.SET_OPENING, target_pct=50)
    results = rig.wait_final(cmd.id)
    assert states(results) == [ResultState.ACCEPTED, ResultState.PROGRESS, ResultState.TIMED_OUT]
    assert "not reached within 0.8 s; stop sent" in results[-1].reason
    assert results[-1].after["moving_open"] is False
    assert rig.sim.values()["moving_open"] is False


def test_a_gate_that_stops_short_on_its_limit_switch_fails(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(sim={"max_opening_m": 3.0})  # the travel is shorter than the configured limits think
    cmd = rig.send(Action.OPEN)
    final = rig.wait_final(cmd.id)[-1]
    assert final.state is ResultState.FAILED
    assert final.reason == "gate stopped at the upper limit switch at 3 m, short of the target 6 m"
    assert final.after["limit_open"] is True


# -- ids and payloads -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_with_the_disk_full_a_move_and_a_stop_still_run_and_the_ids_are_kept_in_memory(rig: Rig) -> None:
    """Every append to the command log fails with ENOSPC (the log is /dev/full): the commands run (a stop must
    never wait for a disk), the failure is counted, and a redelivered id is still a repeat in this run."""
    log = rig.tmp_path / "edge" / "commands.jsonl"
    assert log.exists()  # made by the start's probes
    log.unlink()
    log.symlink_to("/dev/full")
    move = rig.send(Action.OPEN)
    rig.wait_state(move.id, ResultState.PROGRESS)
    stop = rig.send(Action.STOP)
    assert rig.wait_final(move.id)[-1].reason == f"stopped by {stop.id}"
    assert states(rig.wait_final(stop.id)) == [ResultState.ACCEPTED, ResultState.COMPLETED]
    assert rig.agent is not None
    assert rig.agent.commands.counts["ids_not_kept"] >= 3  # accepted and final of each
    rig.send(stop)
    assert rig.wait_final(stop.id, count=2)[-1].repeat


def test_a_repeated_id_is_not_executed_again_also_after_a_restart(rig: Rig) -> None:
    cmd = rig.send(Action.SET_OPENING, target_pct=30)
    first = rig.wait_final(cmd.id)[-1]
    assert first.state is ResultState.COMPLETED
    writes = rig.sim.device.writes
    rig.send(cmd)
    again = rig.wait_final(cmd.id, count=2)[-1]
    assert again.repeat
    assert again.model_copy(update={"repeat": False, "sig": None}) == first.model_copy(update={"sig": None})
    rig.stop_agent()
    rig.start_agent()
    rig.send(cmd)
    after_restart = rig.wait_final(cmd.id, count=3)[-1]
    assert after_restart.repeat
    assert after_restart.state is ResultState.COMPLETED
    assert rig.sim.device.writes == writes  # never written to the PLC again


def _signed_other_id(rig: Rig, cid: str) -> bytes:  # signed, but the payload's id is not the topic's
    return sign(rig.command(Action.STOP).model_copy(update={"id": "other"}), rig.control).model_dump_json().encode()


INVALID: list[tuple[str, Callable[[Rig, str], bytes], str]] = [
    ("not-json", lambda rig, cid: b"not json at all", "invalid command"),
    (
        "unknown-action",
        lambda rig, cid: (
            b'{"v": 1, "id": "%s", "site": "ctl-site", "device": "gate-1", "action": "fly",'
            b' "issued_ms": 1, "expires_ms": 2, "operator": "x"}' % cid.encode()
        ),
        "action",
    ),
    ("id-disagrees", _signed_other_id, "disagree with the topic"),
]


@pytest.mark.parametrize(("payload", "error"), [r[1:] for r in INVALID], ids=[r[0] for r in INVALID])
def test_invalid_payload_is_rejected_and_dead_lettered(
    rig: Rig, tmp_path: Path, payload: Callable[[Rig, str], bytes], error: str
) -> None:
    cid = f"bad-{next(_ids)}"
    topic = topics.command(SITE, GATE, cid)
    rig.publish(topic, payload(rig, cid))
    (result,) = rig.wait_final(cid)
    assert (result.state, result.id, result.interlock) == (ResultState.REJECTED, cid, None)
    assert error in result.reason
    store = DeadLetterStore(tmp_path / "edge" / "dead.sqlite")
    letters = store.list()
    store.close()
    assert any(
        d.topic == topic and error in d.reason and (d.stage, d.replayable) == ("command", False) for d in letters
    )
    assert rig.sim.device.writes == 0


# -- signatures (decision record 009) ---------------------------------------------------------------------------------
def _unsigned(rig: Rig, cmd: Command) -> Command:
    return rig.send(cmd, key=False)


def _other_sites_key(rig: Rig, cmd: Command) -> Command:
    return rig.send(cmd, key=rig.other_control)


def _tampered(rig: Rig, cmd: Command) -> Command:  # signed for 10 %, then changed to 90 % on the way
    signed = sign(cmd.model_copy(update={"target_pct": 10.0}), rig.control)
    return rig.send(signed.model_copy(update={"target_pct": 90.0}), key=False)


def _garbled_signature(rig: Rig, cmd: Command) -> Command:
    signed = sign(cmd, rig.control)
    return rig.send(signed.model_copy(update={"sig": "A" * 86 + "=="}), key=False)


def _for_another_site(rig: Rig, cmd: Command) -> Command:  # signed with this site's key, on this site's topic
    return rig.send(cmd.model_copy(update={"site": OTHER_SITE}))


FORGED = [
    # (id, how the command is made and sent, interlock, words in the reason)
    ("unsigned", _unsigned, Interlock.SIGNATURE, "not signed"),
    ("signed-with-another-sites-key", _other_sites_key, Interlock.SIGNATURE, "not with the expected key"),
    ("changed-after-signing", _tampered, Interlock.SIGNATURE, "does not verify"),
    ("garbled-signature", _garbled_signature, Interlock.SIGNATURE, "does not verify"),
    ("for-another-site", _for_another_site, Interlock.WRONG_SITE, f"for site '{OTHER_SITE}'"),
]


@pytest.mark.parametrize(("send", "interlock", "words"), [r[1:] for r in FORGED], ids=[r[0] for r in FORGED])
def test_a_command_that_does_not_verify_is_refused_with_a_signed_answer_and_the_gate_stays(
    rig: Rig, tmp_path: Path, send: Callable[[Rig, Command], Command], interlock: Interlock, words: str
) -> None:
    writes, opening = rig.sim.device.writes, rig.sim.values()["gate_opening"]
    cmd = send(rig, rig.command(Action.SET_OPENING, target_pct=90))
    (result,) = rig.wait_final(cmd.id)  # verified with the site key by the rig
    assert (result.state, result.interlock) == (ResultState.REJECTED, interlock)
    assert words in result.reason
    assert result.site == SITE
    (message,) = rig.received(cmd.id)
    assert not message.retain  # a forged message never replaces a retained result
    store = DeadLetterStore(tmp_path / "edge" / "dead.sqlite")
    letters = store.list()
    store.close()
    assert any(d.topic == topics.command(SITE, GATE, cmd.id) and words in d.reason for d in letters)
    time.sleep(0.3)  # the hoist is fast (3 m/s): a movement would show by now
    assert rig.sim.device.writes == writes
    assert rig.sim.values()["gate_opening"] == opening


def test_a_forged_command_does_not_burn_its_id(rig: Rig) -> None:
    forged = rig.send(rig.command(Action.OPEN), key=False)
    (refused,) = rig.wait_final(forged.id)
    assert refused.interlock is Interlock.SIGNATURE
    real = rig.send(rig.command(Action.SET_OPENING, target_pct=20).model_copy(update={"id": forged.id}))
    final = rig.wait_final(real.id, count=2)[-1]
    assert final.state is ResultState.COMPLETED
    assert final.cmd_sha256 != refused.cmd_sha256  # each answer names the command it answers
    assert rig.sim.values()["gate_opening"] == pytest.approx(1.3, abs=0.02)


def test_another_signed_command_under_a_used_id_is_refused_and_the_first_result_stays(rig: Rig) -> None:
    first = rig.send(Action.SET_OPENING, target_pct=30)
    done = rig.wait_final(first.id)[-1]
    assert done.state is ResultState.COMPLETED
    writes = rig.sim.device.writes
    rig.send(rig.command(Action.SET_OPENING, target_pct=60).model_copy(update={"id": first.id}))
    refused = rig.wait_final(first.id, count=2)[-1]
    assert (refused.state, refused.interlock) == (ResultState.REJECTED, Interlock.REPEATED)
    assert not rig.received(first.id)[-1].retain
    # the exact command again (a replay of the signed bytes) is answered with its result, not run
    rig.send(first, key=False)
    again = rig.wait_final(first.id, count=3)[-1]
    assert (again.state, again.repeat) == (ResultState.COMPLETED, True)
    assert rig.sim.device.writes == writes
    assert rig.sim.values()["gate_opening"] == pytest.approx(1.95, abs=0.02)
    late = Subscriber(rig.broker, topics.command_result(SITE, GATE, first.id))
    (retained,) = late.wait_for(bool)
    late.close()
    assert CommandResult.model_validate_json(retained.payload).state is ResultState.COMPLETED


def test_an_agent_without_keys_refuses_every_command(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="lifeline.edge")
    rig = make_rig(keys=False)
    assert f"commands refused: no keys configured site={SITE}" in caplog.text  # said once, at start
    writes = rig.sim.device.writes
    for action in (Action.OPEN, Action.STOP):  # stop too: nothing proves who sent it
        cmd = rig.send(action)  # validly signed, but the agent has no key to check it with
        (result,) = rig.wait_final(cmd.id)  # and no key to sign its answer: unsigned (the API refuses it)
        assert (result.state, result.interlock) == (ResultState.REJECTED, Interlock.SIGNATURE)
        assert "no keys configured" in result.reason
    assert rig.sim.device.writes == writes
