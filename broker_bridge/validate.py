"""Validate telemetry before it is stored: contract, topic, profile, device registry, times. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device_profiles import Profile
from edge_agent.config import load_site
from telemetry import ContractError, Telemetry, TopicError, decode_telemetry, topics


class Invalid(ValueError):
    """A message that cannot be stored as it is; the text says why (it goes to the dead letters)."""


@dataclass(frozen=True, slots=True)
class Registry:
    """Known profiles, and (optionally) the known devices of each site with their profile."""

    profiles: dict[str, Profile]
    devices: dict[tuple[str, str], str] | None = None  # (site, device) -> profile name; None: any device

    @classmethod
    def from_sites(cls, profiles: dict[str, Profile], site_paths: list[Path]) -> Registry:
        if not site_paths:
            return cls(profiles)
        devices: dict[tuple[str, str], str] = {}
        files: list[Path] = []
        for path in site_paths:
            files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
        for file in files:
            site = load_site(file)
            profiles = {**profiles, **site.profiles}
            for dev in site.config.devices:
                devices[(site.config.site, dev.id)] = dev.profile
        return cls(profiles, devices)


def check(
    topic: str, payload: bytes, registry: Registry, now_ms: int, max_future_ms: int, max_age_ms: int
) -> Telemetry:
    """The message if it may be stored; ``Invalid`` naming what is wrong otherwise."""
    try:
        where = topics.parse(topic)
    except TopicError as exc:
        raise Invalid(str(exc)) from exc
    try:
        msg = decode_telemetry(payload, topic)
    except ContractError as exc:
        raise Invalid(str(exc)) from exc
    if (msg.site, msg.device) != (where.site, where.device):
        raise Invalid(f"message is for {msg.site}/{msg.device} but came on topic {topic!r}")
    if registry.devices is not None:
        known = registry.devices.get((msg.site, msg.device))
        if known is None:
            raise Invalid(f"unknown device {msg.device!r} of site {msg.site!r}")
        if known != msg.profile:
            raise Invalid(f"device {msg.device!r} has profile {known!r}, the message says {msg.profile!r}")
    profile = registry.profiles.get(msg.profile)
    if profile is None:
        raise Invalid(f"unknown profile {msg.profile!r}")
    if msg.measurement != profile.measurement:
        raise Invalid(f"profile {msg.profile!r} is stored in {profile.measurement!r}, not {msg.measurement!r}")
    names = set(profile.point_names())
    for sample in msg.samples:
        unknown = set(sample.values) - names
        if unknown:
            raise Invalid(f"points {sorted(unknown)} are not in profile {msg.profile!r}")
        if sample.ts > now_ms + max_future_ms:
            raise Invalid(f"sample time {sample.ts} is {(sample.ts - now_ms) / 1000:.0f} s in the future")
        if sample.ts < now_ms - max_age_ms:
            raise Invalid(f"sample time {sample.ts} is {(now_ms - sample.ts) / 1000:.0f} s old")
    return msg
