"""The streaming rules service's own settings: where telemetry comes from, which packs, how often it saves."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infra.mqtt import BrokerConfig, SubscriptionConfig
from rules.loader import load_rules
from rules.schema import Rule
from telemetry import topics

PACKS = Path(__file__).parent / "packs"


def _subscription() -> SubscriptionConfig:
    # Its own shared-subscription group: the bridge's group does not share its messages with the rules engine.
    return SubscriptionConfig(
        client_id="lifeline-rules-1", group="lifeline-rules", topic=topics.telemetry_filter(), receive_maximum=5000
    )


RULES_GROUP = "lifeline-rules"
STATE_NAME = "rules.engine"  # the single engine's saved state (a partition's: rules.engine.<label>)


def site_partition(site: str, count: int) -> int:
    """The partition (0..count-1) a site belongs to: CRC-32 of its id, stable across processes and versions."""
    return zlib.crc32(site.encode()) % count


class PartitionConfig(BaseModel):
    """Which sites this engine owns, when several engines share a district: either named ``sites`` (with a
    ``name``), or ``index`` of ``count`` by a stable hash of the site id. A site's devices all go to one partition,
    so no device's state is ever split. Each partition has its own shared-subscription group
    (``lifeline-rules-<name>``), its own saved state (``rules.engine.<name>``) and its own broker account
    (``rules-<name>``, from ``lifeline broker config --rules-partitions N``); the alert store is shared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="the partition's name (group, state, account); default for index/count: '<index>-of-<count>'",
    )
    sites: list[str] = Field(default_factory=list, description="the sites this partition owns, by name")
    index: int | None = Field(None, ge=0, description="this partition's number, 0..count-1 (with count)")
    count: int | None = Field(None, ge=1, le=1000, description="how many hash partitions the district has")
    windows: bool | None = Field(
        None,
        description="run the scheduled window rules and valid means (district-wide, one state): exactly one "
        "engine of a district must; default: partition 0 of a hash split, no named partition",
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        hashed = self.index is not None or self.count is not None
        if self.sites and hashed:
            raise ValueError("give either sites (named partition) or index and count (hash partition), not both")
        if not self.sites and not hashed:
            raise ValueError("give sites (named partition) or index and count (hash partition)")
        if hashed:
            if self.index is None or self.count is None:
                raise ValueError("index and count go together")
            if self.index >= self.count:
                raise ValueError(f"index {self.index} is not below count {self.count} (partitions are 0..count-1)")
        else:
            if self.name is None:
                raise ValueError("a partition by sites needs a name (its group, state and account are named by it)")
            if len(set(self.sites)) != len(self.sites):
                raise ValueError("a site is listed twice")
            for site in self.sites:
                topics.check_site_id(site)
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.index}-of-{self.count}"

    @property
    def group(self) -> str:
        return f"{RULES_GROUP}-{self.label}"

    @property
    def state_name(self) -> str:
        return f"rules.engine.{self.label}"

    @property
    def runs_windows(self) -> bool:
        if self.windows is not None:
            return self.windows
        return self.index == 0

    def owns(self, site: str) -> bool:
        if self.sites:
            return site in self.sites
        assert self.index is not None
        assert self.count is not None
        return site_partition(site, self.count) == self.index

    def filters(self) -> list[str]:
        """What to subscribe to: named sites' own topics; for a hash partition every site's (the engine drops the
        sites it does not own, by their topic, before decoding)."""
        if self.sites:
            return [f for s in sorted(self.sites) for f in _filters(s)]
        return _filters("+")


def _filters(site: str) -> list[str]:
    """What a rules engine reads of ``site`` ('+': every site): telemetry, device status, the agent's birth and
    death."""
    return [topics.telemetry_filter(site), topics.status_filter(site), topics.agent_state(site)]


def engine_filters() -> list[str]:
    """The single engine's subscription: every site's telemetry, status and agent state."""
    return _filters("+")


class LeaseConfig(BaseModel):
    """A hot standby for a partition (``lifeline rules --standby``): engines of one partition take turns through a
    lease in the alert store (``alerts.lease``); only its holder subscribes. Give every engine of the partition the
    same config (the same subscription client id and account): the standby resumes the partition's MQTT session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_s: float = Field(5.0, gt=0, le=300, description="how long a renewal holds: a standby takes over after it")
    renew_s: float = Field(1.5, gt=0, le=100, description="how often the active engine renews its lease")
    poll_s: float = Field(0.5, gt=0, le=60, description="how often a standby looks whether the lease ran out")

    @model_validator(mode="after")
    def _renew_in_time(self) -> Self:
        if self.renew_s * 2 > self.ttl_s:
            raise ValueError(f"renew_s {self.renew_s:g} must be at most half of ttl_s {self.ttl_s:g}")
        return self


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = Field(
        default_factory=BrokerConfig,
        exclude=True,
        description="the service's broker section, set by the service (a file's rules.broker is refused: it would be "
        "replaced); never dumped",
    )
    subscription: SubscriptionConfig = Field(default_factory=_subscription)
    packs: list[Path] = Field(
        default_factory=lambda: [PACKS], description="rule files and folders; default: the shipped packs"
    )
    tick_s: float = Field(1.0, gt=0, le=60, description="how often delays and no-data checks run")
    checkpoint_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="how often the engine's state is saved; telemetry is acknowledged to the broker only after that, "
        "so a crash replays at most this much from the broker",
    )
    max_future_s: float = Field(300, gt=0, description="samples further ahead than this (edge clock wrong) are skipped")
    sites: list[Path] = Field(
        default_factory=list,
        description="edge site files or folders: only their devices are evaluated, a message of any other is a dead "
        "letter (empty: any device of a known profile); the deployment gives the district's",
    )
    dead_letter_path: Path | None = Field(
        None, description="where refused messages are kept (SQLite, source 'rules'); none: in memory, bounded"
    )
    reconnect_grace_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="after (re)connecting, how long the engine waits for the backlog before it judges a site lost "
        "by the wall clock",
    )
    catchup_lag_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a site whose messages arrive with samples older than this is draining a backlog: not lost",
    )
    partition: PartitionConfig | None = Field(
        None, description="the sites this engine owns when several share a district; none: every site (one engine)"
    )

    lease: LeaseConfig | None = Field(
        None,
        description="run under the partition's lease in the alert store (a hot standby waits for it); none: no "
        "lease, this engine runs at once (then it must be the partition's only engine)",
    )

    @property
    def state_name(self) -> str:
        """The engine's saved state in the alert store (and its lease's name)."""
        return self.partition.state_name if self.partition else STATE_NAME

    def load(self) -> list[Rule]:
        return load_rules(self.packs)
