"""The edge agent's configuration: one site, its broker, its devices. Validated before any socket opens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles import Profile, field_error, load_catalogue, load_profiles
from device_profiles.derive import settings_problems
from device_profiles.overrides import PointOverride, apply_overrides, override_problems
from device_profiles.schema import TagKey
from edge_agent.health import DEFAULT_MIN_FREE_BYTES
from infra.config_loader import ConfigError, YamlDoc, read_yaml, validate
from infra.mqtt import BrokerConfig
from telemetry.interlocks import STATE_POINTS, WRITE_POINTS, GateLimits, Limits, opening_range_top
from telemetry.keys import KeyFileError, load_signing_key, load_verify_key
from telemetry.models import PointName
from telemetry.signing import SigningKey, VerifyKey

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
HEALTH_DEVICE = "edge"  # the agent's own health, as telemetry of this pseudo-device of its site
HEALTH_PROFILE = "edge_agent"
OUTBOX_FILE = "outbox.sqlite3"  # in state_dir


class PublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_inflight: int = Field(
        default=200, ge=1, le=20000, description="QoS 1 messages sent and not yet acknowledged by the broker"
    )
    buffer_max_messages: int = Field(
        default=200_000, ge=10, description="messages the outbox holds until confirmed; beyond it the oldest go"
    )
    outbox_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="bytes (topics and payloads) the outbox holds until confirmed; beyond it the oldest go",
    )
    ack_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="telemetry not reported stored this long after sending is resent"
    )
    replay_rate: float = Field(
        default=1000.0,
        gt=0,
        le=100_000,
        description="messages/s for the backlog (after an outage, resends); live messages go first, unbounded",
    )
    memory_max_messages: int = Field(
        default=50_000,
        ge=10,
        description="messages kept in memory while the outbox file cannot be written (disk full, write errors); "
        "beyond it the oldest of them go, counted in outbox_memory_dropped",
    )
    health_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description=f"how often the agent publishes its health as device {HEALTH_DEVICE!r}"
    )
    outbox_min_free_bytes: int = Field(
        default=DEFAULT_MIN_FREE_BYTES,
        ge=0,
        description="once an outbox write failed for lack of space, its health says 'disk full' until at least this "
        "much is free again on the outbox's file system (SQLite writes into pages it freed at 0 bytes free)",
    )


class ModbusDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=1.0, gt=0, le=60)
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    failures_before_offline: int = Field(default=1, ge=1, le=100)
    client: Literal["pymodbus", "lean"] = Field(
        default="pymodbus",
        description="the polls' Modbus TCP client: pymodbus, or lean (reads only, a fraction of "
        "the CPU; edge_agent.modbus_client); gate commands always use pymodbus",
    )


def gate_range_top(profile: Profile) -> float | None:
    """The top of the profile's ``gate_opening`` range (m): a gate's full opening unless its config says otherwise."""
    return opening_range_top(profile.modbus.points if profile.modbus else ())


class PointWriteConfig(BaseModel):
    """One point this agent writes on command (a set point): bounds narrower than the profile's, the read-back
    tolerance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = Field(default=None, description="lowest value a command may write; default: the range's min")
    max: float | None = Field(default=None, description="highest value a command may write; default: the range's max")
    tolerance: float | None = Field(
        default=None,
        ge=0,
        description="|read back - written| that counts as written; default: half the step, else half the scale of an "
        "integer register, else 1e-5 of the value (a float32 keeps 7 digits)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PointWriteConfig:
        if self.min is not None and self.max is not None and not self.min <= self.max:
            raise field_error(f"min {self.min:g} must not be above max {self.max:g}", "min")
        return self


GATE_FIELDS = frozenset(GateLimits.model_fields)


class ControlConfig(GateLimits):
    """Remote control by this agent (``control:`` of a Modbus device). For a sluice gate (a profile of kind
    sluice_gate): the gate's limits (``telemetry.interlocks.GateLimits``, the model the API checks with too; there
    ``max_head_open_m`` is required) and how a movement is run. For any device: ``points``, the writable points of its
    profile that commands may write (set points). A device without this section, or with ``enabled: false``, refuses
    every command (``unknown_device``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # required for a gate (check_devices says so), meaningless elsewhere: so not required by the schema
    max_head_open_m: float | None = Field(
        default=None,
        ge=0,
        description="gates: largest |level_up - level_down| at which an opening movement may start (a site value, "
        "required for a gate); null: no limit",
    )
    enabled: bool = True
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="a movement not done by then is stopped")
    readback_interval_s: float = Field(default=1.0, gt=0, le=60, description="how often the opening is read back")
    points: dict[PointName, PointWriteConfig] = Field(
        default_factory=dict, description="points commands may write (writable in the profile), with their bounds"
    )

    def full_m(self, profile: Profile) -> float:
        """The full opening: configured, or the top of the profile's gate_opening range."""
        return self.full_opening(gate_range_top(profile))

    def max_m(self, profile: Profile) -> float:
        return self.max_opening_m if self.max_opening_m is not None else self.full_m(profile)

    def limits(self, profile: Profile) -> Limits:
        """The limits resolved against the gate's profile (ValueError: no full opening known, or an empty range)."""
        return self.resolve(gate_range_top(profile))


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    profile: str
    enabled: bool = True
    tags: dict[TagKey, Annotated[str, Field(max_length=200, pattern=r"^[^\n\\]*$")]] = Field(
        default_factory=dict, description="tags on every reading of this device (no newline or backslash)"
    )
    poll_interval_s: float | None = Field(default=None, gt=0, le=86400, description="overrides the profile's")
    # Modbus devices
    host: str | None = None
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    points: dict[str, PointOverride] = Field(
        default_factory=dict,
        description="this device's changes to its profile's points: scale, offset, range, states, decimals, unit "
        "(e.g. a drive whose frequency scale is set by its parameter P0-10)",
    )
    # MQTT sensors
    source_id: str | None = Field(
        default=None,
        pattern=r"^[^/+#\s]{1,128}$",
        description="the id the vendor puts in its topic (no '/', '+', '#' or spaces); default: id",
    )
    control: ControlConfig | None = Field(
        default=None, description="remote control (sluice gates, set points); default: none"
    )

    @model_validator(mode="after")
    def _not_agent(self) -> DeviceConfig:
        if self.id == "agent":
            raise field_error("device id 'agent' is reserved for the agent's own state topic", "id")
        if self.id == HEALTH_DEVICE:
            raise field_error(f"device id {HEALTH_DEVICE!r} is reserved for the agent's own health", "id")
        return self

    @property
    def vendor_id(self) -> str:
        return self.source_id or self.id


class EdgeConfig(BaseModel):
    """One site's edge agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: Id
    agent_id: Id | None = Field(default=None, description="MQTT client id base; default edge-{site}")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    sensor_broker: BrokerConfig | None = Field(
        default=None, description="broker the MQTT sensors publish to; default: the uplink broker"
    )
    profile_paths: list[Path] = Field(default_factory=list, description="extra profile files or folders")
    publish: PublishConfig = Field(default_factory=PublishConfig)
    modbus: ModbusDefaults = Field(default_factory=ModbusDefaults)
    dead_letter_path: Path | None = Field(
        default=None,
        description="dead-letter store (SQLite, lifeline deadletter) of the messages the agent cannot use; default: "
        "the last 1,000 in memory",
    )
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Prometheus text on this port")
    state_dir: Path | None = Field(
        default=None,
        description="where the agent keeps state across restarts (the outbox, command ids); default: memory only",
    )
    sample_journal: Path | None = Field(
        default=None,
        description="acceptance checks: one JSON line (device, run, seq, ts of each sample) per telemetry message "
        "once it is in the outbox file, i.e. taken for good; default: none",
    )
    command_delivery_window_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="a command first seen later than this after it was issued is refused (interlock late), whatever "
        "its time to live: it was held back on its way. At most the API's gates.receipt_timeout_s (5 s), so that a "
        "command the API reports not delivered never runs later; the edge's and the API's clocks must agree to well "
        "within it (NTP)",
    )
    control_public_key: Path | None = Field(
        default=None,
        description="the API's control public key of this site (PEM): only commands signed with its "
        "private key are executed; none: every command is refused",
    )
    site_private_key: Path | None = Field(
        default=None,
        description="this site's private key (PEM, mode 0600): signs every result; with control_public_key",
    )
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        default="auto",
        description="processes that poll the Modbus devices: auto = one per usable core from 500 "
        "Modbus devices on, else none; 1 = none (all in the agent's one process); the outbox, uplink, MQTT "
        "sensors, commands and gates stay in the agent",
    )
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _keys_together(self) -> EdgeConfig:
        if (self.control_public_key is None) != (self.site_private_key is None):
            missing = "site_private_key" if self.site_private_key is None else "control_public_key"
            raise field_error("control_public_key and site_private_key go together: set both or neither", missing)
        return self

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeConfig:
        seen: set[str] = set()
        for i, d in enumerate(self.devices):
            if d.id in seen:
                raise field_error(f"device id {d.id!r} is used twice", "devices", i, "id")
            seen.add(d.id)
        return self

    @property
    def client_id(self) -> str:
        return self.agent_id or f"edge-{self.site}"


@dataclass(frozen=True, slots=True)
class EdgeKeys:
    """The keys of signed commands at the edge: the control key's public half verifies commands, the site key
    signs results (telemetry.signing)."""

    control: VerifyKey
    site: SigningKey


class LoadedSite:
    """A validated site config together with the profiles its devices use and its keys (None: none configured)."""

    def __init__(
        self, config: EdgeConfig, profiles: dict[str, Profile], path: Path | None = None, keys: EdgeKeys | None = None
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.path = path
        self.keys = keys

    def profile_of(self, device: DeviceConfig) -> Profile:
        """The device's profile with the device's own point changes (``points:`` in the site file) applied."""
        if not device.points:
            return self.profiles[device.profile]
        cache: dict[str, Profile] = self.__dict__.setdefault("_device_profiles", {})
        found = cache.get(device.id)
        if found is None:
            found = cache[device.id] = apply_overrides(self.profiles[device.profile], device.points)
        return found

    def published_devices(self) -> list[tuple[str, str]]:
        """(device id, profile name) of everything the agent publishes telemetry for: its devices and its health."""
        return [(d.id, d.profile) for d in self.config.devices] + [(HEALTH_DEVICE, HEALTH_PROFILE)]


def check_devices(config: EdgeConfig, profiles: dict[str, Profile], doc: YamlDoc | None = None) -> None:
    """Cross-checks a schema cannot do: known profiles, Modbus devices with a host."""
    problems: list[str] = []
    for i, dev in enumerate(config.devices):

        def where(field: str, i: int = i) -> str:
            line = doc.line_of(["devices", i, field]) if doc else None
            return f"{doc.path}:{line}" if doc and line else (str(doc.path) if doc else "config")

        profile = profiles.get(dev.profile)
        if profile is None:
            problems.append(
                f"{where('profile')}: device {dev.id!r}, field profile: unknown profile {dev.profile!r}"
                f" (known: {', '.join(sorted(profiles))})"
            )
        elif profile.protocol == "modbus" and not dev.host:
            problems.append(f"{where('id')}: device {dev.id!r}, field host: a Modbus device needs a host")
        if profile is not None:
            found = settings_problems(profile, {**profile.tags, **dev.tags})
            problems += [f"{where('tags')}: device {dev.id!r}, field tags: {p}" for p in found]
            found = override_problems(profile, dev.points)
            problems += [f"{where('points')}: device {dev.id!r}, field points: {p}" for p in found]
            side = dev.tags.get("flood_side")  # a tide gate's outer side (rules/packs/sluice.yaml, sluice.md)
            if side is not None and side not in ("upstream", "downstream"):
                problems.append(
                    f"{where('tags')}: device {dev.id!r}, field tags: flood_side={side!r} must be upstream or "
                    "downstream (the side of the gate where the outer, tidal water is)"
                )
        if profile is not None and dev.control is not None:
            found = _control_problems(dev, apply_overrides(profile, dev.points))  # the device's own bounds
            problems += [f"{where('control')}: device {dev.id!r}, field control{p}" for p in found]
    sensors = [d for d in config.devices if d.enabled and (p := profiles.get(d.profile)) and p.protocol == "mqtt"]
    if sensors and config.sensor_broker is None and config.broker.username:
        # one account is one client id: the sensor link on the uplink's account would take the uplink's session
        at = f"{doc.path}:{doc.line_of(['broker']) or ''}" if doc else "config"
        problems.append(
            f"{at}: field sensor_broker: MQTT sensors ({sensors[0].id}, ...) need a sensor_broker with an "
            "account of its own (edge-<site>-sensors), not the uplink's"
        )
    if problems:
        raise ConfigError(problems)


def _control_problems(dev: DeviceConfig, profile: Profile) -> list[str]:
    """What makes ``dev.control`` unusable with ``profile``: each as '<.field>: reason'."""
    c = dev.control
    assert c is not None
    if profile.modbus is None:
        return [f": only Modbus devices are controllable, not {profile.name!r} ({profile.protocol})"]
    points = {p.name: p for p in profile.modbus.points}
    problems = [f".points.{name}: {why}" for name, why in _write_point_problems(c, profile)]
    if profile.kind != "sluice_gate":
        gate_set = sorted(c.model_fields_set & GATE_FIELDS)
        if gate_set:
            problems.append(f".{gate_set[0]}: gate limits apply to sluice gates only, not to {profile.name!r}")
        if not c.points:
            problems.append(f".points: name the writable points of {profile.name!r} that commands may write")
        return problems
    missing = [n for n in (*STATE_POINTS, *WRITE_POINTS) if n not in points]
    if missing:
        return [f": profile {profile.name!r} lacks the point(s) {', '.join(missing)}"]
    readonly = [n for n in WRITE_POINTS if not points[n].writable]
    if readonly:
        return [f": profile {profile.name!r} does not mark {', '.join(readonly)} writable"]
    if "max_head_open_m" not in c.model_fields_set:
        problems.append(
            ".max_head_open_m: a gate's allowed head for opening is a site value and must be written (null: no limit)"
        )
    try:
        c.full_m(profile)
    except ValueError as exc:
        return [*problems, f".full_opening_m: {exc}"]
    try:
        c.limits(profile)
    except ValueError as exc:
        return [*problems, f".max_opening_m: {exc}"]
    return problems


def _write_point_problems(c: ControlConfig, profile: Profile) -> list[tuple[str, str]]:
    assert profile.modbus is not None
    points = {p.name: p for p in profile.modbus.points}
    out: list[tuple[str, str]] = []
    for name, w in c.points.items():
        p = points.get(name)
        if p is None:
            out.append((name, f"profile {profile.name!r} has no point {name!r}"))
        elif not p.writable:
            out.append((name, f"profile {profile.name!r} does not mark {name!r} writable"))
        elif p.range is not None and (
            (w.min is not None and not p.range[0] <= w.min <= p.range[1])
            or (w.max is not None and not p.range[0] <= w.max <= p.range[1])
        ):
            out.append((name, f"min/max must lie within the profile's range [{p.range[0]:g}, {p.range[1]:g}]"))
    return out


def build_site(config: EdgeConfig, base: Path | None = None, doc: YamlDoc | None = None) -> LoadedSite:
    """Resolve profiles (the catalogue plus ``profile_paths``) and cross-check the devices."""
    profiles = dict(load_catalogue())
    if config.profile_paths:
        extra = [p if p.is_absolute() or base is None else base / p for p in config.profile_paths]
        profiles.update(load_profiles(extra))
    check_devices(config, profiles, doc)
    return LoadedSite(config, profiles, doc.path if doc else None, load_keys(config, base, doc))


def load_keys(config: EdgeConfig, base: Path | None = None, doc: YamlDoc | None = None) -> EdgeKeys | None:
    """Read the key files (relative paths are relative to the site file); ConfigError names the field and file."""
    if config.control_public_key is None or config.site_private_key is None:
        return None
    problems: list[str] = []

    def where(field: str) -> str:
        line = doc.line_of([field]) if doc else None
        return f"{doc.path}:{line}" if doc and line else (str(doc.path) if doc else "config")

    def path(p: Path) -> Path:
        return p if p.is_absolute() or base is None else base / p

    control = site = None
    try:
        control = load_verify_key(path(config.control_public_key))
    except KeyFileError as exc:
        problems.append(f"{where('control_public_key')}: field control_public_key: {exc}")
    try:
        site = load_signing_key(path(config.site_private_key))
    except KeyFileError as exc:
        problems.append(f"{where('site_private_key')}: field site_private_key: {exc}")
    if problems:
        raise ConfigError(problems)
    assert control is not None
    assert site is not None
    return EdgeKeys(control, site)


def load_site(path: Path) -> LoadedSite:
    """Load, validate and cross-check a site file; ConfigError names file, line, device and field."""
    doc = read_yaml(path)
    config = validate(EdgeConfig, doc, "site config")
    return build_site(config, path.parent, doc)
