"""The API's record of a command (a row of ``api_commands``) and the pure helpers around it: the view, the digest of
the command as recorded, whether a result is recorded already, audit names and targets. ``api.gates`` re-exports
:class:`CommandView`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from api.live import DeviceState
from telemetry.commands import Action, Command, CommandResult, ResultState
from telemetry.signing import command_digest

__all__ = ["CommandView", "audit_name", "digest", "point_snapshot", "seen", "target", "view"]


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
    point: str | None = None
    value: float | bool | None = None
    cancels: str | None = None

    def event(self) -> dict[str, object]:
        return {
            "id": self.id,
            "site": self.site,
            "device": self.device,
            "action": self.action,
            "point": self.point,
            "state": self.state,
            "final": self.final,
            "reason": self.reason,
            "steps": len(self.steps),
        }


def view(row: object) -> CommandView:
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
        r["point"],
        json.loads(r["value"]) if r["value"] is not None else None,
        r["cancels"],
    )


def digest(view: CommandView) -> str:
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
        point=view.point,
        value=view.value,
        cancels=view.cancels,
    )
    return command_digest(command)


def seen(view: CommandView, result: CommandResult) -> bool:
    """Whether ``result`` is recorded already among the command's steps: the very message (its signature: the
    retained final result comes again on every reconnect), or, but for progress, a step of the same state (a command
    has each other state once; a repeat answers a redelivery with the state it had)."""
    for step in view.steps:
        if step.get("sig") == result.sig or (
            result.state is not ResultState.PROGRESS and step.get("state") == result.state.value
        ):
            return True
    return False


def audit_name(action: str) -> str:
    """The audit action of a command of this kind (its results add ``.<state>``)."""
    return {Action.WRITE.value: "point.write", Action.CANCEL.value: "command.cancel"}.get(action, "gate.command")


def target(site: str, device: str, command_id: str, point: str | None = None) -> str:
    if point is not None:
        return f"point:{site}/{device}/{point}/cmd/{command_id}"
    return f"gate:{site}/{device}/cmd/{command_id}"


def point_snapshot(state: DeviceState | None, point: str | None) -> dict[str, object]:
    """The point's value as the API saw it (for the audit's 'before')."""
    if state is None or point is None:
        return {}
    out: dict[str, object] = {point: state.values.get(point)}
    if state.last_seen_ms is not None:
        out["ts"] = state.last_seen_ms
    return out
