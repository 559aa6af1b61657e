"""What a channel sends: one :class:`Message` per notification event, and its human renderings.

The JSON object (:func:`to_json`) is what the webhook posts and the MQTT channel publishes; the plain text goes into
mail, the markdown into the DingTalk and WeCom robots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from alerts.notify.config import DEFAULT_TIMEZONE, KINDS
from rules.schema import Severity

Value = bool | int | float | str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One notification event. ``id`` is unique per event (receivers may use it to drop a redelivery).

    ``targets``, when not empty, names the channels to use instead of the routes (an escalation level names its
    channels); ``level`` is the escalation level (0 otherwise). A flood summary has no site, device or rule."""

    id: str
    kind: str
    audience: str
    severity: str
    title: str
    text: str
    ts_ms: int
    area: str | None = None
    site: str | None = None
    device: str | None = None
    rule: str | None = None
    point: str | None = None
    value: Value = None
    alert_id: int | None = None
    targets: tuple[str, ...] = ()
    level: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.severity not in set(Severity):
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(Severity)}")


def to_dict(msg: Message) -> dict[str, Value]:
    """The message as a JSON object (every field but ``targets``)."""
    return {
        "id": msg.id,
        "kind": msg.kind,
        "audience": msg.audience,
        "area": msg.area,
        "severity": msg.severity,
        "title": msg.title,
        "text": msg.text,
        "site": msg.site,
        "device": msg.device,
        "rule": msg.rule,
        "point": msg.point,
        "value": msg.value,
        "ts_ms": msg.ts_ms,
        "alert_id": msg.alert_id,
        "level": msg.level,
    }


def to_json(msg: Message) -> bytes:
    return orjson.dumps(to_dict(msg))


# --- human texts ----------------------------------------------------------------------------------------------


def format_value(value: Value, unit: str | None = None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit and not isinstance(value, bool) else text


def format_time(ts_ms: int, timezone: str = DEFAULT_TIMEZONE) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %z")


def render(
    kind: str,
    severity: str,
    what: str,
    *,
    site: str | None = None,
    device: str | None = None,
    point: str | None = None,
    value: Value = None,
    unit: str | None = None,
    level: int = 0,
    detail: str = "",
) -> tuple[str, str]:
    """``(title, text)`` for a notification: ``what`` is the rule's title (or, for a flood, the audience).

    ``[CRITICAL] Combustible gas concentration raised at site s1 device gas-03: lel = 57 %LEL``; ``detail`` (e.g.
    the alert's reason) becomes a second line of the text."""
    where = " ".join(p for p in (f"site {site}" if site else "", f"device {device}" if device else "") if p)
    at = f" at {where}" if where else ""
    reading = f": {point} = {format_value(value, unit)}" if point is not None and value is not None else ""
    tag = severity.upper()
    if kind == "raised":
        title = f"[{tag}] {what} raised{at}{reading}"
    elif kind == "severity":
        title = f"[{tag}] {what} now {severity}{at}{reading}"
    elif kind == "cleared":
        title = f"[CLEARED] {what} cleared{at}{reading}"
    elif kind == "chattering":
        title = f"[{tag}] {what} chattering{at}: notifications held until it is quiet"
    elif kind == "flood":
        title = f"[{tag}] Alert flood for {what}: individual alerts held"
    elif kind == "escalation":
        title = f"[{tag}] Escalation level {level}: {what} unacknowledged{at}{reading}"
    else:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    text = f"{title}\n{detail}" if detail else title
    return title, text


def _facts(msg: Message, timezone: str) -> list[tuple[str, str]]:
    facts = [
        ("Severity", msg.severity),
        ("Kind", msg.kind if not msg.level else f"{msg.kind} (level {msg.level})"),
        ("Audience", msg.audience),
        ("Area", msg.area or ""),
        ("Site", msg.site or ""),
        ("Device", msg.device or ""),
        ("Rule", msg.rule or ""),
        ("Point", msg.point or ""),
        ("Value", format_value(msg.value) if msg.point is not None else ""),
        ("Time", format_time(msg.ts_ms, timezone)),
        ("Alert", str(msg.alert_id) if msg.alert_id is not None else ""),
        ("Notification", msg.id),
    ]
    return [(k, v) for k, v in facts if v]


def plain_text(msg: Message, timezone: str = DEFAULT_TIMEZONE) -> str:
    """The mail body: the text, then one ``Field: value`` line per field that is set."""
    width = max(len(k) for k, _ in _facts(msg, timezone))
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in _facts(msg, timezone)]
    return f"{msg.text}\n\n" + "\n".join(lines) + "\n"


_WECOM_COLOUR = {"info": "info", "warning": "comment", "critical": "warning"}  # WeCom markdown's three colours


def markdown(msg: Message, timezone: str = DEFAULT_TIMEZONE, *, wecom: bool = False) -> str:
    """A markdown card for the robots: the title as a heading, the text, and the fields as a list."""
    heading = msg.title
    if wecom:  # WeCom's markdown colours text with <font color="info|comment|warning">
        heading = f'<font color="{_WECOM_COLOUR[msg.severity]}">{msg.title}</font>'
    lines = [f"### {heading}", ""]
    detail = msg.text.removeprefix(msg.title).strip()
    if detail:
        lines += [detail, ""]
    lines += [f"- **{k}**: {v}" for k, v in _facts(msg, timezone) if k != "Notification"]
    return "\n".join(lines)
