"""Configuration of the HJ 212 ingest server (``lifeline hj212 --config FILE``). Validated before any socket opens;
errors name the file, the line, the field and the reason.

```yaml
listen: {host: 127.0.0.1, port: 9212}      # loopback by default; 0.0.0.0 to hear stations on the network
broker: {host: 127.0.0.1, port: 1883}      # infra.mqtt.BrokerConfig
passwords_file: secrets/hj212.yaml          # optional: MN: PW lines, mode 0600
stations:
  - {mn: 010000A8900016F000169DC0, site: plant-7, device: cems-1, profile: flue_gas_cems_hj212,
     password: env:HJ212_PW_CEMS1}         # or file:secrets/cems1.pw (mode 0600), or from passwords_file
  - {mn: 010000A8900016F000169DC1, site: plant-7, device: outlet-1, profile: wastewater_outlet_hj212,
     version: 2025,                        # HJ 212-2025 station (default 2017)
     sm4_key: {file: secrets/outlet1.key}, # its SM4 key, 32 hex digits (infra.secret.Secret: {env: NAME} too)
     heartbeat_s: 60}                      # it sends CN 9015 every 60 s: offline after 3 missed
```

A password is never written in the config itself: ``env:NAME``, ``file:PATH`` (a file only its owner may read) or
``passwords_file``. Relative paths are taken from the config file's folder. Passwords are never logged or shown.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles import Profile, field_error, load_catalogue, load_profiles
from device_profiles.derive import settings_problems
from device_profiles.schema import TagKey
from edge_agent.config import PublishConfig
from edge_agent.hj212.framing import MAX_SEGMENT
from edge_agent.hj212.sm4 import CpCipher, Sm4Error, parse_key
from infra.config_loader import ConfigError, YamlDoc, read_yaml, validate
from infra.mqtt import BrokerConfig
from infra.secret import CredentialError, Secret
from telemetry.topics import AGENT

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Mn = Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,24}$", description="the station's unique id (HJ 212 MN)")]


class ListenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=9212, ge=0, le=65535, description="0: a free port (tests)")
    backlog: int = Field(default=1024, ge=1, le=65535, description="pending connections the kernel queues")


class StationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mn: Mn
    site: Id
    device: Id
    profile: str
    password: str | None = Field(
        default=None, description="env:NAME or file:PATH; absent: the station's line in passwords_file"
    )
    st: str | None = Field(default=None, pattern=r"^[0-9]{2}$", description="overrides the profile's system code")
    tags: dict[TagKey, Annotated[str, Field(max_length=200, pattern=r"^[^\n\\]*$")]] = Field(default_factory=dict)
    utc_offset_h: float = Field(default=8.0, ge=-14, le=14, description="offset of the station's DataTime (China +8)")
    enabled: bool = True
    version: Literal[2017, 2025] = Field(
        default=2017, description="the edition the station speaks: 2025 allows an SM4 key (both are parsed)"
    )
    sm4_key: Secret | None = Field(
        default=None, description="HJ 212-2025: the station's SM4 key, 32 hex digits ({file: PATH} or {env: NAME})"
    )
    heartbeat_s: float | None = Field(
        default=None,
        gt=0,
        description="HJ 212-2025: the station's heartbeat (CN 9015) interval; offline after 3 missed "
        "(absent: online while connected)",
    )

    @model_validator(mode="after")
    def _checks(self) -> StationConfig:
        if self.device == AGENT:
            raise field_error("device id 'agent' is reserved for the agent's own state topic", "device")
        if self.password is not None and not self.password.startswith(("env:", "file:")):
            raise field_error(
                "write env:NAME or file:PATH (or list the MN in passwords_file): a password is not kept in the "
                "config file",
                "password",
            )
        if self.sm4_key is not None and self.version != 2025:
            raise field_error("an SM4 key needs version: 2025 (HJ 212-2017 has no encryption)", "sm4_key")
        return self


class Hj212Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: ListenConfig = Field(default_factory=ListenConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    client_id: str = Field(default="lifeline-hj212-1", min_length=1, max_length=64)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    profile_paths: list[Path] = Field(default_factory=list, description="extra profile files or folders")
    passwords_file: Path | None = Field(default=None, description="YAML mapping MN -> PW, mode 0600")
    dead_letter_path: Path | None = Field(
        default=None, description="dead-letter store (SQLite, lifeline deadletter) of every refused packet"
    )
    dead_letter_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=4096,
        description="byte quota of the dead letters (payloads and reasons): past it the oldest go, counted",
    )
    dead_letter_max_letters: int = Field(default=100_000, ge=100, description="letter quota of the dead letters")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Prometheus text on this port")
    max_connections: int = Field(default=2000, ge=1, le=100_000, description="beyond it a connection is closed")
    idle_timeout_s: float = Field(default=600.0, gt=0, description="a connection silent this long is closed")
    max_bad_frames: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="a connection that sends this many bad frames in a row (garbage, unknown MN, wrong PW) is closed",
    )
    max_segment_bytes: int = Field(
        default=MAX_SEGMENT, ge=1, le=9999, description="longest data segment accepted (HJ 212-2017: 1024, check)"
    )
    split_timeout_s: float = Field(default=60.0, gt=0, description="time for all parts of a split message")
    stations: list[StationConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Hj212Config:
        mns: set[str] = set()
        devices: set[tuple[str, str]] = set()
        for i, s in enumerate(self.stations):
            if s.mn in mns:
                raise field_error(f"MN {s.mn!r} is used twice", "stations", i, "mn")
            if (s.site, s.device) in devices:
                raise field_error(f"device {s.site}/{s.device} is used twice", "stations", i, "device")
            mns.add(s.mn)
            devices.add((s.site, s.device))
        return self


@dataclass(frozen=True, slots=True)
class Station:
    """A configured station with its resolved password and SM4 key (never in repr or logs) and its profile."""

    config: StationConfig
    profile: Profile
    password: str = field(repr=False)
    cipher: CpCipher | None = field(default=None, repr=False)

    @property
    def mn(self) -> str:
        return self.config.mn

    @property
    def st(self) -> str | None:
        assert self.profile.hj212 is not None
        return self.config.st or self.profile.hj212.st


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: Hj212Config
    stations: dict[str, Station]  # by MN, enabled ones only
    path: Path | None = None

    def devices(self) -> dict[tuple[str, str], str]:
        """(site, device) -> profile name of every station: what a bridge's device registry needs to know."""
        return {(s.config.site, s.config.device): s.profile.name for s in self.stations.values()}


def load_config(path: Path, catalogue: dict[str, Profile] | None = None) -> LoadedConfig:
    """Load, validate and cross-check an ingest config; ConfigError names file, line, station and field."""
    doc = read_yaml(path)
    config = validate(Hj212Config, doc, "hj212 config")
    return build_config(config, path.parent, doc, catalogue)


def build_config(
    config: Hj212Config,
    base: Path | None = None,
    doc: YamlDoc | None = None,
    catalogue: dict[str, Profile] | None = None,
) -> LoadedConfig:
    """Resolve profiles (``catalogue``, default the shipped one, plus ``profile_paths``) and passwords; every
    problem of every station in one ConfigError."""
    base = base or Path()
    where_file = str(doc.path) if doc else "config"

    def where(*loc: int | str) -> str:
        line = doc.line_of(list(loc)) if doc else None
        return f"{where_file}:{line}" if line else where_file

    profiles = dict(catalogue if catalogue is not None else load_catalogue())
    if config.profile_paths:
        profiles.update(load_profiles([p if p.is_absolute() else base / p for p in config.profile_paths]))
    problems: list[str] = []
    shared: dict[str, str] = {}
    if config.passwords_file is not None:
        try:
            shared = _read_passwords_file(_at(base, config.passwords_file))
        except ValueError as exc:
            problems.append(f"{where('passwords_file')}: hj212 config, field passwords_file: {exc}")
    stations: dict[str, Station] = {}
    for i, s in enumerate(config.stations):
        label = f"station {s.mn!r}"
        profile = profiles.get(s.profile)
        if profile is None or profile.hj212 is None:
            known = ", ".join(sorted(n for n, p in profiles.items() if p.hj212 is not None))
            what = "unknown profile" if profile is None else "not an HJ 212 profile"
            problems.append(
                f"{where('stations', i, 'profile')}: {label}, field profile: {what} {s.profile!r} "
                f"(HJ 212 profiles: {known})"
            )
            continue
        found = settings_problems(profile, {**profile.tags, **s.tags})  # e.g. an o2_ref that is no reference O2
        problems += [f"{where('stations', i, 'tags')}: {label}, field tags: {p}" for p in found]
        try:
            password = _password(s, shared, base)
        except ValueError as exc:
            problems.append(f"{where('stations', i, 'password')}: {label}, field password: {exc}")
            continue
        try:
            cipher = None if s.sm4_key is None else CpCipher(_key(s.sm4_key, base, label))
        except (CredentialError, Sm4Error) as exc:
            problems.append(f"{where('stations', i, 'sm4_key')}: {label}, field sm4_key: {exc}")
            continue
        if s.enabled:
            stations[s.mn] = Station(s, profile, password, cipher)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(config, stations, doc.path if doc else None)


def _at(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path


def _key(secret: Secret, base: Path, label: str) -> bytes:
    if secret.file is not None and not secret.file.is_absolute():
        secret = Secret(file=base / secret.file)
    return parse_key(secret.reveal(f"SM4 key of {label}"))


def _password(s: StationConfig, shared: dict[str, str], base: Path) -> str:
    if s.password is None:
        if s.mn not in shared:
            raise ValueError("none given, and passwords_file has no line for this MN")
        return shared[s.mn]
    kind, _, rest = s.password.partition(":")
    if not rest:
        raise ValueError(f"'{kind}:' needs a name after it")
    if kind == "env":
        value = os.environ.get(rest)
        if not value:
            raise ValueError(f"environment variable {rest} is not set")
        return _check_password(value)
    return _check_password(_read_secret(_at(base, Path(rest))).strip())


def _check_password(value: str) -> str:
    if not value or any(c in value for c in ";,=&\r\n"):
        raise ValueError("the password is empty or has a character HJ 212 cannot carry (; , = &)")
    return value


def _read_secret(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"{path} can be read by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_passwords_file(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(_read_secret(path))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML (MN: PW lines)") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str | int) for k in data):
        raise ValueError(f"{path} must be a mapping of MN to password")
    return {str(k): _check_password(str(v)) for k, v in data.items()}
