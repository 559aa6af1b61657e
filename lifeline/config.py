"""The deployment file of ``lifeline up``: composes each component's own config model.

Every section is optional. Without ``broker`` or ``influx`` the local stack starts its own Mosquitto or InfluxDB as
child processes; with them it uses those servers instead (and starts neither).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from alerts.config import AlertServiceConfig
from broker_bridge.config import BatchConfig, InfluxConfig, RetryConfig
from infra.config_loader import read_yaml, validate
from infra.mqtt_config import BrokerConfig
from rules.config import PACKS


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = Field(default="baoshan", description="simulated district to run (a name or a YAML file)")
    data_dir: Path = Field(default=Path("var/up"), description="data, logs and generated configs")
    broker: BrokerConfig | None = Field(default=None, description="an external broker; none: a local Mosquitto")
    broker_credentials: Path | None = Field(
        default=None, description="with an external broker: the credentials folder of `lifeline broker config` "
                                  "(each service connects with its own account from there)")  # fmt: skip
    broker_plain_tcp: bool = Field(default=False, description="the local Mosquitto without TLS (loopback only)")
    influx: InfluxConfig | None = Field(default=None, description="an external InfluxDB; none: a local influxd")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    rule_packs: list[Path] = Field(default_factory=lambda: [PACKS], description="rule files and folders to run")
    alerts: AlertServiceConfig | None = Field(
        default=None,
        description="areas, escalation and notification channels; none: alerts in data_dir/alerts.db, every "
                    "notification published on lifeline/v1/alerts/notify/{audience}",
    )  # fmt: skip


def load_deployment(path: Path) -> DeploymentConfig:
    """Load and validate a deployment file; ConfigError names file, line and field."""
    return validate(DeploymentConfig, read_yaml(path), "deployment config")
