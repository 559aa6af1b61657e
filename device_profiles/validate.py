"""The one validation of what comes off the broker: contract, topic against body, profile, known site and device,
value types, times. The bridge checks telemetry with it before it is stored, the rules engine before it evaluates.

Pure: no I/O. A message that fails is refused with ``Invalid`` naming what is wrong; once the message is known to
come from the device its topic names, ``Invalid.origin`` says which edge message it was, so that the bridge can
tell the edge it was kept (in the dead letters) and need not be sent again.

Site and device are the TOPIC's (the broker's accounts let an agent write only under its own site): a body that
names another site or device is refused, never believed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from device_profiles.schema import DataType, InternalPoint, JsonType, MqttPoint, Profile
from telemetry import AgentState, ContractError, DeviceStatus, TopicError, Value, decode_agent_state, topics
from telemetry.codec import decode_status
from telemetry.wire import SampleLike, TelemetryLike, decode_telemetry


@dataclass(frozen=True, slots=True)
class KnownSite:
    """What the bridge needs of one site file: its name, its own profiles, and (device id, profile name) of
    everything its agent publishes. The composition root reads site files with the edge's loader (a service does
    not import a sibling)."""

    site: str
    profiles: dict[str, Profile]
    devices: list[tuple[str, str]]
    # device id -> its effective profile, for devices whose site file changes their profile's points (``points:``,
    # device_profiles.overrides; the edge's ``LoadedSite.profile_of``): what the agent decodes and publishes by
    own_profiles: dict[str, Profile] = field(default_factory=dict)


SiteLoader = Callable[[Path], KnownSite]


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """Which edge message this was: the device (of the site its topic names), the agent run and the ``seq``."""

    site: str
    device: str
    run: str
    seq: int

    @classmethod
    def of(cls, msg: TelemetryLike) -> Origin:
        return cls(msg.site, msg.device, msg.run, msg.seq)


class Invalid(ValueError):
    """A message that cannot be stored as it is; the text says why (it goes to the dead letters)."""

    def __init__(self, reason: str, origin: Origin | None = None) -> None:
        super().__init__(reason)
        self.origin = origin


class ValueKind(StrEnum):
    """What a point's value must be on the wire (JSON): the contract's ``Value`` minus null."""

    BOOL = "a boolean"
    NUMBER = "a number"
    STRING = "a string"


# exact types, not isinstance: a bool is an int in Python, and must not pass for a number (nor a number for a bool)
_KIND_OF: dict[type, ValueKind] = {
    bool: ValueKind.BOOL,
    int: ValueKind.NUMBER,
    float: ValueKind.NUMBER,
    str: ValueKind.STRING,
}


@dataclass(frozen=True, slots=True)
class Declared:
    """A point's declared type in its profile (``float32``, ``bit``, ``number``, ...) and the value kind it means."""

    type: str
    kind: ValueKind


def declared_types(profile: Profile) -> dict[str, Declared]:
    """Each point's declared type, as device_profiles.schema declares it.

    Modbus: ``bool`` and ``bit`` are booleans, ``string`` is text, every register number type is a number (scaled
    engineering values are floats: an int is fine for a float point, and a float for an int16 one). MQTT: ``bool``,
    ``string``, and ``number``/``integer`` are numbers (a vendor text mapped by ``map`` arrives already converted).
    HJ 212 and derived points are numbers.
    """
    out: dict[str, Declared] = {}
    if profile.modbus is not None:
        for mp in profile.modbus.points:
            if mp.type in (DataType.BOOL, DataType.BIT):
                kind = ValueKind.BOOL
            elif mp.type is DataType.STRING:
                kind = ValueKind.STRING
            else:
                kind = ValueKind.NUMBER
            out[mp.name] = Declared(mp.type.value, kind)
    kinds = {JsonType.BOOL: ValueKind.BOOL, JsonType.STRING: ValueKind.STRING}
    json_points: list[MqttPoint | InternalPoint] = [*(profile.mqtt.points if profile.mqtt else [])]
    json_points += profile.internal.points if profile.internal else []
    for qp in json_points:  # MQTT sensors' mappings and internal points (the edge agent's health) declare JSON types
        out[qp.name] = Declared(qp.type.value, kinds.get(qp.type, ValueKind.NUMBER))
    if profile.hj212 is not None:  # HJ 212 values are all numbers (HJ 212-2017 §6.3.3: N14.2 fields)
        out.update({name: Declared("number", ValueKind.NUMBER) for name in profile.measured_names()})
    # derived points (O2-corrected concentrations, loads: device_profiles.derive) are numbers
    out.update({name: Declared("derived", ValueKind.NUMBER) for name in profile.derived_names()})
    return out


@dataclass(frozen=True, slots=True)
class Registry:
    """Known profiles, and (optionally) the known devices of each site with their profile."""

    profiles: dict[str, Profile]
    devices: dict[tuple[str, str], str] | None = None  # (site, device) -> profile name; None: any device
    # (site, device) -> the device's effective profile, when its site file changes its profile's points
    own_profiles: dict[tuple[str, str], Profile] = field(default_factory=dict)
    types: dict[str, dict[str, Declared]] = field(init=False, repr=False, compare=False)
    own_types: dict[tuple[str, str], dict[str, Declared]] = field(init=False, repr=False, compare=False)
    sites: frozenset[str] = field(init=False, repr=False, compare=False)  # the sites of ``devices``
    # (profile, point names, value types) of samples that passed check_values: the same shape passes again
    checked: set[tuple[str, tuple[str, ...], tuple[type, ...]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", {name: declared_types(p) for name, p in self.profiles.items()})
        object.__setattr__(self, "own_types", {key: declared_types(p) for key, p in self.own_profiles.items()})
        object.__setattr__(self, "checked", set())
        object.__setattr__(self, "sites", frozenset(site for site, _ in self.devices or {}))

    @classmethod
    def from_sites(cls, profiles: dict[str, Profile], site_paths: list[Path], load_site: SiteLoader | None) -> Registry:
        if not site_paths:
            return cls(profiles)
        if load_site is None:
            raise ValueError("validation.sites needs a site loader (lifeline passes the edge's)")
        devices: dict[tuple[str, str], str] = {}
        own: dict[tuple[str, str], Profile] = {}
        files: list[Path] = []
        for path in site_paths:
            files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
        for file in files:
            site = load_site(file)
            profiles = {**profiles, **site.profiles}
            for device, profile in site.devices:  # its devices and the agent's own health
                devices[(site.site, device)] = profile
            own.update(((site.site, device), p) for device, p in site.own_profiles.items())
        return cls(profiles, devices, own)

    def profile_of(self, site: str, device: str, profile: str) -> Profile | None:
        """The profile ``device`` of ``site`` has: its site file's changes to the points of ``profile`` applied
        (``KnownSite.own_profiles``), else ``profile`` as shipped; None for an unknown profile."""
        own = self.own_profiles.get((site, device))
        if own is not None and own.name == profile:
            return own
        return self.profiles.get(profile)

    def types_of(self, site: str, device: str, profile: str) -> dict[str, Declared]:
        """The declared types of the points of the device's profile (``profile_of``)."""
        own = self.own_profiles.get((site, device))
        if own is not None and own.name == profile:
            return self.own_types[(site, device)]
        return self.types[profile]


def _describe(value: Value) -> str:
    text, kind = repr(value), type(value).__name__
    return f"{'an' if kind == 'int' else 'a'} {kind} ({text[:60]}{'...' if len(text) > 60 else ''})"


def check_values(msg: TelemetryLike, types: dict[str, Declared]) -> None:
    """Every value has the kind its point declares (null, a bad point, has none); ``Invalid`` names the first that
    does not: the point, its declared type and the value's type. Unknown points are refused too."""
    samples: Sequence[SampleLike] = msg.samples
    for i, sample in enumerate(samples):
        for name, value in sample.values.items():
            declared = types.get(name)
            if declared is None:
                unknown = sorted(set(sample.values) - set(types))
                raise Invalid(f"points {unknown} are not in profile {msg.profile!r}", Origin.of(msg))
            if value is None or _KIND_OF.get(type(value)) is declared.kind:
                continue
            raise Invalid(
                f"point {name!r} of profile {msg.profile!r} is declared {declared.type} ({declared.kind.value}), "
                f"but sample {i} (ts {sample.ts}) has {_describe(value)}",
                Origin.of(msg),
            )


def _topic_of(topic: str, kind: topics.Kind) -> topics.ParsedTopic:
    """The parsed topic when it is of ``kind`` (``topics.parse`` keeps the topics it has parsed)."""
    try:
        parsed = topics.parse(topic)
    except TopicError as exc:
        raise Invalid(str(exc)) from exc
    if parsed.kind is not kind:
        raise Invalid(f"topic {topic!r} is not a {kind.value} topic")
    return parsed


def _known_device(registry: Registry, site: str, device: str, profile: str, origin: Origin | None) -> None:
    if registry.devices is not None:
        known = registry.devices.get((site, device))
        if known is None:
            raise Invalid(f"unknown device {device!r} of site {site!r}", origin)
        if known != profile:
            raise Invalid(f"device {device!r} has profile {known!r}, the message says {profile!r}", origin)
    if profile not in registry.profiles:  # strict: without the profile nothing says what the values should be
        raise Invalid(f"unknown profile {profile!r}", origin)


def check_telemetry(topic: str, payload: bytes, registry: Registry) -> TelemetryLike:
    """The telemetry message if its topic, body, device, profile and value types agree (sample times are not
    looked at: see ``check_times``); ``Invalid`` naming what is wrong otherwise."""
    parsed = _topic_of(topic, topics.Kind.TELEMETRY)
    try:
        msg = decode_telemetry(payload, topic)
    except ContractError as exc:
        raise Invalid(str(exc)) from exc
    if msg.site != parsed.site or msg.device != parsed.device:
        # no origin: an acknowledgement to the site the message names would let one site make another's edge forget
        raise Invalid(f"message is for {msg.site}/{msg.device} but came on topic {topic!r}")
    origin = Origin.of(msg)
    _known_device(registry, msg.site, msg.device, msg.profile, origin)
    profile = registry.profiles[msg.profile]
    if msg.measurement != profile.measurement:
        raise Invalid(f"profile {msg.profile!r} is stored in {profile.measurement!r}, not {msg.measurement!r}", origin)
    samples: Sequence[SampleLike] = msg.samples
    checked = registry.checked
    # judged by the device's own profile when its site file changes it (one cache key per such device)
    key = f"{msg.site}/{msg.device}" if (msg.site, msg.device) in registry.own_profiles else msg.profile
    shapes = [(key, tuple(s.values), tuple(map(type, s.values.values()))) for s in samples]
    if not checked.issuperset(shapes):
        check_values(msg, registry.types_of(msg.site, msg.device, msg.profile))
        if len(checked) >= 100_000:  # bounded: a foreign producer's shapes could vary without end
            checked.clear()
        checked.update(shapes)
    return msg


def check_times(msg: TelemetryLike, now_ms: int, max_future_ms: int, max_age_ms: int) -> None:
    """Every sample time is within ``max_future_ms`` ahead of and ``max_age_ms`` behind ``now_ms``."""
    origin = Origin.of(msg)
    samples: Sequence[SampleLike] = msg.samples
    for sample in samples:
        if sample.ts > now_ms + max_future_ms:
            raise Invalid(f"sample time {sample.ts} is {(sample.ts - now_ms) / 1000:.0f} s in the future", origin)
        if sample.ts < now_ms - max_age_ms:
            raise Invalid(f"sample time {sample.ts} is {(now_ms - sample.ts) / 1000:.0f} s old", origin)


def check(
    topic: str, payload: bytes, registry: Registry, now_ms: int, max_future_ms: int, max_age_ms: int
) -> TelemetryLike:
    """The message if it may be stored (``check_telemetry`` and ``check_times``); ``Invalid`` otherwise."""
    msg = check_telemetry(topic, payload, registry)
    check_times(msg, now_ms, max_future_ms, max_age_ms)
    return msg


def check_status(topic: str, payload: bytes, registry: Registry) -> DeviceStatus:
    """A device status whose topic and body agree, of a known device and profile; ``Invalid`` otherwise."""
    parsed = _topic_of(topic, topics.Kind.STATUS)
    try:
        status = decode_status(payload, topic)
    except ContractError as exc:
        raise Invalid(str(exc)) from exc
    if status.site != parsed.site or status.device != parsed.device:
        raise Invalid(f"status is for {status.site}/{status.device} but came on topic {topic!r}")
    _known_device(registry, status.site, status.device, status.profile, None)
    return status


def check_agent_state(topic: str, payload: bytes, registry: Registry) -> AgentState:
    """An agent's birth or death whose topic and body name the same site, a known one; ``Invalid`` otherwise."""
    parsed = _topic_of(topic, topics.Kind.AGENT_STATE)
    try:
        state = decode_agent_state(payload, topic)
    except ContractError as exc:
        raise Invalid(str(exc)) from exc
    if state.site != parsed.site:
        raise Invalid(f"agent state is for site {state.site!r} but came on topic {topic!r}")
    if registry.devices is not None and state.site not in registry.sites:
        raise Invalid(f"unknown site {state.site!r}")
    return state
