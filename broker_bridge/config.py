"""The bridge's configuration: where telemetry comes from, where it goes, how it is batched and retried."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from infra.config_loader import read_yaml, validate
from infra.mqtt import BrokerConfig, SubscriptionConfig
from storage import InfluxConfig, RetryConfig

__all__ = [
    "BatchConfig",
    "BridgeConfig",
    "InfluxConfig",
    "OverwriteConfig",
    "RetryConfig",
    "ValidationConfig",
    "load_bridge_config",
]


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_points: int = Field(default=5000, ge=1, le=100_000, description="lines per write")
    max_delay_s: float = Field(default=0.5, gt=0, le=60, description="the oldest reading waits at most this long")
    concurrency: int = Field(default=2, ge=1, le=8, description="batches written to InfluxDB at the same time")


class ValidationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future_s: float = Field(default=300, ge=0, description="sample times further ahead are refused")
    max_age_s: float = Field(default=30 * 86400, gt=0, description="sample times further back are refused")
    sites: list[Path] = Field(
        default_factory=list,
        description="edge site files or folders: only their devices are accepted "
        "(empty: any device whose profile is known)",
    )


class OverwriteConfig(BaseModel):
    """The guard that refuses a reading that would overwrite a stored one with another value
    (``broker_bridge.overwrite``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_series: int = Field(default=64, ge=1, le=100_000, description="recent sample times remembered per series")
    max_series: int = Field(default=100_000, ge=1, description="series remembered (the longest unseen goes first)")
    trust_mark: bool = Field(
        default=True,
        description="a sample after the newest this bridge let through is new; false when several bridges share "
        "the group (then every sample not remembered is checked against InfluxDB, one read a batch)",
    )


class BridgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    publisher: BrokerConfig | None = Field(
        None,
        description="the connection that publishes stored confirmations and dead-letter replays (an account "
        "of its own: bridge-N-pub); none: the broker section's",
    )
    subscription: SubscriptionConfig = Field(default_factory=SubscriptionConfig)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig, description="InfluxDB write retries (storage's policy)")
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    overwrite: OverwriteConfig = Field(default_factory=OverwriteConfig)
    dead_letter_path: Path = Field(default=Path("var/bridge/deadletter.sqlite"))
    metrics_port: int | None = Field(default=None, ge=0, le=65535)


def load_bridge_config(path: Path) -> BridgeConfig:
    """Load and validate a bridge config file; ConfigError names file, line and field.

    Site files in ``validation.sites`` are taken relative to the config file.
    """
    config = validate(BridgeConfig, read_yaml(path), "bridge config")
    sites = [p if p.is_absolute() else path.parent / p for p in config.validation.sites]
    return config.model_copy(update={"validation": config.validation.model_copy(update={"sites": sites})})
