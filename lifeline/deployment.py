"""The deployment spec: one file from which every service's config is derived (``lifeline up --config``).

It names what a deployment is made of: the district (a simulated scenario, and/or the edge site files of real sites,
whose ``control:`` sections hold each gate's limits, and the HJ 212 ingest config of its pollution sources' stations,
whose sites are sites like any other: in areas and partitions, known to the bridges, the engines and the API), the
areas, the rule packs and how the rules engines split the sites, how many bridges, the external broker and InfluxDB
(or none: ``lifeline up`` starts its own), and the alert manager's settings. ``lifeline up`` derives from it the
broker's accounts (for the dynamic-security plugin), the config file of every service (edge agents, bridge, rules
engines, API, HJ 212 ingest), and the API's view of the same rule packs and gate limits the services run with.
Secrets are ``infra.secret.Secret`` references (a file or an environment variable); none is ever printed.

A key the deployment would not use is an error naming the file, the line and the key, never silently dropped:
unknown keys (every section forbids extras), a broker account in ``broker`` (each service connects with its own
account from ``broker_credentials``), and the keys of ``rules`` that the deployment itself decides (``broker``,
``subscription``, ``packs``, ``partition``). See docs/production.md and docs/deployment.example.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.config import AlertServiceConfig
from broker_bridge.config import BatchConfig, RetryConfig
from device_profiles import field_error
from edge_agent.hj212.config import Hj212Config
from infra.config_loader import ConfigError, YamlDoc, describe_loc, read_yaml, validate
from infra.mqtt import BrokerConfig
from lifeline.broker_auth import Inventory
from rules.config import PACKS, PartitionConfig, RulesConfig
from storage.connection import InfluxConfig
from telemetry import topics

__all__ = ["DeploymentSpec", "load_spec"]

# keys of a service's own section that the deployment decides; giving them would be ignored, so it is an error
_BROKER_ACCOUNT_KEYS = ("username", "password", "password_file", "password_env")
_RULES_DECIDED = {
    "broker": "the deployment's broker (broker:, with each engine's own account) is the rules engines' broker",
    "subscription": "each engine's shared group follows from rules_partitions",
    "packs": "give the packs as rule_packs (the API shows the same packs)",
    "partition": "give the partitions as rules_partitions (one engine is started per partition)",
    "sites": "the engines know the district's devices from the site files under data_dir/sites, as the bridges",
    "dead_letter_path": "each engine keeps its dead letters under data_dir/rules",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentSpec(_Strict):
    """One deployment. Every section is optional: the defaults are ``lifeline up``'s local stack on the Baoshan
    scenario."""

    scenario: str = Field(default="baoshan", description="simulated district to run (a name or a YAML file)")
    sites: list[Path] = Field(
        default_factory=list,
        description="edge site files of a real district (its devices, each gate's limits): "
        "what `lifeline broker config --deployment` makes the accounts of; `lifeline up` runs the scenario instead",
    )
    hj212: Path | None = Field(
        default=None,
        description="the HJ 212 ingest config (`lifeline hj212 --config`) of a real district's pollution-source "
        "stations: their sites are the deployment's sites too (areas, partitions, accounts); `lifeline up` runs the "
        "scenario's simulated stations instead",
    )
    data_dir: Path = Field(default=Path("var/up"), description="data, logs and generated configs")
    broker: BrokerConfig | None = Field(
        default=None, description="an external broker: host, port, TLS (no account); none: a local Mosquitto"
    )
    broker_credentials: Path | None = Field(
        default=None,
        description="with an external broker: the credentials folder of `lifeline broker config` "
        "(each service connects with its own account from there)",
    )
    broker_plain_tcp: bool = Field(default=False, description="the local Mosquitto without TLS (loopback only)")
    influx: InfluxConfig | None = Field(default=None, description="an external InfluxDB; none: a local influxd")
    batch: BatchConfig = Field(default_factory=BatchConfig, description="the bridge's batches")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="the bridge's InfluxDB write retries")
    bridges: int = Field(default=1, ge=1, le=64, description="bridges in the shared group (one account pair each)")
    rule_packs: list[Path] = Field(
        default_factory=lambda: [PACKS], description="rule files and folders: what the engines run and the API shows"
    )
    rules: RulesConfig = Field(
        default_factory=RulesConfig, description="the engines' own settings (tick_s, checkpoint_s, max_future_s)"
    )
    rules_partitions: list[PartitionConfig] = Field(
        default_factory=list, description="the rules engines' split of the sites (one engine each); none: one engine"
    )
    areas: dict[str, list[str]] = Field(
        default_factory=dict, description="area name -> its site ids (API and alerts); a site in none is its own area"
    )
    alerts: AlertServiceConfig | None = Field(
        default=None,
        description="escalation and notification channels (areas: above); none: alerts in data_dir/alerts.db, every "
        "notification published on lifeline/v1/alerts/notify/{audience}",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_broker_account(cls, data: Any) -> Any:
        broker = data.get("broker") if isinstance(data, dict) else None
        written = broker if isinstance(broker, dict) else {}
        for key in _BROKER_ACCOUNT_KEYS:
            if key in written:  # as written (BrokerConfig reads password_file and password_env as password)
                why = "would be ignored: each service connects with its own account from broker_credentials"
                raise field_error(why, "broker", key)
        return data

    @model_validator(mode="after")
    def _nothing_ignored(self) -> Self:
        if self.broker is not None:
            if self.broker_credentials is None:
                raise field_error(
                    "an external broker needs broker_credentials (a folder of `lifeline broker config`)", "broker"
                )
        elif self.broker_credentials is not None:
            raise field_error(
                "would be ignored: the local broker's accounts are made by lifeline up", "broker_credentials"
            )
        for key, why in _RULES_DECIDED.items():
            if key in self.rules.model_fields_set:
                raise field_error(f"would be ignored: {why}", "rules", key)
        if self.alerts is not None and self.alerts.areas:
            raise field_error(
                "give the areas once, at the top level (areas:): the API and the alerts share them", "alerts", "areas"
            )
        self._check_partitions()
        seen: dict[str, str] = {}
        for area, sites in self.areas.items():
            for i, site in enumerate(sites):
                topics.check_site_id(site)
                if site in seen:
                    raise field_error(f"site {site!r} is already in area {seen[site]!r}", "areas", area, i)
                seen[site] = area
        return self

    def _check_partitions(self) -> None:
        labels = [p.label for p in self.rules_partitions]
        if len(set(labels)) != len(labels):
            raise field_error("a partition name is given twice", "rules_partitions")
        hashed = [p for p in self.rules_partitions if p.count is not None]
        if hashed and len(hashed) != len(self.rules_partitions):
            raise field_error("partitions are either all by name or all by hash", "rules_partitions")
        if hashed and sorted(p.index or 0 for p in hashed) != list(range(hashed[0].count or 0)):
            raise field_error("a hash split lists every index 0..count-1 once, with one count", "rules_partitions")
        owner: dict[str, str] = {}
        for i, part in enumerate(self.rules_partitions):
            for site in part.sites:
                if site in owner:
                    raise field_error(f"site {site!r} is already in partition {owner[site]!r}", "rules_partitions", i)
                owner[site] = part.label
        if self.rules_partitions and sum(1 for p in self.rules_partitions if p.runs_windows) != 1:
            raise field_error(
                "exactly one partition runs the window rules (windows: true on one named partition)", "rules_partitions"
            )

    def rules_config(self, partition: PartitionConfig | None = None) -> RulesConfig:
        """An engine's rules section: its own settings, the deployment's packs (resolved), its partition, the site
        files its known devices come from (``data_dir/sites``, where ``lifeline up`` writes every site's, as for the
        bridges) and its dead letters."""
        packs = [p.resolve() for p in self.rule_packs]
        label = partition.label if partition is not None else "1"
        update = {
            "packs": packs,
            "partition": partition,
            "sites": [(self.data_dir / "sites").resolve()],
            "dead_letter_path": (self.data_dir / "rules" / f"deadletter-{label}.sqlite").resolve(),
        }
        return self.rules.model_copy(update=update)

    def partitions(self) -> list[PartitionConfig | None]:
        """One entry an engine: its partition, or None for the single engine of an unsplit deployment."""
        return list(self.rules_partitions) or [None]

    def check_sites(self, sites: Sequence[str], source: Path | None = None) -> None:
        """Every area and named partition names a site of this deployment, and named partitions own every site;
        else ConfigError naming the file (``source``), the line and the key."""
        known = set(sites)
        problems: list[tuple[str, tuple[str | int, ...]]] = []
        for area, listed in self.areas.items():
            problems += [
                (f"site {s!r} is not in this deployment", ("areas", area, i))
                for i, s in enumerate(listed)
                if s not in known
            ]
        named = [(i, p) for i, p in enumerate(self.rules_partitions) if p.sites]
        for i, part in named:
            problems += [
                (f"site {s!r} is not in this deployment", ("rules_partitions", i, "sites", j))
                for j, s in enumerate(part.sites)
                if s not in known
            ]
        unowned = sorted(known - {s for _, p in named for s in p.sites})
        if named and unowned:
            problems.append(
                (f"no partition owns site(s) {', '.join(unowned)}: no engine would see them", ("rules_partitions",))
            )
        if problems:
            doc = read_yaml(source) if source is not None else None
            data = doc.data if doc is not None else None
            raise ConfigError(
                [f"{_where(doc, loc)}: deployment, field {describe_loc(data, loc)}: {msg}" for msg, loc in problems]
            )

    def refuse(self, loc: Sequence[str | int], why: str, source: Path | None = None) -> ConfigError:
        """A ConfigError for the key at ``loc`` (naming ``source``'s file and line when given)."""
        doc = read_yaml(source) if source is not None else None
        data = doc.data if doc is not None else None
        return ConfigError([f"{_where(doc, loc)}: deployment, field {describe_loc(data, loc)}: {why}"])

    def areas_of(self, sites: Sequence[str]) -> dict[str, list[str]]:
        """The areas for the API and the alert manager: as given, and each site in none its own area."""
        out = {area: list(listed) for area, listed in self.areas.items()}
        listed = {s for ss in out.values() for s in ss}
        for site in sorted(set(sites) - listed):
            out[site] = [site]
        return out

    def hj212_config(self) -> Hj212Config | None:
        """The HJ 212 ingest config the spec names (validated; its passwords are not read here), or None."""
        if self.hj212 is None:
            return None
        return validate(Hj212Config, read_yaml(self.hj212), "hj212 config")

    def hj212_sites(self) -> list[str]:
        """The sites of the HJ 212 stations of ``hj212`` (none without it)."""
        config = self.hj212_config()
        return sorted({s.site for s in config.stations}) if config is not None else []

    def inventory(
        self,
        sites: Sequence[str],
        sensor_topics: dict[str, list[str]] | None = None,
        hj212_sites: Sequence[str] = (),
        simulated_sensors: bool = False,
    ) -> Inventory:
        """What the broker's accounts are derived from, once the sites are known (from the scenario or site files)."""
        named = [p for p in self.rules_partitions if p.sites]
        hashed = [p for p in self.rules_partitions if p.count is not None]
        return Inventory(
            sites=sorted(sites),
            sensor_topics=dict(sensor_topics or {}),
            bridges=self.bridges,
            rules_partitions=hashed[0].count or 0 if hashed else 0,
            named_partitions=named,
            hj212_sites=list(hj212_sites),
            simulated_sensors=simulated_sensors,
        )


def _where(doc: YamlDoc | None, loc: Sequence[str | int]) -> str:
    if doc is None:
        return "deployment"
    line = doc.line_of(loc)
    return f"{doc.path}:{line}" if line else str(doc.path)


def load_spec(path: Path) -> DeploymentSpec:
    """Load and validate a deployment file; ConfigError names the file, the line and the key. Relative paths in it
    are relative to the current folder (where ``lifeline up`` runs)."""
    return validate(DeploymentSpec, read_yaml(path), "deployment")
