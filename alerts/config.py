"""The alert manager's settings: the store, areas, audiences, chattering/flood limits, escalation, notification."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.db import DEFAULT_STORE_URL
from alerts.notify.config import NotifyConfig
from alerts.policy import AlertsConfig, EscalationPolicy

# Who hears about a device when its rule names no audience: by the profile's ``domain`` tag.
DEFAULT_AUDIENCES = {
    "water": "water_ops",
    "environment": "environment",
    "emissions": "environment",
    "safety": "safety",
}


class AlertServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    store_url: str = Field(DEFAULT_STORE_URL, description="SQLAlchemy URL of the alert store")
    areas: dict[str, list[str]] = Field(
        default_factory=dict, description="area name -> its site ids; a site in no area has its own id as area"
    )
    audiences: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_AUDIENCES), description="profile domain tag -> audience"
    )
    policy: AlertsConfig = Field(default_factory=AlertsConfig, description="chattering and flood limits")
    escalation: list[EscalationPolicy] = Field(
        default_factory=list, description="per audience: levels of channels to tell when nobody acknowledges"
    )
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    tick_s: float = Field(1.0, gt=0, le=60, description="how often escalation and shelving are checked")
    publish_events: bool = Field(True, description="publish every alert change on lifeline/v1/alerts/events/{id}")

    @model_validator(mode="after")
    def _check(self) -> AlertServiceConfig:
        seen: dict[str, str] = {}
        for area, sites in self.areas.items():
            for site in sites:
                if site in seen:
                    raise ValueError(f"areas.{area}: site {site!r} is already in area {seen[site]!r}")
                seen[site] = area
        channels = set(self.notify.channels)
        for i, policy in enumerate(self.escalation):
            for j, level in enumerate(policy.levels):
                unknown = [t for t in level.targets if t not in channels]
                if unknown:
                    raise ValueError(
                        f"escalation[{i}].levels[{j}].targets: unknown channel(s) {', '.join(unknown)} "
                        f"(channels: {', '.join(sorted(channels)) or 'none'})"
                    )
        return self

    def area_of(self, site: str) -> str:
        for area, sites in self.areas.items():
            if site in sites:
                return area
        return site
