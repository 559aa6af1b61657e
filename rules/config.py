"""The streaming rules service's own settings: where telemetry comes from, which packs, how often it saves."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from infra.mqtt_config import BrokerConfig, SubscriptionConfig
from rules.loader import load_rules
from rules.schema import Rule
from telemetry import topics

PACKS = Path(__file__).parent / "packs"


def _subscription() -> SubscriptionConfig:
    # Its own shared-subscription group: the bridge's group does not share its messages with the rules engine.
    return SubscriptionConfig(
        client_id="lifeline-rules-1", group="lifeline-rules", topic=topics.telemetry_filter(), receive_maximum=5000
    )


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    subscription: SubscriptionConfig = Field(default_factory=_subscription)
    packs: list[Path] = Field(
        default_factory=lambda: [PACKS], description="rule files and folders; default: the shipped packs"
    )
    tick_s: float = Field(1.0, gt=0, le=60, description="how often delays and no-data checks run")
    checkpoint_s: float = Field(
        2.0, gt=0, le=300,
        description="how often the engine's state is saved; telemetry is acknowledged to the broker only after that, "
                    "so a crash replays at most this much from the broker",
    )  # fmt: skip
    max_future_s: float = Field(300, gt=0, description="samples further ahead than this (edge clock wrong) are skipped")

    def load(self) -> list[Rule]:
        return load_rules(self.packs)
