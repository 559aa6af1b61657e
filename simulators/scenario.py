"""Scenarios: a whole simulated district in one YAML file, validated before any socket opens.

A scenario lists sites (one edge agent each) and their devices. A work-safety site may instead name a number of
enterprises, whose gas and fire detectors are generated from the scenario's ``seed``; enterprises of a kind (e.g.
chemical plants) also get toxic-gas detectors (each with its ``gas`` tag) and oxygen detectors. ``plan`` turns a
scenario into the full device list, deterministically; ``site_config`` writes the edge agent's config for a site.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_profiles import Profile, load_catalogue
from device_profiles.schema import TagKey
from infra.config_loader import ConfigError, YamlDoc, read_yaml, validate
from rules.standards.gas import TOXIC_GASES
from simulators.behaviours import BEHAVIOURS

SCENARIOS = Path(__file__).parent / "scenarios"
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ParamValue = bool | int | float | str


class DeviceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    profile: str
    params: dict[str, ParamValue] = Field(default_factory=dict, description="the behaviour's parameters")
    port: int | Literal["auto"] = Field(default="auto", description="Modbus TCP port; auto: from port_base")
    unit_id: int = Field(default=1, ge=0, le=255)
    source_id: str | None = Field(default=None, description="MQTT: the vendor's id in the topic; default: id")
    interval_s: float | None = Field(default=None, gt=0, description="MQTT: publish interval; default: the kind's")
    tags: dict[TagKey, str] = Field(
        default_factory=dict, description="the device's tags in its site file (e.g. a CEMS's source and o2_ref)"
    )

    @model_validator(mode="after")
    def _port(self) -> DeviceSpec:
        if isinstance(self.port, int) and not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not between 1 and 65535")
        return self


def _span(name: str, span: tuple[int, int]) -> None:
    low, high = span
    if not 0 <= low <= high <= 99:
        raise ValueError(f"{name} [{low}, {high}] must be 0 <= min <= max <= 99")


class EnterpriseKind(BaseModel):
    """A kind of enterprise among a work-safety site's enterprises (e.g. chemical plants): its share of them, and
    the toxic-gas and oxygen detectors each one has besides its gas and fire detectors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    share: float = Field(ge=0, le=1, description="the fraction of the site's enterprises of this kind")
    toxic_detectors: tuple[int, int] = Field(default=(0, 0), description="[min, max] toxic-gas detectors each")
    gases: tuple[str, ...] = Field(default=(), description="the gases its toxic detectors measure (OEL table keys)")
    oxygen_detectors: tuple[int, int] = Field(default=(0, 0), description="[min, max] oxygen detectors each")
    confined: bool = Field(default=True, description="its oxygen detectors watch confined spaces (they may dip)")
    excursions_per_day: float = Field(default=0.0, ge=0, description="random releases, each toxic detector")
    dips_per_day: float = Field(default=0.0, ge=0, description="random oxygen dips, each confined oxygen detector")
    faults_per_day: float = Field(default=0.0, ge=0, description="random detector faults, each toxic/oxygen detector")

    @model_validator(mode="after")
    def _check(self) -> EnterpriseKind:
        _span("toxic_detectors", self.toxic_detectors)
        _span("oxygen_detectors", self.oxygen_detectors)
        unknown = [g for g in self.gases if g not in TOXIC_GASES]
        if unknown:
            raise ValueError(f"gases {unknown} have no OEL in the table (known: {', '.join(sorted(TOXIC_GASES))})")
        if self.toxic_detectors[1] > 0 and not self.gases:
            raise ValueError("toxic_detectors needs gases (the gases its detectors measure)")
        return self


class Enterprises(BaseModel):
    """Enterprises of a work-safety site: each has 1..n gas detectors and one fire detector; those of a ``kinds``
    entry also have its toxic-gas and oxygen detectors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=0, le=9999)
    gas_detectors: tuple[int, int] = Field(default=(1, 3), description="[min, max] gas detectors each")
    prefix: str = Field(default="ent", pattern=r"^[a-z][a-z0-9]{0,15}$")
    leaks_per_day: float = Field(default=0.0, ge=0, description="random leaks, each gas detector")
    fires_per_day: float = Field(default=0.0, ge=0, description="random fires, each fire detector")
    kinds: list[EnterpriseKind] = Field(default_factory=list, description="kinds with toxic/oxygen detectors")

    @model_validator(mode="after")
    def _range(self) -> Enterprises:
        _span("gas_detectors", self.gas_detectors)
        if sum(k.share for k in self.kinds) > 1.0 + 1e-9:
            raise ValueError("the kinds' shares add up to more than 1")
        names = [k.kind for k in self.kinds]
        if len(set(names)) != len(names):
            raise ValueError(f"kinds {names} name a kind twice")
        return self


class SiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: Id
    title: str = ""
    # where the site lies, for the console's overview (a schematic by river and area)
    river: str = Field(default="", max_length=64, description="the waterway it lies on; empty: off the rivers")
    area: str = Field(default="", max_length=64, description="the part of the district it is in")
    km: float | None = Field(default=None, ge=0, description="its place along the river, km from its mouth")
    devices: list[DeviceSpec] = Field(default_factory=list)
    enterprises: Enterprises | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> SiteSpec:
        if not self.devices and (self.enterprises is None or self.enterprises.count == 0):
            raise ValueError("a site needs devices or enterprises")
        return self


class SourcesSpec(BaseModel):
    """The district's HJ 212 pollution-source stations (a flue-gas CEMS and a wastewater outlet that push to the
    ingest server under ``lifeline up``), on the site ``<scenario>-sources``: where that site lies for the console,
    and the CEMS's tags (``source`` selects the emissions pack's limits, ``o2_ref`` is its reference O2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = "Pollution sources (HJ 212 stations)"
    river: str = Field(default="", max_length=64, description="the waterway it lies on; empty: off the rivers")
    area: str = Field(default="", max_length=64, description="the part of the district it is in")
    km: float | None = Field(default=None, ge=0, description="its place along the river, km from its mouth")
    cems_tags: dict[TagKey, str] = Field(
        default_factory=lambda: {"source": "coal_power", "o2_ref": "6"}, description="the CEMS's device tags"
    )


class Scenario(BaseModel):
    """A simulated district."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Id
    title: str = ""
    seed: int = 0
    host: str = Field(default="127.0.0.1", description="where the Modbus devices listen")
    port_base: int = Field(default=0, ge=0, le=65535, description="first port for 'auto'; 0: free ports")
    intervals: dict[str, float] = Field(default_factory=dict, description="MQTT publish interval by profile")
    sites: list[SiteSpec] = Field(min_length=1)
    hj212: SourcesSpec = Field(default_factory=SourcesSpec, description="its HJ 212 stations' site (<name>-sources)")

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        seen: set[str] = set()
        sources = f"{self.name}-sources"  # the HJ 212 stations' site (lifeline.broker_auth.hj212_site)
        for site in self.sites:
            if site.site == sources:
                raise ValueError(f"site {sources!r} is the HJ 212 stations' site (hj212:), not one to list")
            if site.site in seen:
                raise ValueError(f"site {site.site!r} is listed twice")
            seen.add(site.site)
        return self


@dataclass(frozen=True, slots=True)
class PlannedDevice:
    """One device of the district, fully resolved."""

    site: str
    id: str
    profile: Profile
    seed: int
    params: dict[str, ParamValue] = field(default_factory=dict)
    port: int = 0  # Modbus: 0 = pick a free one at start
    unit_id: int = 1
    source_id: str | None = None
    interval_s: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_modbus(self) -> bool:
        return self.profile.protocol == "modbus"


def device_seed(scenario_seed: int, device_id: str) -> int:
    """A device's own seed: stable across runs and Python versions (no ``hash()``, which is salted)."""
    return (scenario_seed * 1_000_003 + zlib.crc32(device_id.encode())) & 0xFFFFFFFF


def _enterprise_devices(site: SiteSpec, seed: int) -> list[DeviceSpec]:
    ent = site.enterprises
    if ent is None:
        return []
    rng = random.Random(device_seed(seed, site.site))
    # the kinds draw from a generator of their own: the gas and fire detectors stay what they were without kinds
    kind_rng = random.Random(device_seed(seed, f"{site.site}/kinds"))
    kinds = _kinds_of(ent, kind_rng)
    out: list[DeviceSpec] = []
    for n in range(1, ent.count + 1):
        name = f"{ent.prefix}{n:03d}"
        for k in range(1, rng.randint(*ent.gas_detectors) + 1):
            out.append(
                DeviceSpec(
                    id=f"{name}-gas-{k}",
                    profile="gas_detector",
                    source_id=f"GD{rng.randrange(16**8):08X}",
                    params={"leaks_per_day": ent.leaks_per_day},
                )
            )
        out.append(
            DeviceSpec(
                id=f"{name}-fire",
                profile="fire_detector",
                source_id=f"FP-{n:04d}",
                params={"fires_per_day": ent.fires_per_day},
            )
        )
        kind = kinds.get(n)
        if kind is not None:
            out += _kind_devices(name, kind, kind_rng)
    return out


def _kinds_of(ent: Enterprises, rng: random.Random) -> dict[int, EnterpriseKind]:
    """Which enterprise (1..count) is of which kind: round(share × count) of them each, drawn at random."""
    order = list(range(1, ent.count + 1))
    rng.shuffle(order)
    out: dict[int, EnterpriseKind] = {}
    taken = 0
    for kind in ent.kinds:
        many = round(kind.share * ent.count)
        for n in order[taken : taken + many]:
            out[n] = kind
        taken += many
    return out


def _kind_devices(name: str, kind: EnterpriseKind, rng: random.Random) -> list[DeviceSpec]:
    """An enterprise's toxic-gas detectors (each with its ``gas`` tag, distinct gases while there are enough) and
    oxygen detectors."""
    out: list[DeviceSpec] = []
    toxic = rng.randint(*kind.toxic_detectors)
    gases = rng.sample(kind.gases, min(toxic, len(kind.gases))) if kind.gases else []
    gases += [rng.choice(kind.gases) for _ in range(toxic - len(gases))]
    for k, gas in enumerate(gases, start=1):
        out.append(
            DeviceSpec(
                id=f"{name}-tox-{k}",
                profile="toxic_gas_detector",
                source_id=f"TD{rng.randrange(16**8):08X}",
                params={
                    "gas": gas,
                    "excursions_per_day": kind.excursions_per_day,
                    "faults_per_day": kind.faults_per_day,
                },
                tags={"gas": gas},
            )
        )
    for k in range(1, rng.randint(*kind.oxygen_detectors) + 1):
        out.append(
            DeviceSpec(
                id=f"{name}-o2-{k}",
                profile="oxygen_detector",
                source_id=f"OD{rng.randrange(16**8):08X}",
                params={
                    "confined": kind.confined,
                    "dips_per_day": kind.dips_per_day if kind.confined else 0.0,
                    "faults_per_day": kind.faults_per_day,
                },
            )
        )
    return out


def plan(scenario: Scenario, profiles: dict[str, Profile] | None = None) -> list[PlannedDevice]:
    """Every device of the district, in order; ports of 'auto' Modbus devices counted up from ``port_base``."""
    profiles = profiles or load_catalogue()
    out: list[PlannedDevice] = []
    next_port = scenario.port_base
    for site in scenario.sites:
        for spec in [*site.devices, *_enterprise_devices(site, scenario.seed)]:
            profile = profiles[spec.profile]
            port = 0
            if profile.protocol == "modbus":
                if isinstance(spec.port, int):
                    port = spec.port
                elif scenario.port_base:
                    port, next_port = next_port, next_port + 1
            interval = spec.interval_s or scenario.intervals.get(profile.name, 0.0)
            seed = device_seed(scenario.seed, spec.id)
            out.append(
                PlannedDevice(
                    site.site,
                    spec.id,
                    profile,
                    seed,
                    dict(spec.params),
                    port,
                    spec.unit_id,
                    spec.source_id,
                    interval,
                    dict(spec.tags),
                )
            )
    return out


def _check(scenario: Scenario, doc: YamlDoc, profiles: dict[str, Profile]) -> None:
    """What the schema cannot check: known profiles, behaviour parameters, unique ids and ports."""
    problems: list[str] = []

    def where(*loc: int | str) -> str:
        line = doc.line_of(list(loc))
        return f"{doc.path}:{line}" if line else str(doc.path)

    for i, site in enumerate(scenario.sites):
        for j, dev in enumerate(site.devices):
            loc = ("sites", i, "devices", j)
            kind = BEHAVIOURS.get(dev.profile)
            if dev.profile not in profiles or kind is None:
                problems.append(
                    f"{where(*loc, 'profile')}: device {dev.id!r}, field profile: no simulator for "
                    f"{dev.profile!r} (known: {', '.join(sorted(BEHAVIOURS))})"
                )
                continue
            try:
                kind.params.model_validate(dev.params)
            except ValidationError as exc:
                for err in exc.errors():
                    key = ".".join(str(p) for p in err["loc"])
                    problems.append(
                        f"{where(*loc, 'params', *err['loc'])}: device {dev.id!r}, field params.{key}: {err['msg']}"
                    )
    if problems:
        raise ConfigError(problems)
    seen_ids: set[str] = set()
    ports: dict[int, str] = {}
    for planned in plan(scenario, profiles):
        if planned.id in seen_ids:
            problems.append(f"{doc.path}: device id {planned.id!r} (site {planned.site}) is used twice")
        seen_ids.add(planned.id)
        if planned.is_modbus and planned.port:
            if planned.port in ports:
                problems.append(
                    f"{doc.path}: devices {ports[planned.port]!r} and {planned.id!r} both use port {planned.port}"
                )
            ports[planned.port] = planned.id
    if problems:
        raise ConfigError(problems)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by name (a file in simulators/scenarios/) or path; ConfigError names file, line and field."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SCENARIOS / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
            raise ConfigError([f"{name_or_path}: no such scenario (known: {known})"])
    doc = read_yaml(path)
    scenario = validate(Scenario, doc, "scenario")
    _check(scenario, doc, load_catalogue())
    return scenario
