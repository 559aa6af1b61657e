"""What the notification pipeline (``alerts.pipeline``) is configured with and what it decides: the chattering,
flood and escalation settings, and :class:`Notification`. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from alerts.lifecycle import AlertKey, Severity

DEFAULT_AUDIENCE = "default"


class ChatterConfig(BaseModel):
    """An alert with more than ``max_toggles`` toggles within ``window_s`` is chattering until it has had no toggle
    for ``quiet_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_toggles: int = Field(default=5, ge=1)
    window_s: int = Field(default=600, gt=0)
    quiet_s: int = Field(default=600, gt=0)


class FloodConfig(BaseModel):
    """More than ``max_new`` new alerts of one audience within ``window_s`` are a flood."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_new: int = Field(default=10, ge=1)
    window_s: int = Field(default=600, gt=0)


class EscalationLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    after_s: int = Field(ge=0)
    targets: tuple[str, ...] = Field(min_length=1)


class EscalationPolicy(BaseModel):
    """Levels in order; level *i* (1-based) fires once when an alert of ``audience`` has been active and
    unacknowledged for ``after_s`` seconds (``alerts.pipeline.Escalation``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    audience: str
    levels: tuple[EscalationLevel, ...] = Field(min_length=1)


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    chatter: ChatterConfig = ChatterConfig()
    flood: FloodConfig = FloodConfig()


class Kind(StrEnum):
    RAISED = "raised"
    SEVERITY = "severity"
    CLEARED = "cleared"
    CHATTERING = "chattering"
    FLOOD = "flood"
    ESCALATION = "escalation"


@dataclass(frozen=True, slots=True)
class Notification:
    kind: Kind
    audience: str
    ts_ms: int
    key: AlertKey | None = None
    severity: Severity | None = None
    text: str = ""
    targets: tuple[str, ...] = ()
    level: int = 0
