"""Alerts: list and read (scoped to the user's areas); acknowledge, shelve, unshelve, comment and assign, each
through the store's optimistic ``act`` and an audit entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from alerts.lifecycle import Alert, InvalidAction, Severity, State, acknowledge, add_note, assign, shelve, unshelve
from alerts.manager import alert_event
from alerts.store import Conflict, StoredAlert
from api.auth import Principal, Role
from api.deps import (
    ID_PATTERN,
    MAX_MS,
    NAME_PATTERN,
    TEXT_PATTERN,
    AlertActor,
    Reader,
    Service,
    error,
    source,
    visible_sites,
)
from api.service import ApiService

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]
# Each role's own view of the alert list: the audiences its work is about (``all_audiences=true`` shows the rest
# of its areas too). Viewers and admins see every audience.
ROLE_AUDIENCES: dict[Role, list[str]] = {
    Role.GATE_OPERATOR: ["water_ops", "default"],
    Role.ENVIRONMENT_OFFICER: ["environment", "default"],
    Role.SAFETY_INSPECTOR: ["safety", "default"],
}
MAX_SHELVE_S = 30 * 86400


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckIn(_In):
    note: str = Field("", max_length=2000, pattern=TEXT_PATTERN)


class ShelveIn(_In):
    reason: str = Field(min_length=1, max_length=500, pattern=TEXT_PATTERN)
    duration_s: int = Field(ge=1, le=MAX_SHELVE_S, description="how long notifications stay suppressed")


class UnshelveIn(_In):
    reason: str = Field("", max_length=500, pattern=TEXT_PATTERN)


class NoteIn(_In):
    text: str = Field(min_length=1, max_length=2000, pattern=TEXT_PATTERN)


class AssignIn(_In):
    assignee: str | None = Field(description="a user name, or null to unassign", pattern=NAME_PATTERN)


class AlertList(BaseModel):
    total: int
    limit: int
    offset: int
    alerts: list[dict[str, Any]]


def _rule_point(svc: ApiService, rule_id: str) -> str | None:
    """The point a device-wide alert's rule watches (its condition's ``point``), if it names one."""
    rule = next((r for r in svc.rules if r.id == rule_id), None)
    if rule is None:
        return None
    cond = getattr(rule, rule.kind, None) or getattr(rule, rule.kind + "_", None)
    if isinstance(cond, list):
        cond = cond[0] if cond else None
    point = getattr(cond, "point", None)
    return point if isinstance(point, str) else None


def with_current(svc: ApiService, stored: StoredAlert, now_ms: int | None = None) -> dict[str, Any]:
    """The alert as an event, with the newest reading of its point from the live cache beside the value at its last
    change: ``current_value`` and ``current_time_ms`` (None when the API has no reading of it) and
    ``current_state``, the device's state (docs/api.md, Device state)."""
    out = alert_event(stored)
    key = stored.alert.key
    point = key.point or _rule_point(svc, key.rule_id)
    state = svc.cache.get(key.site, key.device)
    live = svc.cache.live(key.site, key.device, svc.clock() if now_ms is None else now_ms)
    has = state is not None and point is not None and point in state.values
    out["current_point"] = point
    out["current_value"] = state.values[point] if has and state is not None and point is not None else None
    out["current_time_ms"] = state.times_ms.get(point) if has and state is not None and point is not None else None
    out["current_state"] = live.state if live is not None else "unknown"
    return out


def _visible(svc: ApiService, who: Principal, stored: StoredAlert) -> bool:
    return who.sees_area(svc.config.area_of(stored.alert.key.site))


def _load(svc: ApiService, who: Principal, alert_id: int) -> StoredAlert:
    stored = svc.store.get(alert_id)
    if stored is None or not _visible(svc, who, stored):
        raise error(
            404, f"no alert {alert_id}", "alert_id", code="alert.not_found", params={"alert_id": alert_id}
        )  # an alert outside the user's areas does not exist
    return stored


@router.get("/api/alerts")
def list_alerts(
    who: Reader,
    svc: Service,
    state: Annotated[list[State] | None, Query(max_length=4)] = None,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    device: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    rule: Annotated[str | None, Query(max_length=128, pattern=r"^[a-z0-9][a-z0-9_.-]*$")] = None,
    audience: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    min_severity: Severity | None = None,
    active_only: bool = False,
    since_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    all_audiences: Annotated[bool, Query(description="also other audiences' alerts (in the user's areas)")] = False,
) -> AlertList:
    sites = visible_sites(svc, who)
    audiences = [audience] if audience else None if all_audiences else ROLE_AUDIENCES.get(who.role)
    filters: dict[str, Any] = {
        "states": [s.value for s in state] if state else None,
        "site": site,
        "sites": sites,
        "device": device,
        "rule": rule,
        "audiences": audiences,
        "min_severity": min_severity,
        "active_only": active_only,
        "since_ms": since_ms,
    }
    rows = svc.store.list_alerts(**filters, limit=limit, offset=offset)
    now = svc.clock()
    total = svc.store.count_alerts(**filters)
    return AlertList(total=total, limit=limit, offset=offset, alerts=[with_current(svc, r, now) for r in rows])


class OutboxChannel(BaseModel):
    channel: str
    pending: int
    failed: int
    oldest_pending_ms: int | None


class OutboxRow(BaseModel):
    id: int
    channel: str
    alert_id: int | None
    kind: str
    status: str  # pending | failed
    title: str
    created_ms: int
    attempts: int
    next_ms: int | None  # the next try; None for a failed one (not tried again)
    last_try_ms: int | None
    last_error: str


class SentRow(BaseModel):
    """One delivery attempt recorded by the notifier: what went to whom, when, and whether it was taken."""

    id: int
    ts_ms: int
    alert_id: int | None
    kind: str
    audience: str
    channel: str
    channel_type: str
    target: str  # whom: the channel's recipient (an address, a phone number, a webhook's host)
    ok: bool
    attempts: int
    error: str
    text: str


class OutboxView(BaseModel):
    channels: list[OutboxChannel]
    notifications: list[OutboxRow]  # pending and failed: the outbox
    sent: list[SentRow]  # the delivery log, newest first (ok or not)


@router.get("/api/alerts/notifications")
def notification_outbox(
    who: Reader,
    svc: Service,
    status: Annotated[Literal["pending", "failed"] | None, Query()] = None,
    channel: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    alert_id: Annotated[int | None, Query(ge=1, le=2**62, description="only this alert's")] = None,
) -> OutboxView:
    """Notifications not delivered yet (pending, with their next try) or refused for good (failed, with why): the
    alert store's outbox. A scoped user sees the rows of alerts in their areas; the per-channel counts are the
    whole outbox (a channel is everyone's)."""
    rows = svc.store.notification_queue(statuses=[status] if status else None, channel=channel, limit=limit)
    shown: list[OutboxRow] = []
    visible: dict[int, bool] = {}

    def sees(row_alert: int | None) -> bool:
        if row_alert is None:
            return not who.scoped
        if alert_id is not None and row_alert != alert_id:
            return False
        if not who.scoped:
            return True
        if row_alert not in visible:
            stored = svc.store.get(row_alert)
            visible[row_alert] = stored is not None and _visible(svc, who, stored)
        return visible[row_alert]

    for r in rows:
        if not sees(r.alert_id) or (alert_id is not None and r.alert_id != alert_id):
            continue
        shown.append(
            OutboxRow(
                id=r.id,
                channel=r.channel,
                alert_id=r.alert_id,
                kind=r.kind,
                status=r.status,
                title=str(r.message.get("title", "")),
                created_ms=r.created_ms,
                attempts=r.attempts,
                next_ms=r.next_ms if r.status == "pending" else None,
                last_try_ms=r.last_try_ms,
                last_error=r.last_error,
            )
        )
    channels = [
        OutboxChannel(channel=q.channel, pending=q.pending, failed=q.failed, oldest_pending_ms=q.oldest_pending_ms)
        for q in svc.store.channel_queues()
    ]
    sent = [
        SentRow(
            id=n.id,
            ts_ms=n.ts_ms,
            alert_id=n.alert_id,
            kind=n.kind,
            audience=n.audience,
            channel=n.channel,
            channel_type=n.channel_type,
            target=n.target,
            ok=n.ok,
            attempts=n.attempts,
            error=n.error,
            text=n.text,
        )
        for n in svc.store.notifications(alert_id=alert_id, limit=limit)
        if sees(n.alert_id)
        and status != "pending"
        and (status is None or not n.ok)
        and (channel is None or n.channel == channel)
    ]
    return OutboxView(channels=channels, notifications=shown, sent=sent)


@router.get("/api/alerts/{alert_id}")
def get_alert(alert_id: AlertId, who: Reader, svc: Service) -> dict[str, Any]:
    stored = _load(svc, who, alert_id)
    out = with_current(svc, stored)
    out["history"] = [
        {
            "ts_ms": h.ts_ms,
            "who": h.who,
            "action": h.action.value,
            "from_state": h.from_state.value,
            "to_state": h.to_state.value,
            "reason": h.reason,
        }
        for h in svc.store.history(alert_id)
    ]
    out["notes"] = [{"ts_ms": n.ts_ms, "who": n.who, "text": n.text} for n in svc.store.notes(alert_id)]
    # what raised it (each raise and escalation): the readings the rule judged, or a window rule's figures
    out["evidence"] = [e.to_json() for e in svc.store.evidence(alert_id)]
    out["shelve_reason"] = stored.alert.shelve_reason
    return out


def _act(
    svc: ApiService,
    who: Principal,
    request: Request,
    alert_id: int,
    action: str,
    fn: Callable[[Alert], object],
    detail: dict[str, object],
) -> dict[str, Any]:
    before = _load(svc, who, alert_id)
    try:
        stored, _ = svc.store.act(alert_id, fn)
    except KeyError as exc:
        raise error(
            404, f"no alert {alert_id}", "alert_id", code="alert.not_found", params={"alert_id": alert_id}
        ) from exc
    except InvalidAction as exc:
        raise error(409, str(exc), code="alert.invalid_action", params={"action": action}, action=action) from exc
    except Conflict as exc:
        raise error(409, f"the alert kept changing, try again: {exc}", code="alert.conflict", action=action) from exc
    svc.audit(
        who=who.username,
        action=f"alert.{action}",
        target=f"alert:{alert_id}",
        source=source(request),
        detail={
            **detail,
            "from_state": before.alert.state.value,
            "to_state": stored.alert.state.value,
            "key": str(stored.alert.key),
        },
    )
    svc.announce_alert(stored)
    return with_current(svc, stored)


@router.post("/api/alerts/{alert_id}/ack")
def ack_alert(alert_id: AlertId, body: AckIn, who: AlertActor, svc: Service, request: Request) -> dict[str, Any]:
    now = svc.clock()
    return _act(
        svc, who, request, alert_id, "ack", lambda a: acknowledge(a, who.username, now, body.note), {"note": body.note}
    )


@router.post("/api/alerts/{alert_id}/shelve")
def shelve_alert(alert_id: AlertId, body: ShelveIn, who: AlertActor, svc: Service, request: Request) -> dict[str, Any]:
    now = svc.clock()
    until = now + body.duration_s * 1000
    return _act(
        svc,
        who,
        request,
        alert_id,
        "shelve",
        lambda a: shelve(a, who.username, until, body.reason, now),
        {"reason": body.reason, "until_ms": until},
    )


@router.post("/api/alerts/{alert_id}/unshelve")
def unshelve_alert(
    alert_id: AlertId, body: UnshelveIn, who: AlertActor, svc: Service, request: Request
) -> dict[str, Any]:
    now = svc.clock()
    return _act(
        svc,
        who,
        request,
        alert_id,
        "unshelve",
        lambda a: unshelve(a, who.username, now, body.reason),
        {"reason": body.reason},
    )


@router.post("/api/alerts/{alert_id}/notes")
def note_alert(alert_id: AlertId, body: NoteIn, who: AlertActor, svc: Service, request: Request) -> dict[str, Any]:
    now = svc.clock()
    return _act(
        svc, who, request, alert_id, "note", lambda a: add_note(a, who.username, body.text, now), {"text": body.text}
    )


@router.post("/api/alerts/{alert_id}/assign")
def assign_alert(alert_id: AlertId, body: AssignIn, who: AlertActor, svc: Service, request: Request) -> dict[str, Any]:
    if body.assignee is not None and svc.users.get(body.assignee) is None:
        raise error(
            422, f"no user {body.assignee!r}", "assignee", code="user.not_found", params={"username": body.assignee}
        )
    now = svc.clock()
    return _act(
        svc,
        who,
        request,
        alert_id,
        "assign",
        lambda a: assign(a, who.username, body.assignee, now),
        {"assignee": body.assignee},
    )
