"""Gate control at the API: select-before-operate, interlocks, publishing commands, recording every result.

Synchronous (database and a blocking QoS 1 publish): request handlers call it from worker threads, the MQTT thread
calls :meth:`GateService.on_result`, a background task calls :meth:`GateService.sweep`. One lock orders the
checks and writes of this process, so "one command at a time per gate" holds between concurrent requests.

Every command is signed with its site's control key; every result is verified with the site's key before anything
is recorded, and must answer the very command the API sent under its id (``cmd_sha256``). A result that fails
either is not recorded: it is audited (``gate.result.bad_signature``, ``gate.result.other_command``) and counted.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, insert, select, update

from api._gate_checks import Refusal, check, fault_labels, gate_snapshot
from api._tables import commands, selections
from api.auth import Permission, Principal
from api.config import ApiConfig, SiteKeys
from api.live import Event, LiveCache
from device_profiles import Profile
from infra.clock import MillisClock as Clock
from telemetry import encode, topics
from telemetry.commands import FINAL_STATES, Action, Command, CommandResult, Interlock, ResultState
from telemetry.signing import SignatureError, command_digest, sign, verify

log = logging.getLogger("lifeline.api.gates")

Publish = Callable[[str, bytes], "str | None"]  # topic, payload -> None when the broker took it, else why not
Audit = Callable[..., None]  # (who=, action=, target=, source=, detail=)
PUBLISH_FAILED = "publish_failed"


class RefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Selection:
    id: str
    site: str
    device: str
    username: str
    created_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class CommandRequest:
    action: Action
    target_pct: float | None
    ttl_s: float
    id: str | None = None


@dataclass(slots=True)
class CommandView:
    id: str
    site: str
    device: str
    action: str
    target_pct: float | None
    ttl_s: float
    issued_ms: int
    expires_ms: int
    deadline_ms: int
    operator: str
    source: str
    state: str
    final: bool
    interlock: str | None
    reason: str
    before: dict[str, object]
    after: dict[str, object]
    steps: list[dict[str, object]] = field(default_factory=list)

    def event(self) -> dict[str, object]:
        return {
            "id": self.id,
            "site": self.site,
            "device": self.device,
            "action": self.action,
            "state": self.state,
            "final": self.final,
            "reason": self.reason,
            "steps": len(self.steps),
        }


def _view(row: object) -> CommandView:
    r = dict(row)  # type: ignore[call-overload]
    target = json.loads(r["target_pct"]) if r["target_pct"] is not None else None
    return CommandView(
        r["id"],
        r["site"],
        r["device"],
        r["action"],
        target,
        float(json.loads(r["ttl_s"])),
        int(r["issued_ms"]),
        int(r["expires_ms"]),
        int(r["deadline_ms"]),
        r["operator"],
        r["source"],
        r["state"],
        bool(r["final"]),
        r["interlock"],
        r["reason"],
        json.loads(r["before"]),
        json.loads(r["after"]),
        json.loads(r["steps"]),
    )


class GateService:
    def __init__(
        self,
        config: ApiConfig,
        engine: Engine,
        cache: LiveCache,
        publish: Publish,
        audit: Audit,
        emit: Callable[[Event], None],
        clock: Clock,
        keys: Mapping[str, SiteKeys] | None = None,
        profiles: Mapping[str, Profile] | None = None,
    ) -> None:
        self.config = config
        self.profiles: Mapping[str, Profile] = profiles or {}  # for the words of a gate's fault codes
        self.keys: Mapping[str, SiteKeys] = keys or {}  # a site without keys: commands refused, results not recorded
        self.gates = config.gates
        self.engine = engine
        self.cache = cache
        self.publish = publish
        self.audit = audit
        self.emit = emit
        self.clock = clock
        self.results: Counter[str] = Counter()  # commands by result, for /metrics
        self.refusals: Counter[str] = Counter()  # refusals by interlock
        self.bad_results: Counter[str] = Counter()  # results not recorded, by why (signature, other_command)
        self._lock = threading.Lock()

    # -- authorisation -------------------------------------------------------------------------------------
    def authorise(self, who: Principal, site: str) -> Refusal | None:
        if not who.may(Permission.GATE_CONTROL):
            return Refusal(
                Interlock.ROLE, f"role {who.role.value} may not operate gates", 403, None, "", {"role": who.role.value}
            )
        area = self.config.area_of(site)
        if not who.sees_area(area):
            return Refusal(Interlock.AREA, f"site {site!r} is outside your areas", 403, None, "", {"site": site})
        return None

    def _refuse(self, who: Principal, site: str, device: str, source: str, refusal: Refusal, **detail: object) -> None:
        self.refusals[refusal.interlock.value] += 1
        self.results["refused"] += 1
        self.audit(
            who=who.username,
            action="gate.command.refused",
            target=f"gate:{site}/{device}",
            source=source,
            detail={"interlock": refusal.interlock.value, "reason": refusal.reason, **detail},
        )
        raise RefusedError(refusal)

    # -- select ----------------------------------------------------------------------------------------------
    def select(self, who: Principal, site: str, device: str, source: str) -> Selection:
        refusal = self.authorise(who, site)
        if refusal is not None:
            self._refuse(who, site, device, source, refusal, step="select")
        now = self.clock()
        sel = Selection(
            f"sel-{secrets.token_hex(8)}", site, device, who.username, now, now + int(self.gates.selection_s * 1000)
        )
        with self.engine.begin() as conn:
            conn.execute(
                insert(selections).values(
                    id=sel.id,
                    site=site,
                    device=device,
                    username=who.username,
                    created_ms=now,
                    expires_ms=sel.expires_ms,
                    used_by=None,
                )
            )
        self.audit(
            who=who.username,
            action="gate.select",
            target=f"gate:{site}/{device}",
            source=source,
            detail={
                "selection": sel.id,
                "expires_ms": sel.expires_ms,
                "state": gate_snapshot(self.cache.get(site, device)),
            },
        )
        return sel

    # -- operate ---------------------------------------------------------------------------------------------
    def operate(
        self, who: Principal, site: str, device: str, selection: str | None, req: CommandRequest, source: str
    ) -> tuple[CommandView, bool]:
        """Check, record and publish a command; (the command, whether it is new). Raises RefusedError."""
        refusal = self.authorise(who, site)
        if refusal is not None:
            self._refuse(who, site, device, source, refusal, action=req.action.value)
        keys = self.keys.get(site)
        if keys is None:
            self._refuse(
                who,
                site,
                device,
                source,
                Refusal(
                    Interlock.SIGNATURE,
                    f"no control key is configured for site {site!r}: its commands cannot be signed",
                ),
                action=req.action.value,
            )
        assert keys is not None
        with self._lock:
            if req.id is not None:
                existing = self.get(req.id)
                if existing is not None:
                    if self._same(existing, who, site, device, req):
                        return existing, False
                    self._refuse(
                        who,
                        site,
                        device,
                        source,
                        Refusal(
                            Interlock.REPEATED,
                            f"command id {req.id!r} was used before for a different command",
                            409,
                            "id",
                        ),
                        command=req.id,
                    )
            now = self.clock()
            state = self.cache.get(site, device)
            refusal = self._check_selection(who, site, device, selection, req.action, now)
            profile = self.profiles.get(state.profile) if state is not None else None
            labels = fault_labels(profile)
            refusal = refusal or check(
                req.action,
                req.target_pct,
                state,
                self.gates.limits(site, device),
                now,
                int(self.gates.max_state_age_s * 1000),
                labels,
                profile,
            )
            refusal = refusal or self._check_busy(site, device, req.action)
            if refusal is not None:
                self._refuse(who, site, device, source, refusal, action=req.action.value, state=gate_snapshot(state))
            command = sign(
                Command(
                    id=req.id or f"c-{secrets.token_hex(10)}",
                    site=site,
                    device=device,
                    action=req.action,
                    target_pct=req.target_pct,
                    issued_ms=now,
                    expires_ms=now + max(1, int(req.ttl_s * 1000)),
                    operator=who.username,
                    source=source[:256],
                ),
                keys.control,
            )
            before = gate_snapshot(state)
            self._insert(command, req.ttl_s, before, selection)
        self.audit(
            who=who.username,
            action="gate.command",
            target=f"gate:{site}/{device}/cmd/{command.id}",
            source=source,
            detail={
                "action": command.action.value,
                "target_pct": command.target_pct,
                "expires_ms": command.expires_ms,
                "before": before,
            },
        )
        problem = self.publish(topics.command(site, device, command.id), encode(command))
        if problem is not None:
            self._finish(command.id, PUBLISH_FAILED, ResultState.FAILED.value, problem, {}, None)
        else:
            self.results["published"] += 1
            self._event(self.get(command.id))
        view = self.get(command.id)
        assert view is not None
        return view, True

    def _same(self, c: CommandView, who: Principal, site: str, device: str, req: CommandRequest) -> bool:
        return (c.site, c.device, c.operator, c.action, c.target_pct, c.ttl_s) == (
            site,
            device,
            who.username,
            req.action.value,
            req.target_pct,
            req.ttl_s,
        )

    def _check_selection(
        self, who: Principal, site: str, device: str, selection: str | None, action: Action, now: int
    ) -> Refusal | None:
        if action is Action.STOP:
            return None  # stop is never held back (contract): no selection needed
        if not selection:
            return Refusal(
                Interlock.SELECTION,
                "select the gate first (POST .../select)",
                409,
                "selection",
                "interlock.selection.none",
            )
        with self.engine.connect() as conn:
            row = conn.execute(select(selections).where(selections.c.id == selection)).mappings().first()
        if row is None or row["site"] != site or row["device"] != device or row["username"] != who.username:
            return Refusal(
                Interlock.SELECTION,
                "no such selection of this gate by you",
                409,
                "selection",
                "interlock.selection.unknown",
            )
        if row["used_by"] is not None:
            return Refusal(
                Interlock.SELECTION,
                f"the selection was used by command {row['used_by']}",
                409,
                "selection",
                "interlock.selection.used",
                {"command": row["used_by"]},
            )
        if now >= row["expires_ms"]:
            return Refusal(
                Interlock.SELECTION,
                "the selection has expired: select again",
                409,
                "selection",
                "interlock.selection.expired",
            )
        return None

    def _check_busy(self, site: str, device: str, action: Action) -> Refusal | None:
        if action is Action.STOP:
            return None
        query = select(commands.c.id).where(commands.c.site == site, commands.c.device == device, ~commands.c.final)
        with self.engine.connect() as conn:
            running = conn.execute(query.limit(1)).scalar()
        if running is not None:
            return Refusal(
                Interlock.BUSY,
                f"command {running} is still running on this gate",
                code="interlock.busy.running",
                params={"command": running},
            )
        return None

    def _insert(self, command: Command, ttl_s: float, before: dict[str, object], selection: str | None) -> None:
        deadline = command.expires_ms + int(self.gates.edge_timeout_s * 1000)
        with self.engine.begin() as conn:
            conn.execute(
                insert(commands).values(
                    id=command.id,
                    site=command.site,
                    device=command.device,
                    action=command.action.value,
                    target_pct=json.dumps(command.target_pct) if command.target_pct is not None else None,
                    ttl_s=json.dumps(ttl_s),
                    issued_ms=command.issued_ms,
                    expires_ms=command.expires_ms,
                    deadline_ms=deadline,
                    operator=command.operator,
                    source=command.source,
                    state="published",
                    final=False,
                    interlock=None,
                    reason="",
                    before=json.dumps(before),
                    after="{}",
                    steps="[]",
                    updated_ms=command.issued_ms,
                )
            )
            if selection and command.action is not Action.STOP:
                conn.execute(update(selections).where(selections.c.id == selection).values(used_by=command.id))

    # -- results ---------------------------------------------------------------------------------------------
    def get(self, command_id: str) -> CommandView | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings().first()
        return None if row is None else _view(row)

    def list_commands(
        self, site: str | None, device: str | None, sites: set[str] | None, limit: int
    ) -> list[CommandView]:
        query = select(commands).order_by(commands.c.issued_ms.desc()).limit(limit)
        if site is not None:
            query = query.where(commands.c.site == site)
        if device is not None:
            query = query.where(commands.c.device == device)
        if sites is not None:
            query = query.where(commands.c.site.in_(sorted(sites)))
        with self.engine.connect() as conn:
            return [_view(r) for r in conn.execute(query).mappings()]

    def on_result(self, result: CommandResult, topic: str) -> None:
        """Record one CommandResult from the edge (every one, in arrival order, as a step of its command) if it is
        signed by its site's edge and answers the command the API sent; else audit and count it, record nothing."""
        keys = self.keys.get(result.site)
        try:
            verify(result, keys.site if keys is not None else None)
        except SignatureError as exc:
            self._bad_result(result, topic, "signature", f"{exc} (site {result.site!r})")
            return
        with self._lock:
            view = self.get(result.id)
            if view is None or (view.site, view.device) != (result.site, result.device):
                log.info(
                    "command result for an unknown command id=%s site=%s device=%s",
                    result.id,
                    result.site,
                    result.device,
                )
                return
            other = result.cmd_sha256 != _digest(view)
            if not other:
                self._record(view, result)
        if other:
            # the edge answered something else under this id (a forged or reused command): not this command's step
            why = (
                f"the result answers another command than the one the API sent under id {result.id!r} (cmd_sha256 "
                f"{result.cmd_sha256 or 'missing'})"
            )
            self._bad_result(result, topic, "other_command", why)
            return
        self._after_record(view, result)

    def _bad_result(self, result: CommandResult, topic: str, kind: str, reason: str) -> None:
        self.bad_results[kind] += 1
        log.warning("command result not recorded topic=%s why=%s reason=%s", topic, kind, reason)
        action = "gate.result.bad_signature" if kind == "signature" else f"gate.result.{kind}"
        self.audit(
            who="unverified",
            action=action,
            target=f"gate:{result.site}/{result.device}/cmd/{result.id}",
            source=topic,
            detail={"topic": topic, "reason": reason, "state": result.state.value, "kid": result.kid},
        )

    def _record(self, view: CommandView, result: CommandResult) -> None:
        """Write a verified result as a step of its command (under the lock); the step keeps kid and sig, so an
        auditor can verify it again later."""
        step = result.model_dump(mode="json", exclude_defaults=True)
        late = view.final
        if late:
            step["late"] = True  # the API had ended the command already (timed out): kept, state unchanged
        values: dict[str, object] = {"steps": json.dumps([*view.steps, step]), "updated_ms": self.clock()}
        if not late and view.state not in {s.value for s in FINAL_STATES}:
            values["state"] = result.state.value
            values["final"] = result.final
            values["interlock"] = result.interlock.value if result.interlock else None
            values["reason"] = result.reason
            if result.after:
                values["after"] = json.dumps(result.after)
        with self.engine.begin() as conn:
            conn.execute(update(commands).where(commands.c.id == result.id).values(**values))

    def _after_record(self, view: CommandView, result: CommandResult) -> None:
        """Count, audit and announce a recorded result (outside the lock)."""
        late = view.final
        if result.final and not late:
            self.results[result.state.value] += 1
        self.audit(
            who=view.operator,
            action=f"gate.command.{result.state.value}",
            target=f"gate:{view.site}/{view.device}/cmd/{view.id}",
            source=view.source,
            detail={
                "by": "edge",
                "state": result.state.value,
                "interlock": result.interlock.value if result.interlock else None,
                "reason": result.reason,
                "before": result.before,
                "after": result.after,
                "opening_m": result.opening_m,
                "repeat": result.repeat,
                "late": late,
            },
        )
        self._event(self.get(result.id))

    def _finish(
        self, command_id: str, result: str, state: str, reason: str, after: dict[str, object], by: str | None
    ) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                update(commands)
                .where(commands.c.id == command_id, ~commands.c.final)
                .values(state=state, final=True, reason=reason, updated_ms=self.clock())
            )
        self.results[result] += 1
        view = self.get(command_id)
        if view is None:
            return
        self.audit(
            who=view.operator,
            action=f"gate.command.{state}",
            target=f"gate:{view.site}/{view.device}/cmd/{view.id}",
            source=view.source,
            detail={"by": by or "api", "state": state, "reason": reason, "before": view.before, "after": after},
        )
        self._event(view)

    def sweep(self) -> list[str]:
        """Mark ``timed_out`` every command without a final result past its expiry plus the edge's time-out."""
        now = self.clock()
        query = select(commands.c.id).where(~commands.c.final, commands.c.deadline_ms <= now)
        with self.engine.connect() as conn:
            due = [str(r) for r in conn.execute(query).scalars()]
        for command_id in due:
            self._finish(
                command_id,
                ResultState.TIMED_OUT.value,
                ResultState.TIMED_OUT.value,
                "no final result from the edge before the command's expiry and the edge's time-out",
                {},
                "api",
            )
        return due

    def _event(self, view: CommandView | None) -> None:
        if view is not None:
            self.emit(Event("command", self.config.area_of(view.site), view.site, view.event()))


def _digest(view: CommandView) -> str:
    """``command_digest`` of the command as the API recorded (and signed) it."""
    command = Command(
        id=view.id,
        site=view.site,
        device=view.device,
        action=Action(view.action),
        target_pct=view.target_pct,
        issued_ms=view.issued_ms,
        expires_ms=view.expires_ms,
        operator=view.operator,
        source=view.source,
    )
    return command_digest(command)
