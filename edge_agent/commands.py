"""Remote commands to sluice gates, executed at the edge (contract: telemetry/commands.py).

A command is checked in this order: a payload that is no valid ``Command`` is rejected and dead-lettered; so is a
command that is unsigned or does not verify with the site's control key (``signature``; every command when the
agent has no keys), one for another site (``wrong_site``) and one whose device or id disagree with its topic. Those
answers are neither retained nor remembered: a forged message can neither burn an id nor replace a retained result.
Then an id seen before gets its last result again (``repeat``) if the command is the one seen, and is rejected
(``repeated``) if it differs; an unknown or disabled device, an expired command and a busy gate are rejected; then
the gate is read over Modbus and the interlocks (``telemetry.interlocks.check``, the API's too) decide. An accepted
command writes ``target_opening``, pulses ``cmd_open``/``cmd_close``, and follows the opening until it is within
tolerance (``completed``), a fault or a stop ends it (``failed``), or the time-out (``timed_out``, after sending stop).
``stop`` skips every interlock (never the signature) and ends a running command.

Each gate has its own Modbus connection (``edge_agent._gate_io``), apart from the poller's, so polling goes on
during a movement; the ids seen are remembered in a file (``edge_agent._command_ids``).
Every result is signed with the site key (``telemetry.signing``) and logged with site, device, command id, and the
operator and source of the verified command (none for a command that did not verify): the edge's audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from device_profiles import EncodeError, Profile
from edge_agent._command_ids import DAY_MS, CommandLog
from edge_agent._gate_io import GateUnreachable, ModbusGateIO
from edge_agent._point_writes import PointControl, WritablePoint, make_point_control
from edge_agent.config import DeviceConfig, EdgeKeys, ModbusDefaults
from edge_agent.deadletter import DeadLetters
from edge_agent.outbox import OutMessage
from infra.clock import Clock
from telemetry import Value, topics
from telemetry.commands import Action, Command, CommandResult, Interlock, ResultState
from telemetry.interlocks import GateState, Limits, check, direction, fault_of, missing_points, target_of
from telemetry.signing import SignatureError, command_digest, payload_digest, sign, verify

__all__ = [
    "DAY_MS",
    "LOST_READS",
    "CommandExecutor",
    "CommandLog",
    "Gate",
    "GateUnreachable",
    "ModbusGateIO",
    "PointControl",
    "Publish",
    "make_controls",
    "make_gate",
]

log = logging.getLogger("lifeline.edge.commands")

Publish = Callable[[OutMessage], None]
LOST_READS = 3  # consecutive failed read-backs during a movement that count as lost contact


@dataclass(slots=True)
class Gate:
    """A controllable gate of this agent."""

    device: DeviceConfig
    limits: Limits
    io: ModbusGateIO
    timeout_s: float
    readback_interval_s: float
    fault_labels: Mapping[int, str] = field(default_factory=dict)


def make_gate(device: DeviceConfig, profile: Profile, defaults: ModbusDefaults) -> Gate:
    """A gate from a device with a (validated) ``control`` section."""
    c = device.control
    assert c is not None
    assert profile.modbus is not None
    limits = c.limits(profile)
    labels = next((p.states for p in profile.modbus.points if p.name == "fault_code" and p.states), {})
    return Gate(device, limits, ModbusGateIO(device, profile, defaults), c.timeout_s, c.readback_interval_s, labels)


def make_controls(
    devices: Iterable[tuple[DeviceConfig, Profile]], defaults: ModbusDefaults
) -> tuple[dict[str, Gate], dict[str, PointControl]]:
    """The gates and the devices with set points among ``devices`` (each with an enabled, validated ``control``)."""
    gates: dict[str, Gate] = {}
    writers: dict[str, PointControl] = {}
    for device, profile in devices:
        if profile.kind == "sluice_gate":
            gates[device.id] = make_gate(device, profile, defaults)
        writer = make_point_control(device, profile, defaults)
        if writer is not None:
            writers[device.id] = writer
    return gates, writers


@dataclass(slots=True)
class _Run:
    command: Command
    target_m: float | None
    stop_request: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_by: str = ""
    task: asyncio.Task[None] | None = None


# -- the executor -------------------------------------------------------------------------------------------------
class CommandExecutor:
    """Handles command messages of one site: checks, executes, answers, remembers."""

    def __init__(
        self,
        site: str,
        gates: Mapping[str, Gate],
        publish: Publish,
        dead_letters: DeadLetters,
        clock: Clock,
        *,
        state_dir: Path | None = None,
        disabled: frozenset[str] = frozenset(),
        keys: EdgeKeys | None = None,
        writers: Mapping[str, PointControl] | None = None,
        delivery_window_s: float = 5.0,
    ) -> None:
        self.site, self.gates, self.publish, self.dead_letters, self.clock = site, gates, publish, dead_letters, clock
        self.writers: Mapping[str, PointControl] = writers or {}
        self.delivery_window_ms = round(delivery_window_s * 1000)
        self.disabled = disabled
        self.keys = keys  # None: every command is refused and results go unsigned (the API refuses them)
        self.log = CommandLog(state_dir / "commands.jsonl" if state_dir is not None else None)
        self.running: dict[str, _Run] = {}
        self.counts: dict[str, int] = {
            "received": 0,
            "invalid": 0,
            "repeated": 0,
            "bad_signature": 0,
            "wrong_site": 0,
            "id_reused": 0,
            "late": 0,
            "cancelled": 0,
        }
        self.closing = False

    def start(self) -> None:
        """Publish how commands the agent was running when it last stopped ended (failed), once at start."""
        for r in self.log.interrupted(self._now_ms()):
            self._send(r, None)

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    # -- arrival (synchronous, on the loop) --------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> None:
        """One message on a command topic of this site."""
        self.counts["received"] += 1
        try:
            where = topics.parse(topic)
        except topics.TopicError as exc:
            self._invalid(topic, payload, str(exc), None)
            return
        if where.kind is not topics.Kind.CMD or where.site != self.site or where.device is None:
            self._invalid(topic, payload, "not a command topic of this site", None)
            return
        assert where.command_id is not None
        answer_to = (where.device, where.command_id)
        try:
            cmd = Command.model_validate_json(payload)
        except ValidationError as exc:
            self._invalid(topic, payload, f"invalid command: {_errors(exc)}", answer_to, payload_digest(payload))
            return
        digest = command_digest(cmd)
        try:
            verify(cmd, self.keys.control if self.keys is not None else None)
        except SignatureError as exc:
            reason = (
                str(exc)
                if self.keys is not None
                else "this edge agent has no keys configured: every command is refused"
            )
            self._invalid(topic, payload, reason, answer_to, digest, Interlock.SIGNATURE, "bad_signature")
            return
        # From here on the command is the API's own: its fields (operator, source) are trusted.
        if cmd.site != self.site:
            reason = f"the command is for site {cmd.site!r}, this agent serves {self.site!r}"
            self._invalid(topic, payload, reason, answer_to, digest, Interlock.WRONG_SITE, "wrong_site")
            return
        if (cmd.device, cmd.id) != (where.device, where.command_id):
            reason = f"payload site/device/id {cmd.site}/{cmd.device}/{cmd.id} disagree with the topic"
            self._invalid(topic, payload, reason, answer_to, digest)
            return
        self._dispatch(cmd, digest)

    def _dispatch(self, cmd: Command, digest: str) -> None:
        last = self.log.get(cmd.id)
        if last is not None and last.cmd_sha256 and last.cmd_sha256 != digest:
            # a signed command under an id that served another one: never executed, the original result stays
            self.counts["id_reused"] += 1
            result = CommandResult(
                id=cmd.id,
                site=self.site,
                device=cmd.device,
                state=ResultState.REJECTED,
                ts=self._now_ms(),
                interlock=Interlock.REPEATED,
                cmd_sha256=digest,
                reason=f"command id {cmd.id!r} was used before for a different command",
            )
            self._send(result, cmd, remember=False, retain=False)
            return
        if last is not None:
            self.counts["repeated"] += 1
            log.info(
                "command repeated site=%s device=%s command=%s operator=%s source=%r last_state=%s",
                cmd.site,
                cmd.device,
                cmd.id,
                cmd.operator,
                cmd.source,
                last.state.value,
            )
            # an id cancelled before it arrived is remembered without a digest: the answer names this command
            answer = last.model_copy(update={"repeat": True, "cmd_sha256": last.cmd_sha256 or digest})
            self._send(answer, cmd, remember=False)
            return
        # a new id that verified: say so at once, before any check (the API waits for this, gates.receipt_timeout_s)
        self._send(self._step(cmd, ResultState.RECEIVED), cmd, remember=False, retain=False)
        now = self._now_ms()
        if self.closing:  # not remembered: the API may send the id again once the agent is back
            self._send(self._step(cmd, ResultState.REJECTED, reason="the edge agent is stopping"), cmd, remember=False)
        elif now - cmd.issued_ms > self.delivery_window_ms:
            self.counts["late"] += 1
            reason = (
                f"first seen {(now - cmd.issued_ms) / 1000:.1f} s after it was issued, later than the delivery window "
                f"of {self.delivery_window_ms / 1000:g} s: held back on its way, not executed"
            )
            self._result(cmd, ResultState.REJECTED, interlock=Interlock.LATE, reason=reason)
        elif cmd.action is Action.CANCEL:
            self._cancel(cmd)
        elif cmd.device not in (self.writers if cmd.action is Action.WRITE else self.gates):
            why = (
                "remote control is disabled for this device"
                if cmd.device in self.disabled
                else "not a controllable device of this agent"
                if cmd.device not in self.writers and cmd.device not in self.gates
                else "this device has no set points open to remote writes (control.points)"
                if cmd.action is Action.WRITE
                else "this device has set points only, no gate actions"
            )
            self._result(cmd, ResultState.REJECTED, interlock=Interlock.UNKNOWN_DEVICE, reason=why)
        elif now >= cmd.expires_ms:
            self._result(
                cmd,
                ResultState.REJECTED,
                interlock=Interlock.STALE,
                reason=f"received at or after expires_ms {cmd.expires_ms}",
            )
        elif cmd.action is Action.WRITE:
            self._dispatch_write(cmd)
        else:
            gate = self.gates[cmd.device]
            if cmd.action is Action.STOP:
                self._start(
                    gate.device.id, gate.io, _Run(cmd, None), self._stop(gate, cmd, self.running.get(cmd.device))
                )
                return
            target = target_of(cmd.action, cmd.target_pct, gate.limits)
            if cmd.device in self.running:  # checked now, not after a read: two commands may arrive together
                busy = check(cmd.action, target, None, gate.limits, busy=True)
                assert busy is not None
                self._result(cmd, ResultState.REJECTED, interlock=busy.interlock, reason=busy.reason, target_m=target)
                return
            run = _Run(cmd, target)
            self._start(gate.device.id, gate.io, run, self._move(gate, run))

    def _dispatch_write(self, cmd: Command) -> None:
        assert cmd.point is not None
        assert cmd.value is not None
        control = self.writers.get(cmd.device)
        wp = control.points.get(cmd.point) if control is not None else None
        if control is None or wp is None:
            reason = f"point {cmd.point!r} of {cmd.device!r} is not open to remote writes (control.points)"
            self._result(cmd, ResultState.REJECTED, interlock=Interlock.NOT_WRITABLE, reason=reason)
            return
        why = wp.refusal(cmd.value)
        if why is not None:
            self._result(cmd, ResultState.REJECTED, interlock=Interlock.OUT_OF_LIMITS, reason=why)
            return
        if cmd.device in self.running:
            running = self.running[cmd.device].command.id
            reason = f"command {running} is still running on this device"
            self._result(cmd, ResultState.REJECTED, interlock=Interlock.BUSY, reason=reason)
            return
        self._start(cmd.device, control.io, _Run(cmd, None), self._write(control, wp, cmd))

    def _cancel(self, cmd: Command) -> None:
        """Remember the cancelled id as rejected unless it was seen: a delivery that comes later is a repeat of that."""
        assert cmd.cancels is not None
        seen = self.log.get(cmd.cancels)
        if seen is not None:
            reason = f"command {cmd.cancels} was received before the cancel ({seen.state.value}): left as it is"
            self._result(cmd, ResultState.COMPLETED, reason=reason)
            return
        self.counts["cancelled"] += 1
        cancelled = CommandResult(
            id=cmd.cancels,
            site=self.site,
            device=cmd.device,
            state=ResultState.REJECTED,
            ts=self._now_ms(),
            reason=f"cancelled by command {cmd.id}: the API had no receipt of it in time; never executed",
        )
        self._remember(cancelled)  # not sent: its answer goes to the cancelled command itself, should it ever come
        self._result(cmd, ResultState.COMPLETED, reason=f"command {cmd.cancels} will not be executed")

    def _step(self, cmd: Command, state: ResultState, **fields: Any) -> CommandResult:
        return CommandResult(
            id=cmd.id,
            site=cmd.site,
            device=cmd.device,
            state=state,
            ts=self._now_ms(),
            cmd_sha256=command_digest(cmd),
            **fields,
        )

    def _start(self, device: str, io: ModbusGateIO, run: _Run, work: Coroutine[Any, Any, None]) -> None:
        previous = self.running.get(device)
        if previous is not None:  # only a stop gets here with a command running: from now on it writes no run
            previous.stopped_by = run.command.id
        self.running[device] = run
        # the id is taken from here on: a redelivery while it runs is a repeat, not a second run
        self.log.hold(
            CommandResult(
                id=run.command.id,
                site=self.site,
                device=device,
                state=ResultState.ACCEPTED,
                ts=self._now_ms(),
                cmd_sha256=command_digest(run.command),
            )
        )

        async def main() -> None:
            try:
                await work
            finally:
                if self.running.get(device) is run:
                    del self.running[device]
                    io.close()  # the device is idle: do not hold a second connection to it

        run.task = asyncio.create_task(main(), name=f"command-{run.command.id}")

    # -- execution --------------------------------------------------------------------------------------------------
    async def _read(self, gate: Gate) -> tuple[GateState | None, str]:
        try:
            values = await gate.io.read()
        except GateUnreachable as exc:
            return None, str(exc)
        state = GateState.from_values(values)
        return state, "" if state is not None else f"point(s) {', '.join(missing_points(values))} not readable"

    async def _move(self, gate: Gate, run: _Run) -> None:
        cmd, target = run.command, run.target_m
        assert target is not None
        state, why = await self._read(gate)
        refusal = check(cmd.action, target, state, gate.limits, busy=False, fault_labels=gate.fault_labels)
        before = state.as_values() if state is not None else {}
        if refusal is not None:
            reason = refusal.reason + (f": {why}" if refusal.interlock is Interlock.NO_DATA and why else "")
            self._result(
                cmd, ResultState.REJECTED, interlock=refusal.interlock, reason=reason, before=before, target_m=target
            )
            return
        assert state is not None
        self._result(cmd, ResultState.ACCEPTED, before=before, target_m=target, opening_m=state.opening_m)
        move = direction(state.opening_m, target, gate.limits.tolerance_m)
        if move == 0:
            await self._end(gate, run, ResultState.COMPLETED, "already at the target", before, state)
            return
        try:
            if not run.stopped_by:
                await gate.io.write_target(target)
            if not run.stopped_by:  # a stop that came meanwhile must not be followed by a run
                await gate.io.pulse("cmd_open" if move > 0 else "cmd_close")
        except GateUnreachable as exc:
            await self._end(gate, run, ResultState.FAILED, f"cannot write to the gate: {exc}", before, stop=True)
            return
        await self._follow(gate, run, target, before)

    async def _follow(self, gate: Gate, run: _Run, target: float, before: dict[str, Value]) -> None:
        """Read the opening back until the target, a fault, a stop, lost contact or the time-out ends the run."""
        deadline = self.clock.monotonic() + gate.timeout_s
        lost, still = 0, 0
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the agent's cancellation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(gate.readback_interval_s):
                    await run.stop_request.wait()
            if run.stop_request.is_set():
                await self._end(gate, run, ResultState.FAILED, f"stopped by {run.stopped_by}", before)
                return
            state, why = await self._read(gate)
            if state is None:
                lost += 1
                if lost >= LOST_READS:
                    await self._end(
                        gate, run, ResultState.FAILED, f"lost contact with the gate: {why}", before, stop=True
                    )
                    return
            else:
                lost = 0
                self._result(run.command, ResultState.PROGRESS, target_m=target, opening_m=state.opening_m)
                ended = self._outcome(gate, state, target, still)
                if ended is not None:
                    await self._end(gate, run, ended[0], ended[1], before, state, stop=ended[0] is ResultState.FAILED)
                    return
                still = 0 if state.moving else still + 1
            if self.clock.monotonic() >= deadline:
                reason = f"target {target:g} m not reached within {gate.timeout_s:g} s; stop sent"
                await self._end(gate, run, ResultState.TIMED_OUT, reason, before, stop=True)
                return

    @staticmethod
    def _outcome(gate: Gate, state: GateState, target: float, still: int) -> tuple[ResultState, str] | None:
        """How a read-back ends the run, if it does."""
        if direction(state.opening_m, target, gate.limits.tolerance_m) == 0 and not state.moving:
            return ResultState.COMPLETED, ""  # at rest on the target: ``after`` is where the gate stays
        fault = fault_of(state, gate.fault_labels)
        if fault is not None:
            return ResultState.FAILED, f"gate fault: {fault}"
        if not state.remote:
            return ResultState.FAILED, "selector switched to local during the movement"
        if not state.moving and still >= 1:  # two read-backs at rest: the PLC stopped or ignored the run
            where = (
                " at the upper limit switch"
                if state.limit_open
                else (" at the lower limit switch" if state.limit_closed else "")
            )
            return ResultState.FAILED, f"gate stopped{where} at {state.opening_m:g} m, short of the target {target:g} m"
        return None

    async def _write(self, control: PointControl, wp: WritablePoint, cmd: Command) -> None:
        """Read the point, write the value with the point's function, read it back within the tolerance."""
        assert cmd.value is not None
        point, name = wp.point, wp.point.name
        try:
            was = await control.io.read_point(point)
        except GateUnreachable as exc:
            reason = f"cannot read {name!r} before writing: {exc}"
            self._result(cmd, ResultState.REJECTED, interlock=Interlock.NO_DATA, reason=reason)
            return
        before: dict[str, Value] = {name: was}
        self._result(cmd, ResultState.ACCEPTED, before=before)
        try:
            function = await control.io.write_point(point, cmd.value)
        except (GateUnreachable, EncodeError) as exc:
            self._result(cmd, ResultState.FAILED, reason=f"cannot write {name!r}: {exc}", before=before)
            return
        try:
            now = await control.io.read_point(point)
        except GateUnreachable as exc:
            reason = f"written with function {function}, but the read-back failed: {exc}"
            self._result(cmd, ResultState.FAILED, reason=reason, before=before)
            return
        after: dict[str, Value] = {name: now}
        if wp.matches(cmd.value, now):
            self._result(cmd, ResultState.COMPLETED, before=before, after=after, reason=f"function {function}")
            return
        reason = (
            f"written {cmd.value!r} with function {function}, read back {now!r} (tolerance "
            f"{wp.tolerance_for(float(cmd.value)):g}): the device did not take the value"
        )
        self._result(cmd, ResultState.FAILED, before=before, after=after, reason=reason)

    async def _stop(self, gate: Gate, cmd: Command, running: _Run | None) -> None:
        """Stop the hoist now; never refused. Ends the ``running`` command; completed once the gate reads at rest."""
        state, _ = await self._read(gate)
        before = state.as_values() if state is not None else {}
        self._result(cmd, ResultState.ACCEPTED, before=before)
        try:
            await gate.io.pulse("cmd_stop")
        except GateUnreachable as exc:
            self._result(cmd, ResultState.FAILED, reason=f"cannot write to the gate: {exc}", before=before)
            return
        if running is not None and running.task is not None:
            running.stop_request.set()  # after the pulse, so that its ``after`` shows the gate stopping
            await asyncio.wait({running.task}, timeout=gate.timeout_s)  # it ends first, then this one
        deadline = self.clock.monotonic() + gate.timeout_s
        while True:
            state, _ = await self._read(gate)
            if state is not None and not state.moving:
                after = state.as_values()
                self._result(cmd, ResultState.COMPLETED, before=before, after=after, opening_m=state.opening_m)
                return
            if self.clock.monotonic() >= deadline:
                self._result(cmd, ResultState.TIMED_OUT, reason="the gate still reads moving", before=before)
                return
            await asyncio.sleep(gate.readback_interval_s)

    async def _end(
        self,
        gate: Gate,
        run: _Run,
        state: ResultState,
        reason: str,
        before: dict[str, Value],
        read: GateState | None = None,
        *,
        stop: bool = False,
    ) -> None:
        """The final result of a run: send stop first if asked, read the gate for ``after`` unless given."""
        if stop:
            try:
                await gate.io.pulse("cmd_stop")
            except GateUnreachable as exc:
                reason += f" (stop not delivered: {exc})"
        if read is None:
            read, _ = await self._read(gate)
        after = read.as_values() if read is not None else {}
        opening = read.opening_m if read is not None else None
        self._result(
            run.command, state, reason=reason, before=before, after=after, target_m=run.target_m, opening_m=opening
        )

    async def close(self) -> None:
        """The agent stops: end running commands (the PLC finishes a latched run by itself)."""
        self.closing = True
        runs = list(self.running.values())
        for run in runs:
            if run.task is not None:
                run.task.cancel()
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        reason = "the edge agent stopped while the command ran; the PLC finishes a latched run"
        for run in runs:
            self._result(run.command, ResultState.FAILED, target_m=run.target_m, reason=reason)
        for gate in self.gates.values():
            gate.io.close()

    # -- answering --------------------------------------------------------------------------------------------------
    def _result(self, cmd: Command, state: ResultState, **fields: Any) -> None:
        result = self._step(cmd, state, **fields)
        self._send(result, cmd, remember=state is ResultState.ACCEPTED or result.final)

    def _remember(self, result: CommandResult) -> None:
        """Keep the id in the file. If the file cannot take it (a full disk), the id is kept in memory for this run
        and the command goes on: every action drives to an absolute position and expires, so running it again
        after a restart moves nothing further, and a stop must never wait for a disk."""
        try:
            self.log.put(result, self._now_ms())
        except OSError as exc:
            self.counts["ids_not_kept"] = self.counts.get("ids_not_kept", 0) + 1
            log.error(  # noqa: TRY400 (classified: the disk, no traceback)
                "command id not kept on disk site=%s command=%s state=%s error=%r ids_not_kept=%d action=kept in "
                "memory for this run, the command goes on",
                self.site,
                result.id,
                result.state.value,
                str(exc),
                self.counts["ids_not_kept"],
            )

    def _send(
        self, result: CommandResult, cmd: Command | None, *, remember: bool = True, retain: bool | None = None
    ) -> None:
        if remember:
            self._remember(result)
        if result.final and not result.repeat:
            self.counts[result.state.value] = self.counts.get(result.state.value, 0) + 1
        topic = topics.command_result(result.site, result.device, result.id)
        # signed as sent (a repeat differs from the original by ``repeat``); unsigned only without keys
        wire = sign(result, self.keys.site) if self.keys is not None else result
        # final results retained, so that a late reader sees how the command ended; a repeat leaves the original
        retain = result.final and not result.repeat if retain is None else retain
        self.publish(OutMessage(topic, wire.model_dump_json(exclude_none=True).encode(), retain=retain))
        audit = {
            "site": result.site,
            "device": result.device,
            "command": result.id,
            "state": result.state.value,
            "action": cmd.action.value if cmd else None,
            "operator": cmd.operator if cmd else None,
            "source": cmd.source if cmd else None,
            "target_m": result.target_m,
            "opening_m": result.opening_m,
            "interlock": result.interlock.value if result.interlock else None,
            "reason": result.reason or None,
            "repeat": result.repeat or None,
            "before": result.before or None,
            "after": result.after or None,
        }
        level = logging.DEBUG if result.state is ResultState.PROGRESS else logging.INFO
        log.log(level, "command %s", orjson.dumps({k: v for k, v in audit.items() if v is not None}).decode())

    def _invalid(
        self,
        topic: str,
        payload: bytes,
        reason: str,
        answer_to: tuple[str, str] | None,
        digest: str = "",
        interlock: Interlock | None = None,
        count: str = "invalid",
    ) -> None:
        """Dead-letter a message that is no command this agent may run; answer ``rejected`` when its id can be read.

        The answer is neither retained nor remembered, and names in ``cmd_sha256`` what it answers: a forged message
        under a real command's id neither burns the id nor passes at the API for the answer to the real one."""
        self.counts[count] += 1
        self.dead_letters.add(self._now_ms(), topic, payload, reason, stage="command")  # never replayed
        if answer_to is None:
            return
        device, command_id = answer_to
        result = CommandResult(
            id=command_id,
            site=self.site,
            device=device,
            state=ResultState.REJECTED,
            ts=self._now_ms(),
            interlock=interlock,
            reason=reason[:500],
            cmd_sha256=digest,
        )
        self._send(result, None, remember=False, retain=False)


def _errors(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)
