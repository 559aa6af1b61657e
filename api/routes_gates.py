"""Gate control (select-before-operate, commands and their steps) and the live stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from api._gate_checks import limits_of, percent_range
from api.auth import Principal
from api.deps import ID_PATTERN, CommandId, DeviceId, Reader, Service, SiteId, Who, check_site, error
from api.deps import source as client_source
from api.gates import CommandRequest, CommandView, RefusedError
from api.live import Event
from telemetry.commands import GATE_ACTIONS, Action

router = APIRouter()
POINT_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

REFUSAL = {"description": "refused by an interlock; the body names it (telemetry.commands.Interlock)"}


class SelectionOut(BaseModel):
    selection: str
    site: str
    device: str
    expires_ms: int


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selection: str | None = Field(None, max_length=64, description="from POST .../select (not needed for stop)")
    id: str | None = Field(None, pattern=ID_PATTERN, description="idempotency key; default: one is made")
    action: Action
    target_pct: float | None = Field(
        None, validate_default=True, description="set_opening only (and required there); within the gate's limits"
    )
    ttl_s: float | None = Field(None, gt=0, le=3600, description="time to live; default from the config")

    @field_validator("action")
    @classmethod
    def _gate_action(cls, value: Action) -> Action:
        if value not in GATE_ACTIONS:
            raise ValueError(f"{value.value} is not a gate action (set points: POST /api/devices/.../points/.../write)")
        return value

    @field_validator("target_pct")
    @classmethod
    def _target_only_for_set_opening(cls, value: float | None, info: ValidationInfo) -> float | None:
        action = info.data.get("action")
        if action is Action.SET_OPENING and value is None:
            raise ValueError("set_opening needs target_pct")
        if action is not None and action is not Action.SET_OPENING and value is not None:
            raise ValueError(f"{action.value} takes no target_pct")
        return value


def _refused(exc: RefusedError) -> JSONResponse:
    return JSONResponse(status_code=exc.refusal.status, content={"detail": exc.refusal.body()})


class GateLimitsOut(BaseModel):
    """The gate's limits as the API checks them: targets are percent of ``full_opening_m`` (the state is in m)."""

    site: str
    device: str
    full_opening_m: float
    min_pct: float
    max_pct: float
    tolerance_m: float
    max_head_open_m: float | None
    max_head_close_m: float | None
    # telemetry older than this is no data: a command is refused (interlock.no_data.old_telemetry); the console warns
    # before sending when now - last_sample_ms is near it
    max_state_age_ms: int
    last_sample_ms: int | None  # the gate's newest sample time (the device's state is on its device endpoint)


@router.get("/api/gates/{site}/{device}/limits", tags=["gates"])
def gate_limits(site: SiteId, device: DeviceId, who: Reader, svc: Service) -> GateLimitsOut:
    """What the console needs to show a target in % against the gate's opening in m (and the allowed range)."""
    check_site(svc, who, site)
    g = svc.config.gates.limits(site, device)
    state = svc.cache.get(site, device)
    try:
        if g is None:
            raise ValueError("no limits are configured for this gate")
        lim = limits_of(g, svc.profile_of(site, device, state.profile) if state is not None else None)
    except ValueError as exc:
        raise error(
            404, f"gate {site}/{device}: {exc}", code="gate.not_found", params={"site": site, "device": device}
        ) from exc
    low, high = percent_range(lim)
    return GateLimitsOut(
        site=site,
        device=device,
        full_opening_m=lim.full_opening_m,
        min_pct=low,
        max_pct=high,
        tolerance_m=lim.tolerance_m,
        max_head_open_m=lim.max_head_open_m,
        max_head_close_m=lim.max_head_close_m,
        max_state_age_ms=round(svc.config.gates.max_state_age_s * 1000),
        last_sample_ms=state.last_seen_ms if state is not None else None,
    )


@router.post("/api/gates/{site}/{device}/select", tags=["gates"], status_code=201, responses={403: REFUSAL})
def select_gate(site: SiteId, device: DeviceId, who: Who, svc: Service, request: Request) -> Any:
    try:
        sel = svc.gates.select(who, site, device, client_source(request))
    except RefusedError as exc:
        return _refused(exc)
    return SelectionOut(selection=sel.id, site=site, device=device, expires_ms=sel.expires_ms)


COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {  # a gate command's and a set point's answers
    200: {"description": "a repeat of a known command (same id and body)"},
    403: REFUSAL,
    409: REFUSAL,
    503: {"description": "the broker did not take the command"},
}


@router.post(
    "/api/gates/{site}/{device}/commands",
    tags=["gates"],
    status_code=201,
    responses=COMMAND_RESPONSES,
)
def operate_gate(
    site: SiteId,
    device: DeviceId,
    body: CommandIn,
    who: Who,
    svc: Service,
    request: Request,
    response: Response,
) -> Any:
    req = CommandRequest(body.action, body.target_pct, _ttl(svc, body.ttl_s), body.id)
    return _operate(svc, who, site, device, body.selection, req, request, response)


class WriteIn(BaseModel):
    """A set point: ``value`` (engineering units; true/false for a coil) for a writable point of the device."""

    model_config = ConfigDict(extra="forbid")

    value: StrictBool | Annotated[float, Field(allow_inf_nan=False)]
    selection: str | None = Field(
        None, max_length=64, description="from POST .../select, when the API asks for one (gates.write_selection)"
    )
    id: str | None = Field(None, pattern=ID_PATTERN, description="idempotency key; default: one is made")
    ttl_s: float | None = Field(None, gt=0, le=3600, description="time to live; default from the config")


@router.post("/api/devices/{site}/{device}/select", tags=["gates"], status_code=201, responses={403: REFUSAL})
def select_device(site: SiteId, device: DeviceId, who: Who, svc: Service, request: Request) -> Any:
    """Select a device before writing one of its points (select-before-operate, when gates.write_selection)."""
    return select_gate(site, device, who, svc, request)


@router.post(
    "/api/devices/{site}/{device}/points/{point}/write",
    tags=["gates"],
    status_code=201,
    responses=COMMAND_RESPONSES,
)
def write_point(
    site: SiteId,
    device: DeviceId,
    point: Annotated[str, Path(pattern=POINT_PATTERN)],
    body: WriteIn,
    who: Who,
    svc: Service,
    request: Request,
    response: Response,
) -> Any:
    """Write a set point: a signed ``write`` command the edge checks again, writes and reads back (docs/api.md)."""
    req = CommandRequest(Action.WRITE, None, _ttl(svc, body.ttl_s), body.id, point, body.value)
    return _operate(svc, who, site, device, body.selection, req, request, response)


def _operate(
    svc: Any,
    who: Principal,
    site: str,
    device: str,
    selection: str | None,
    req: CommandRequest,
    request: Request,
    response: Response,
) -> Any:
    """A gate command or a set point on the one command path: 201 new, 200 a repeat, 503 never reached the broker."""
    try:
        view, new = svc.gates.operate(who, site, device, selection, req, client_source(request))
    except RefusedError as exc:
        return _refused(exc)
    if not new:
        response.status_code = 200
    elif view.final and view.interlock is None and view.state == "failed" and not view.steps:
        response.status_code = 503  # never reached the broker
    return view


def _ttl(svc: Any, asked: float | None) -> float:
    gates = svc.config.gates
    ttl: float = asked if asked is not None else gates.default_ttl_s
    if ttl > gates.max_ttl_s:
        raise error(
            422,
            f"ttl_s may be at most {gates.max_ttl_s}",
            "ttl_s",
            code="gate.ttl_too_long",
            params={"max": gates.max_ttl_s},
        )
    return ttl


@router.get("/api/commands/{command_id}", tags=["gates"])
def get_command(command_id: CommandId, who: Reader, svc: Service) -> CommandView:
    view = svc.gates.get(command_id)
    if view is None or not who.sees_area(svc.config.area_of(view.site)):
        raise error(
            404, f"no command {command_id!r}", "command_id", code="command.not_found", params={"command_id": command_id}
        )
    return view


@router.get("/api/commands", tags=["gates"])
def list_commands(
    who: Reader,
    svc: Service,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    device: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CommandView]:
    sites = None if not who.scoped else {s for a in who.areas for s in svc.config.areas.get(a, [])}
    return svc.gates.list_commands(site, device, sites, limit)


def _accepts(who: Principal, site: str | None, kinds: set[str] | None) -> Any:
    def accepts(event: Event) -> bool:
        if kinds is not None and event.kind not in kinds:
            return False
        if site is not None and event.site != site:
            return False
        return who.sees_area(event.area)

    return accepts


def _sse(event: Event) -> bytes:
    return b"event: " + event.kind.encode() + b"\ndata: " + orjson.dumps(event.data) + b"\n\n"


@router.get(
    "/api/stream",
    tags=["stream"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    who: Reader,
    svc: Service,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    kinds: Annotated[
        list[Literal["reading", "status", "state", "alert", "command"]] | None,
        Query(description="only these kinds of event (repeat); default: all", max_length=5),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: readings, status changes, device state changes (online, stale, offline, unknown), alert
    changes and command steps the user may see."""
    if site is not None:
        check_site(svc, who, site)
    accepts = _accepts(who, site, set(kinds) if kinds else None)
    keepalive = svc.config.stream.keepalive_s

    async def events() -> AsyncIterator[bytes]:
        client, queue = svc.hub.subscribe(accepts)
        try:
            yield b"retry: 3000\n: connected\n\n"
            yield b"event: ping\ndata: " + orjson.dumps({"now_ms": svc.clock(), "keepalive_s": keepalive}) + b"\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    # a named event, not a comment: a browser's EventSource shows only events, and the console's
                    # watchdog takes a stream without one for keepalive_s x 2 as stalled; now_ms is the API's clock
                    yield b"event: ping\ndata: " + orjson.dumps({"now_ms": svc.clock()}) + b"\n\n"
                    continue
                if event is None:  # the API is stopping
                    return
                yield _sse(event)
        finally:
            svc.hub.unsubscribe(client)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
