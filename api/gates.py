"""Gate control at the API: select-before-operate, interlocks, publishing commands, recording every result.

Synchronous (database and a blocking QoS 1 publish): request handlers call it from worker threads, the MQTT thread
calls :meth:`GateService.on_result`, a background task calls :meth:`GateService.sweep`. One lock orders the
checks and writes of this process, so "one command at a time per gate" holds between concurrent requests.

Every command is signed with its site's control key; every result is verified with the site's key before anything
is recorded, and must answer the very command the API sent under its id (``cmd_sha256``). A result that fails
either is not recorded: it is audited (``gate.result.bad_signature``, ``gate.result.other_command``) and counted.

The edge confirms receipt (``received``) of every command that verifies; one without it after
``gates.receipt_timeout_s`` ends ``not_delivered`` and a signed ``cancel`` naming it follows, so that a delivery held
back and let through later is never executed. A verified result for an id the API never sent is the edge refusing
(or, worse, running) a command the API did not send: audited as ``command.forged`` and alerted (rule
:data:`FORGED_RULE`), once per id however often it is redelivered. A command's result is recorded and audited once
per state: the retained final result that every reconnect hands again is a duplicate (the steps, kept in the
commands table, are the durable memory of that).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from api import _command_rows as rows
from api._command_rows import CommandView
from api._gate_checks import Refusal, check, check_write, fault_labels, gate_snapshot
from api._tables import commands, selections
from api.auth import Permission, Principal
from api.config import ApiConfig, SiteKeys
from api.live import Event, LiveCache
from device_profiles import Profile
from infra.clock import MillisClock as Clock
from telemetry import encode, topics
from telemetry.commands import FINAL_STATES, Action, Command, CommandResult, Interlock, ResultState
from telemetry.signing import SignatureError, sign, verify

__all__ = [
    "FORGED_RULE",
    "HELD_BACK_RULE",
    "NOT_DELIVERED",
    "PUBLISH_FAILED",
    "CommandRequest",
    "CommandView",
    "GateService",
    "RefusedError",
    "Selection",
]

log = logging.getLogger("lifeline.api.gates")

Publish = Callable[[str, bytes], "str | None"]  # topic, payload -> None when the broker took it, else why not
Audit = Callable[..., None]  # (who=, action=, target=, source=, detail=)
Audited = Callable[[str, str], list[dict[str, object]]]  # (action, target) -> details of such audit entries
Alert = Callable[[str, str, str, str, str], None]  # (rule, site, device, value, reason): raise a command alert
PUBLISH_FAILED = "publish_failed"
NOT_DELIVERED = "not_delivered"  # the API's own final state: no receipt from the edge in time, cancel sent
FORGED_RULE = "lifeline.command.forged"  # the alert of a command the API did not send, refused (or run) at the edge
HELD_BACK_RULE = "lifeline.command.held_back"  # the API's own command, refused at the edge as delivered too late
CANCEL_PREFIX = "x-"


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
    point: str | None = None  # write only
    value: float | bool | None = None  # write only


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
        audited: Audited | None = None,
        alert: Alert | None = None,
        profile_of: Callable[[str, str, str], Profile | None] | None = None,
    ) -> None:
        self.config = config
        # (site, device, profile name) -> the device's effective profile (its site file's point changes applied)
        self.profile_of = profile_of or (lambda _site, _device, name: self.profiles.get(name))
        self.audited: Audited = audited or (lambda _action, _target: [])
        self.alert: Alert = alert or (lambda _rule, _site, _device, _value, _reason: None)
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
        self.bad_results: Counter[str] = Counter()  # results not recorded, by why (signature, other_command, forged)
        self.duplicates = 0  # results recorded before (a retained final result handed again), neither kept nor audited
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
        write = detail.get("action") == Action.WRITE.value
        self.audit(
            who=who.username,
            action="point.write.refused" if write else "gate.command.refused",
            target=f"point:{site}/{device}/{detail.get('point')}" if write else f"gate:{site}/{device}",
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
        what: dict[str, object] = {"action": req.action.value}
        if req.point is not None:
            what["point"] = req.point
        refusal = self.authorise(who, site)
        if refusal is not None:
            self._refuse(who, site, device, source, refusal, **what)
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
                **what,
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
                        **what,
                    )
            now = self.clock()
            state = self.cache.get(site, device)
            profile = self.profile_of(site, device, state.profile) if state is not None else None
            detail: dict[str, object] = {"action": req.action.value, "state": gate_snapshot(state)}
            if req.action is Action.WRITE:
                assert req.point is not None
                assert req.value is not None
                detail = {"action": req.action.value, "point": req.point, "value": req.value}
                refusal = (
                    self._check_selection(who, site, device, selection, req.action, now)
                    if self.gates.write_selection
                    else None
                )
                max_age = int(self.gates.max_state_age_s * 1000)
                refusal = refusal or check_write(req.point, req.value, state, profile, now, max_age)
            else:
                refusal = self._check_selection(who, site, device, selection, req.action, now)
                refusal = refusal or check(
                    req.action,
                    req.target_pct,
                    state,
                    self.gates.limits(site, device),
                    now,
                    int(self.gates.max_state_age_s * 1000),
                    fault_labels(profile),
                    profile,
                )
            refusal = refusal or self._check_busy(site, device, req.action)
            if refusal is not None:
                self._refuse(who, site, device, source, refusal, **detail)
            command = sign(
                Command(
                    id=req.id or f"c-{secrets.token_hex(10)}",
                    site=site,
                    device=device,
                    action=req.action,
                    target_pct=req.target_pct,
                    point=req.point,
                    value=req.value,
                    issued_ms=now,
                    expires_ms=now + max(1, int(req.ttl_s * 1000)),
                    operator=who.username,
                    source=source[:256],
                ),
                keys.control,
            )
            before = gate_snapshot(state) if req.action is not Action.WRITE else rows.point_snapshot(state, req.point)
            self._insert(command, req.ttl_s, before, selection)
        audit_detail: dict[str, object] = {
            "action": command.action.value,
            "target_pct": command.target_pct,
            "expires_ms": command.expires_ms,
            "before": before,
        }
        if command.action is Action.WRITE:
            audit_detail = {**audit_detail, "point": command.point, "value": command.value}
        self.audit(
            who=who.username,
            action=rows.audit_name(command.action.value),
            target=rows.target(command.site, command.device, command.id, command.point),
            source=source,
            detail=audit_detail,
        )
        self._publish(command)
        view = self.get(command.id)
        assert view is not None
        return view, True

    def _publish(self, command: Command) -> None:
        problem = self.publish(topics.command(command.site, command.device, command.id), encode(command))
        if problem is not None:
            self._finish(command.id, PUBLISH_FAILED, ResultState.FAILED.value, problem, {}, None)
        else:
            self.results["published"] += 1
            self._event(self.get(command.id))

    def _same(self, c: CommandView, who: Principal, site: str, device: str, req: CommandRequest) -> bool:
        return (c.site, c.device, c.operator, c.action, c.target_pct, c.ttl_s, c.point, c.value) == (
            site,
            device,
            who.username,
            req.action.value,
            req.target_pct,
            req.ttl_s,
            req.point,
            req.value,
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
        query = select(commands.c.id).where(
            commands.c.site == site,
            commands.c.device == device,
            ~commands.c.final,
            commands.c.action != Action.CANCEL.value,
        )
        with self.engine.connect() as conn:
            running = conn.execute(query.limit(1)).scalar()
        if running is not None:
            return Refusal(
                Interlock.BUSY,
                f"command {running} is still running on this device",
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
                    point=command.point,
                    value=json.dumps(command.value) if command.value is not None else None,
                    cancels=command.cancels,
                )
            )
            if selection and command.action is not Action.STOP:
                conn.execute(update(selections).where(selections.c.id == selection).values(used_by=command.id))

    # -- results ---------------------------------------------------------------------------------------------
    def get(self, command_id: str) -> CommandView | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings().first()
        return None if row is None else rows.view(row)

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
            return [rows.view(r) for r in conn.execute(query).mappings()]

    def on_result(self, result: CommandResult, topic: str) -> None:
        """Record one CommandResult from the edge (every new one, in arrival order, as a step of its command) if it
        is signed by its site's edge and answers the command the API sent; else audit and count it, record nothing.
        A result recorded already (the retained final one again after a reconnect) is neither recorded nor audited
        again."""
        keys = self.keys.get(result.site)
        try:
            verify(result, keys.site if keys is not None else None)
        except SignatureError as exc:
            self._bad_result(result, topic, "signature", f"{exc} (site {result.site!r})")
            return
        with self._lock:
            view = self.get(result.id)
            if view is None or (view.site, view.device) != (result.site, result.device):
                other, duplicate = False, False
            else:
                other = result.cmd_sha256 != rows.digest(view)
                duplicate = not other and rows.seen(view, result)
                if not other and not duplicate:
                    self._record(view, result)
        if view is None or (view.site, view.device) != (result.site, result.device):
            self._unknown_result(result, topic)
            return
        if other:
            # the edge answered something else under this id (a forged or reused command): not this command's step
            why = (
                f"the result answers another command than the one the API sent under id {result.id!r} (cmd_sha256 "
                f"{result.cmd_sha256 or 'missing'})"
            )
            self._bad_result(result, topic, "other_command", why)
            return
        if duplicate:
            self.duplicates += 1
            log.debug("command result recorded before command=%s state=%s", result.id, result.state.value)
            return
        self._after_record(view, result)

    def _unknown_result(self, result: CommandResult, topic: str) -> None:
        """A verified result for an id the API never sent: the edge refused a forged command (signature, wrong site,
        reused id, a payload that is no command), or ran one. Audited and alerted once per id and state."""
        ran = result.state is not ResultState.REJECTED
        if result.state is ResultState.RECEIVED:
            return  # the edge's rejection or its run follows: that is what is audited
        kind = "forged_ran" if ran else "forged"
        interlock = result.interlock.value if result.interlock else "invalid"
        why = f"the edge {result.state.value} command {result.id!r}, which the API did not send" + (
            f" (interlock {interlock}: {result.reason})" if not ran else f": {result.reason}" if result.reason else ""
        )
        self._bad_result(result, topic, kind, why)

    def _bad_result(self, result: CommandResult, topic: str, kind: str, reason: str) -> None:
        """Audit (and alert) a result that is not recorded, once per kind, command id and state: a forged message
        redelivered, or handed again on every reconnect, is one entry."""
        self.bad_results[kind] += 1
        action = {
            "signature": "gate.result.bad_signature",
            "forged": "command.forged",
            "forged_ran": "command.forged_ran",
        }.get(kind, f"gate.result.{kind}")
        target = rows.target(result.site, result.device, result.id)
        if any(d.get("state") == result.state.value for d in self.audited(action, target)):
            log.debug("command result not recorded, audited before topic=%s why=%s", topic, kind)
            return
        log.warning("command result not recorded topic=%s why=%s reason=%s", topic, kind, reason)
        self.audit(
            who="unverified" if kind == "signature" else "edge",
            action=action,
            target=target,
            source=topic,
            detail={
                "topic": topic,
                "reason": reason,
                "state": result.state.value,
                "kid": result.kid,
                "interlock": result.interlock.value if result.interlock else None,
                "edge_reason": result.reason,
                "cmd_sha256": result.cmd_sha256,
            },
        )
        # an alert per device the API knows; names it does not know (an unverified message may say anything) go to
        # the site's agent, so that invented devices cannot make alert rows of their own
        known = self.cache.get(result.site, result.device) is not None
        self.alert(FORGED_RULE, result.site, result.device if known else "agent", result.id, reason)

    def _record(self, view: CommandView, result: CommandResult) -> None:
        """Write a verified result as a step of its command (under the lock); the step keeps kid and sig, so an
        auditor can verify it again later."""
        step = result.model_dump(mode="json", exclude_defaults=True)
        late = view.final
        if late:
            step["late"] = True  # the API had ended the command already (timed out): kept, state unchanged
        # ... unless it was "not delivered" and the edge got it after all (within its delivery window, before the
        # cancel): then the command shows what the edge does with it, never a stale "not delivered"
        revived = view.state == NOT_DELIVERED and result.state is not ResultState.REJECTED
        values: dict[str, object] = {"steps": json.dumps([*view.steps, step]), "updated_ms": self.clock()}
        if revived or (not late and view.state not in {s.value for s in FINAL_STATES}):
            values["state"] = result.state.value
            values["final"] = result.final
            values["interlock"] = result.interlock.value if result.interlock else None
            values["reason"] = result.reason + (
                " (delivered after the API had reported it not delivered)" if revived else ""
            )
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
            action=f"{rows.audit_name(view.action)}.{result.state.value}",
            target=rows.target(view.site, view.device, view.id, view.point),
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
        if result.interlock is Interlock.LATE and not result.repeat:
            # held back between the API and the edge (a taken-over session, a queue): refused, and someone must know
            why = f"command {view.id} ({view.action} by {view.operator}) reached the edge too late: {result.reason}"
            self.alert(HELD_BACK_RULE, view.site, view.device, view.id, why)
        self._event(self.get(result.id))

    def _finish(
        self, command_id: str, result: str, state: str, reason: str, after: dict[str, object], by: str | None
    ) -> CommandView | None:
        with self._lock, self.engine.begin() as conn:
            done = conn.execute(
                update(commands)
                .where(commands.c.id == command_id, ~commands.c.final)
                .values(state=state, final=True, reason=reason, updated_ms=self.clock())
            ).rowcount
        view = self.get(command_id)
        if view is None or not done:
            return None  # ended meanwhile (a final result came first): nothing to finish
        self.results[result] += 1
        self.audit(
            who=view.operator,
            action=f"{rows.audit_name(view.action)}.{state}",
            target=rows.target(view.site, view.device, view.id, view.point),
            source=view.source,
            detail={"by": by or "api", "state": state, "reason": reason, "before": view.before, "after": after},
        )
        self._event(view)
        return view

    def sweep(self) -> list[str]:
        """End what the edge did not answer: ``not_delivered`` (and cancelled) every command whose receipt did not
        come within ``receipt_timeout_s``; ``timed_out`` every command without a final result past its expiry plus the
        edge's time-out."""
        now = self.clock()
        receipt_ms = int(self.gates.receipt_timeout_s * 1000)
        unsent = select(commands.c.id).where(
            ~commands.c.final,
            commands.c.state == "published",
            commands.c.issued_ms <= now - receipt_ms,
            commands.c.action != Action.CANCEL.value,
        )
        query = select(commands.c.id).where(~commands.c.final, commands.c.deadline_ms <= now)
        with self.engine.connect() as conn:
            lost = [str(r) for r in conn.execute(unsent).scalars()]
            due = [str(r) for r in conn.execute(query).scalars()]
        for command_id in lost:
            reason = (
                f"the edge did not confirm receipt within {self.gates.receipt_timeout_s:g} s: not delivered; "
                "a cancel was sent so that a later delivery is not executed"
            )
            view = self._finish(command_id, NOT_DELIVERED, NOT_DELIVERED, reason, {}, "api")
            if view is not None:
                self._cancel(view)
        for command_id in due:
            if command_id in lost:
                continue
            self._finish(
                command_id,
                ResultState.TIMED_OUT.value,
                ResultState.TIMED_OUT.value,
                "no final result from the edge before the command's expiry and the edge's time-out",
                {},
                "api",
            )
        return lost + [c for c in due if c not in lost]

    def _cancel(self, view: CommandView) -> None:
        """Publish a signed cancel of ``view`` (recorded as a command of its own, audited as ``command.cancel``)."""
        keys = self.keys.get(view.site)
        if keys is None:
            return
        now = self.clock()
        with self._lock:
            command = sign(
                Command(
                    id=f"{CANCEL_PREFIX}{secrets.token_hex(10)}",
                    site=view.site,
                    device=view.device,
                    action=Action.CANCEL,
                    cancels=view.id,
                    issued_ms=now,
                    expires_ms=max(view.expires_ms, now + int(self.gates.default_ttl_s * 1000)),
                    operator=view.operator,
                    source="api: no receipt",
                ),
                keys.control,
            )
            self._insert(command, (command.expires_ms - now) / 1000, {}, None)
        self.audit(
            who=view.operator,
            action="command.cancel",
            target=rows.target(view.site, view.device, command.id),
            source="api",
            detail={"cancels": view.id, "reason": "no receipt from the edge"},
        )
        self._publish(command)

    def _event(self, view: CommandView | None) -> None:
        if view is not None:
            self.emit(Event("command", self.config.area_of(view.site), view.site, view.event()))
